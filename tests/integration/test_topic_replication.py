"""The topics' replication, as `ledger migrate` creates and checks it: on the shared single
broker (replication 1) and on a 3-node cluster of this module's own (replication 3,
min.insync.replicas 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from services.projector.consumer import Projector
from services.projector.store import ReadModelStore
from services.topics import TopicSetupError, ensure_topics
from shared.db.engine import make_engine, migrate
from shared.db.schema import read_models
from tests.cluster import LocalCluster, local_cluster

ROOT = Path(__file__).resolve().parents[2]
CHECKED = (
    "min.insync.replicas",
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "unclean.leader.election.enable",
)


def topic_state(bootstrap: str, topic: str) -> tuple[int, set[int], dict[str, str]]:
    """(partitions, replica counts over the partitions, the configs the ledger checks)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        [described] = admin.describe_topics([topic])
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict.fromkeys(CHECKED))],
            config_filter="all",
        )["topic"][topic]
    finally:
        admin.close()
    parts = described["partitions"]
    return (
        len(parts),
        {len(p["replica_nodes"]) for p in parts},
        {name: str(configs[name]["value"]) for name in CHECKED},
    )


def create_raw(bootstrap: str, topic: str, partitions: int, copies: int, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            {
                topic: {
                    "num_partitions": partitions,
                    "replication_factor": copies,
                    "configs": {k.replace("_", "."): v for k, v in configs.items()},
                }
            }
        )
    finally:
        admin.close()


