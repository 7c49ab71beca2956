"""Real Kafka and PostgreSQL for the tests, found in this order:

1. an address in the environment (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``), used as given
   (``make test`` starts the local broker and server and sets these);
2. testcontainers, when a Docker engine answers;
3. the project's own local broker and server (deploy/kafka, deploy/postgres).

Under ``CI=true`` a service that cannot be had fails the run; elsewhere its tests are skipped.
Each test gets its own topic and its own database, so tests never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from services.topics import ensure_topics
from shared.db.engine import make_engine, migrate
from tests.support import scratch_database

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_KAFKA_PORT = os.environ.get("TEST_KAFKA_PORT", "19092")
TEST_PGPORT = os.environ.get("TEST_PGPORT", "15433")


def unavailable(what: str, why: str) -> None:
    message = f"{what} is not available: {why}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if address := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield address
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    env = {
        **os.environ,
        "KAFKA_PORT": TEST_KAFKA_PORT,
        "KAFKA_CONTROLLER_PORT": str(int(TEST_KAFKA_PORT) + 1),
        "KAFKA_STATE_DIR": str(ROOT / "var" / "test-kafka"),
    }
    started = subprocess.run(
        [str(ROOT / "deploy/kafka/kafka.sh"), "start"], env=env, capture_output=True, text=True
    )
    if started.returncode != 0:
        unavailable("Kafka", started.stderr[-2000:])
    yield f"127.0.0.1:{TEST_KAFKA_PORT}"
    _delete_test_topics(f"127.0.0.1:{TEST_KAFKA_PORT}")
    subprocess.run([str(ROOT / "deploy/kafka/kafka.sh"), "stop"], env=env, capture_output=True)


def _delete_test_topics(bootstrap: str) -> None:
    """Delete the tests' topics (``test-...``) from the local broker, which keeps its data
    between runs: each run used to leave a hundred topics behind, and a broker holding thousands
    of partitions starts slowly. Best effort: a broker a test left stopped keeps them for the
    next run to delete."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    except KafkaError:
        return
    try:
        names = [name for name in admin.list_topics() if name.startswith("test-")]
        if names:
            admin.delete_topics(names, timeout_ms=30_000, raise_errors=False)
    except KafkaError:
        pass
    finally:
        admin.close()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A URL to a PostgreSQL server's maintenance database, for creating test databases."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgresql"):
        yield url
        return
    if docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="psycopg") as container:
            yield container.get_connection_url()
        return
    env = {**os.environ, "PGPORT": TEST_PGPORT, "PG_STATE_DIR": str(ROOT / "var" / "test-postgres")}
    script = str(ROOT / "deploy/postgres/postgres.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        unavailable("PostgreSQL", started.stderr[-2000:])
    yield subprocess.run(
        [script, "url", "postgres"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([script, "stop"], env=env, capture_output=True)


@pytest.fixture(scope="session")
def postgres_template(postgres_server_url: str) -> Iterator[str]:
    """The name of a migrated database that each test's database is copied from (fast, and
    migrations run). Dropped at the end of the session, as each test's copy is: the local
    server keeps its data between runs."""
    with scratch_database(postgres_server_url, "ledger_template") as url:
        migrate(url)
        yield str(sa.make_url(url).database)


@pytest.fixture
def postgres_url(postgres_server_url: str, postgres_template: str) -> Iterator[str]:
    with scratch_database(postgres_server_url, "ledger_test", template=postgres_template) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on each storage the project supports."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    built = make_engine(database_url)
    yield built
    built.dispose()


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    """A fresh events topic (and dead-letter topic) for this test alone."""
    name = f"test-events-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, name, 3, f"{name}.dead-letters")
    return name
