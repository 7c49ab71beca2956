"""An HTTP service with several workers: each listens on a socket of its own (SO_REUSEPORT), so
connections opened together spread over the workers; a worker that dies is replaced, and SIGTERM
stops them all."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support import running_stack, wait_for

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux /proc")

LISTEN, ESTABLISHED = "0A", "01"


def sockets_on(port: int, state: str) -> set[str]:
    """Inodes of this host's TCP sockets on local ``port`` in ``state``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                found.add(fields[9])
    return found


def owners(inodes: set[str], pids: list[int]) -> collections.Counter[int]:
    """How many of the sockets each process holds."""
    held: collections.Counter[int] = collections.Counter()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held[pid] += 1
    return held


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # the process ended while being read
    return found


def workers_of(pid: int, port: int) -> list[int]:
    listening = sockets_on(port, LISTEN)
    return sorted(owners(listening, children(pid)))


def test_workers_listen_apart_share_connections_are_replaced_and_stop_together(
    kafka_bootstrap: str, sqlite_url: str, topic: str, tmp_path: Path
) -> None:
    with running_stack(kafka_bootstrap, sqlite_url, topic, tmp_path, services=()) as stack:
        parent = stack.start("api", workers=2)
        wait_for(f"{stack.api_url}/readyz")
        port = int(stack.api_url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while len(workers := workers_of(parent.pid, port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, "each worker holds a listening socket of its own"
        assert len(sockets_on(port, LISTEN)) == 2

        # 32 clients connect at once and keep their connections, like wrk or a connection pool.
        clients = [httpx.Client(base_url=stack.api_url) for _ in range(32)]
        start_line = threading.Barrier(len(clients))

        def connect(client: httpx.Client) -> None:
            start_line.wait()
            assert client.get("/healthz").status_code == 200

        threads = [threading.Thread(target=connect, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        spread = owners(sockets_on(port, ESTABLISHED), workers)
        for client in clients:
            client.close()
        assert sum(spread.values()) == 32
        # By address hash: one worker with fewer than 4 of 32 has a chance of 3e-6.
        assert min(spread[w] for w in workers) >= 4, spread

        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            replaced = workers_of(parent.pid, port)
            if len(replaced) == 2 and workers[0] not in replaced:
                break
            time.sleep(0.2)
        assert len(replaced) == 2 and workers[0] not in replaced
        wait_for(f"{stack.api_url}/readyz")

        stack.stop("api")
        for pid in replaced:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived SIGTERM"
