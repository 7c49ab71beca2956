"""Helpers the tests share: running the services as real processes, and tokens."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from services.web.auth import Role, create_token
from shared.db.engine import make_engine

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for a condition, never for a fixed time: poll it, and fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up after {timeout} s"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 60, status: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == status:
                return
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")


@dataclass
class Stack:
    """The three services as separate processes against one topic and one database."""

    env: dict[str, str]
    logs: Path
    ingest_url: str
    api_url: str
    database_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, service: str, name: str | None = None) -> subprocess.Popen[bytes]:
        name = name or service
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", service],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes[name] = process
        return process

    def stop(self, name: str, kill: bool = False) -> None:
        process = self.processes.pop(name)
        if kill:
            process.kill()
        else:
            process.terminate()
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def token(self, role: Role, unit: str | None = None, province: str | None = None) -> str:
        engine = make_engine(self.database_url)
        try:
            return create_token(engine, role, unit_code=unit, province_code=province)[1]
        finally:
            engine.dispose()

    def ledger(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run an operator command against this stack's topic and database."""
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def post_batch(self, token: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Post events as one batch with ``token``; the receipts ingest answered."""
        response = httpx.post(
            f"{self.ingest_url}/v1/events/batch",
            json=events,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        receipts: list[dict[str, Any]] = response.json()["receipts"]
        return receipts

    def post_reports(self, reports: dict[str, list[dict[str, Any]]]) -> str:
        """Each unit posts its reports as one batch; the receipts as an ``after`` value."""
        last: dict[int, int] = {}
        for unit, events in reports.items():
            for receipt in self.post_batch(self.token("reporter", unit), events):
                partition = receipt["partition"]
                last[partition] = max(last.get(partition, -1), receipt["offset"])
        return ",".join(f"{p}:{o}" for p, o in sorted(last.items()))

    def log_text(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


@contextmanager
def running_stack(
    kafka_bootstrap: str,
    database_url: str,
    topic: str,
    logs: Path,
    services: tuple[str, ...] = ("ingest", "projector", "api"),
) -> Iterator[Stack]:
    ingest_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "EVENTS_TOPIC": topic,
        "DEAD_LETTER_TOPIC": f"{topic}.dead-letters",
        "PROJECTOR_GROUP_ID": f"projector-{uuid.uuid4().hex[:8]}",
        "PROJECTOR_METRICS_PORT": str(free_port()),
        "PROJECTOR_POLL_TIMEOUT_MS": "50",
        "INGEST_PORT": str(ingest_port),
        "API_PORT": str(api_port),
        "PRODUCE_TIMEOUT_SECONDS": "5",
        "PYTHONUNBUFFERED": "1",
    }
    stack = Stack(
        env, logs, f"http://127.0.0.1:{ingest_port}", f"http://127.0.0.1:{api_port}", database_url
    )
    try:
        for service in services:
            stack.start(service)
        if "ingest" in services:
            wait_for(f"{stack.ingest_url}/readyz")
        if "api" in services:
            wait_for(f"{stack.api_url}/readyz")
        yield stack
    except BaseException:
        # The services' own words go into the failure report; their files die with tmp_path.
        for log in sorted(logs.glob("*.log")):
            print(
                f"--- {log.name} (last 40 lines) ---\n"
                + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            )
        raise
    finally:
        stack.stop_all()


@contextmanager
def scratch_database(server_url: str, prefix: str, template: str | None = None) -> Iterator[str]:
    """A PostgreSQL database of its own (a copy of ``template``, when given), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    copied = f' TEMPLATE "{template}"' if template else ""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copied}')
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def broker_control() -> str:
    control = os.environ.get("LEDGER_TEST_BROKER_CONTROL")
    if not control:
        message = "the broker cannot be restarted here (LEDGER_TEST_BROKER_CONTROL is unset; `make test` sets it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return control


def count_rows(database_url: str, table: sa.Table) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()


def log_records(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record in the topic, decoded, read back from Kafka itself."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        records: list[dict[str, Any]] = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records += [
                    {
                        **json.loads(r.value),
                        "_partition": tp.partition,
                        "_offset": r.offset,
                        "_key": r.key,
                    }
                    for r in batch
                ]
        return records
    finally:
        consumer.close()


def until_projected(get: Callable[[], httpx.Response], tries: int = 12) -> httpx.Response:
    """Ask again while the API answers 504 (its bounded read-your-writes wait ran out), as a
    client honouring Retry-After would: a projector that is still joining its group is slow,
    not wrong."""
    response = get()
    for _ in range(tries - 1):
        if response.status_code != 504:
            break
        response = get()
    return response
