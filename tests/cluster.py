"""A three-node Kafka cluster of the test's own, from deploy/kafka/kafka.sh (KAFKA_NODES=3), on
loopback ports of its own: tests may kill and restart its nodes without touching the broker the
rest of the suite shares."""

from __future__ import annotations

import logging
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
NODES = 3


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_base(count: int, gap: int = 100) -> int:
    """A base port B with B..B+count-1 and B+gap..B+gap+count-1 free: the nodes' broker and
    controller ports. Below 32768, where Linux does not pick outgoing connections' ports."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_000 - gap - count)
        if all(port_free(base + i) and port_free(base + gap + i) for i in range(count)):
            return base
    raise RuntimeError("no free ports for a Kafka cluster")


@dataclass
class LocalCluster:
    state_dir: Path
    port: int
    nodes: int = NODES
    # Node i's controller listens on controller_port+i-1 (kafka.sh's default: port+100).
    controller_port: int | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_NODES": str(self.nodes),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port or self.port + 100),
            "KAFKA_STATE_DIR": str(self.state_dir),
            "PYTHON": sys.executable,
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port + i}" for i in range(self.nodes))

    def node_address(self, node: int) -> str:
        return f"127.0.0.1:{self.port + node - 1}"

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KAFKA_SH), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def control(self, *args: str) -> None:
        done = self.run(*args)
        if done.returncode != 0:
            raise AssertionError(f"kafka.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}")

    def kill(self, node: int) -> None:
        """SIGKILL, as a crash or a lost machine would."""
        self.control("kill", str(node))

    def stop(self, node: int) -> None:
        self.control("stop", str(node))

    def start(self, node: int) -> None:
        self.control("start", str(node))

    def admin(self, bootstrap: str | None = None) -> KafkaAdminClient:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap or self.bootstrap,
            client_id="district-ledger-test-cluster",
            request_timeout_ms=10_000,
            reconnect_backoff_max_ms=500,
        )

    def partitions(self, topic: str, via: int | None = None) -> list[dict[str, Any]]:
        """Each partition's leader, replicas and in-sync replicas, as the cluster says."""
        admin = self.admin(self.node_address(via) if via else None)
        try:
            [described] = admin.describe_topics([topic])
            return sorted(described["partitions"], key=lambda p: p["partition_index"])
        finally:
            admin.close()

    def leaders(self, topic: str) -> dict[int, int]:
        return {p["partition_index"]: p["leader_id"] for p in self.partitions(topic)}

    def wait_in_sync(
        self, topic: str, replicas: int, without: int | None = None, timeout: float = 60
    ) -> None:
        """Until every partition of ``topic`` has a leader and ``replicas`` in-sync replicas
        (and node ``without`` is neither, once the cluster has fenced it)."""
        deadline = time.monotonic() + timeout
        seen: object = None
        while time.monotonic() < deadline:
            try:
                seen = [(p["leader_id"], p["isr_nodes"]) for p in self.partitions(topic)]
                if all(
                    leader not in (None, -1, without)
                    and len(isr) >= replicas
                    and without not in isr
                    for leader, isr in seen
                ):
                    return
            except Exception as exc:  # a node is restarting: ask again
                seen = exc
            time.sleep(0.3)
        raise AssertionError(f"{topic} not {replicas} in sync within {timeout}s: {seen}")


@contextmanager
def local_cluster(state_dir: Path) -> Iterator[LocalCluster]:
    """Start a fresh cluster; stop and wipe it afterwards. Skips (fails under CI) when the
    cluster cannot be started here."""
    # kafka-python logs every refused connection while nodes are down.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    cluster = LocalCluster(state_dir, free_port_base(NODES))
    started = cluster.run("start")
    if started.returncode != 0:
        cluster.run("wipe")
        unavailable("a 3-node Kafka cluster", started.stderr[-2000:])
    try:
        yield cluster
    finally:
        cluster.run("wipe")