def ledger_migrate(
    bootstrap: str, topic: str, database_url: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "EVENTS_TOPIC": topic,
        "DEAD_LETTER_TOPIC": f"{topic}.dead-letters",
        "EVENTS_TOPIC_PARTITIONS": "3",
        **{name.upper(): value for name, value in settings.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def new_topic() -> str:
    return f"test-replication-{uuid.uuid4().hex[:10]}"


# --- the shared single broker ---------------------------------------------------------------


def test_migrate_creates_both_topics_kept_forever_without_unclean_election_on_one_broker(
    kafka_bootstrap: str, sqlite_url: str
) -> None:
    topic = new_topic()
    first = ledger_migrate(kafka_bootstrap, topic, sqlite_url)
    again = ledger_migrate(kafka_bootstrap, topic, sqlite_url)

    assert first.returncode == 0, first.stderr
    assert f"created topic {topic} (replication factor 1, min.insync.replicas 1)" in first.stderr
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stderr and "warning" not in again.stderr
    forever = {
        "min.insync.replicas": "1",
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
        "unclean.leader.election.enable": "false",
    }
    assert topic_state(kafka_bootstrap, topic) == (3, {1}, forever)
    assert topic_state(kafka_bootstrap, f"{topic}.dead-letters") == (1, {1}, forever)


def test_migrate_fails_naming_each_way_an_existing_events_topic_could_lose_events(
    kafka_bootstrap: str, sqlite_url: str
) -> None:
    topic = new_topic()
    create_raw(
        kafka_bootstrap,
        topic,
        partitions=2,
        copies=1,
        retention_ms="604800000",
        cleanup_policy="compact",
        unclean_leader_election_enable="true",
    )
    done = ledger_migrate(kafka_bootstrap, topic, sqlite_url)

    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 4, done.stderr
    assert f"ERROR: topic {topic}: the partition count is 2, settings want 3" in done.stderr
    assert "retention.ms is 604800000, settings want -1" in done.stderr
    assert "cleanup.policy is compact, settings want delete" in done.stderr
    assert "unclean.leader.election.enable is true, settings want false" in done.stderr
    assert "--add-config unclean.leader.election.enable=false" in done.stderr  # how to fix it
    assert "topics do not match the settings: 4 error(s) above" in done.stderr
    assert "topics ready" not in done.stderr


def test_a_stronger_topic_or_a_different_dead_letter_topic_is_a_warning_not_an_error(
    kafka_bootstrap: str, sqlite_url: str
) -> None:
    topic = new_topic()
    # The dead-letter topic is a copy for operators' tools (the table is the record).
    create_raw(
        kafka_bootstrap, f"{topic}.dead-letters", partitions=2, copies=1, retention_ms="1000"
    )
    report = ensure_topics(kafka_bootstrap, topic, 3, f"{topic}.dead-letters")
    done = ledger_migrate(kafka_bootstrap, topic, sqlite_url)

    assert report.created == [topic]
    assert {(f.what, f.fatal) for f in report.findings} == {
        ("the partition count", False),
        ("retention.ms", False),
    }
    assert done.returncode == 0, done.stderr
    assert f"warning: topic {topic}.dead-letters: retention.ms is 1000" in done.stderr
    assert "topics ready" in done.stderr


def test_migrate_says_plainly_that_one_broker_cannot_hold_three_copies(
    kafka_bootstrap: str, sqlite_url: str
) -> None:
    topic = new_topic()
    done = ledger_migrate(
        kafka_bootstrap,
        topic,
        sqlite_url,
        events_topic_replication_factor="3",
        events_topic_min_insync_replicas="2",
    )
    with pytest.raises(TopicSetupError, match="only 1 broker"):
        ensure_topics(kafka_bootstrap, new_topic(), 3, "unused", replication_factor=3)

    assert done.returncode == 1
    assert f"ERROR: cannot create topic {topic} with replication factor 3" in done.stderr
    assert "only 1 broker(s) are registered" in done.stderr


def test_ingest_and_the_dead_letter_copy_produce_with_acks_all_and_idempotence(
    kafka_bootstrap: str, topic: str, sqlite_url: str
) -> None:
    from services.ingest.log_writer import EventLogWriter

    writer = EventLogWriter(kafka_bootstrap, topic, timeout_seconds=2)
    engine = make_engine(sqlite_url)
    projector = Projector(
        ReadModelStore(engine, read_models, topic),
        kafka_bootstrap,
        "unused-group",
        f"{topic}.dead-letters",
    )
    try:
        producers = [writer._producer.config, projector.dead_letter_producer.config]
    finally:
        writer.close()
        projector.close()
        engine.dispose()
    for config in producers:
        assert config["acks"] in (-1, "all")
        assert config["enable_idempotence"] is True


# --- a cluster of this module's own ---------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture
def cluster_database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return url


def test_on_a_cluster_migrate_spreads_three_copies_and_wants_two_in_sync(
    cluster: LocalCluster, cluster_database: str
) -> None:
    topic = new_topic()
    done = ledger_migrate(
        cluster.bootstrap,
        topic,
        cluster_database,
        events_topic_replication_factor="3",
        events_topic_min_insync_replicas="2",
    )

    assert done.returncode == 0, done.stderr
    assert f"created topic {topic} (replication factor 3, min.insync.replicas 2)" in done.stderr
    partitions, copies, configs = topic_state(cluster.bootstrap, topic)
    assert (partitions, copies) == (3, {3})
    assert configs["min.insync.replicas"] == "2"
    assert configs["unclean.leader.election.enable"] == "false"
    assert configs["retention.ms"] == "-1"
    # Every partition on all three nodes, its leaders spread over them.
    layout = cluster.partitions(topic)
    assert all(sorted(p["replica_nodes"]) == [1, 2, 3] for p in layout)
    assert len({p["leader_id"] for p in layout}) == 3
    assert topic_state(cluster.bootstrap, f"{topic}.dead-letters")[:2] == (1, {3})


def test_on_a_cluster_a_topic_with_one_copy_or_one_in_sync_fails_migrate(
    cluster: LocalCluster, cluster_database: str
) -> None:
    single, lax = new_topic(), new_topic()
    create_raw(cluster.bootstrap, single, partitions=3, copies=1, retention_ms="-1")
    create_raw(cluster.bootstrap, lax, partitions=3, copies=3, min_insync_replicas="1")
    settings = {"events_topic_replication_factor": "3", "events_topic_min_insync_replicas": "2"}
    one_copy = ledger_migrate(cluster.bootstrap, single, cluster_database, **settings)
    one_in_sync = ledger_migrate(cluster.bootstrap, lax, cluster_database, **settings)

    assert one_copy.returncode == 1, one_copy.stderr
    assert f"ERROR: topic {single}: the replication factor is 1, settings want 3" in one_copy.stderr
    assert one_in_sync.returncode == 1, one_in_sync.stderr
    assert f"ERROR: topic {lax}: min.insync.replicas is 1, settings want 2" in one_in_sync.stderr
    assert "acknowledged write may be on fewer copies" in one_in_sync.stderr


def test_kafka_sh_kills_and_restarts_one_node_and_the_others_carry_the_partitions(
    cluster: LocalCluster,
) -> None:
    topic = new_topic()
    ensure_topics(
        cluster.bootstrap,
        topic,
        3,
        f"{topic}.dead-letters",
        replication_factor=3,
        min_insync_replicas=2,
    )
    cluster.wait_in_sync(topic, 3)
    victim = cluster.leaders(topic)[0]
    survivor = next(n for n in (1, 2, 3) if n != victim)

    cluster.kill(victim)
    try:
        cluster.wait_in_sync(topic, 2, without=victim)
        after_kill = cluster.partitions(topic, via=survivor)
        status = cluster.run("status", str(victim))
    finally:
        cluster.start(victim)
    cluster.wait_in_sync(topic, 3)

    assert status.returncode == 1
    assert all(p["leader_id"] != victim for p in after_kill)
    assert all(victim not in p["isr_nodes"] for p in after_kill)
    assert cluster.run("status").returncode == 0
