"""Creating the events topic (kept forever, keyed by unit) and its dead-letter topic, and
checking that topics which exist already are what the settings say."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import InvalidReplicationFactorError, KafkaError, TopicAlreadyExistsError

FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
# An out-of-sync replica elected leader would drop every acknowledged write it lacks: set on the
# topic itself, so that a broker-wide default changed later cannot turn it on for the log.
NO_UNCLEAN_ELECTION = {"unclean.leader.election.enable": "false"}


class TopicSetupError(Exception):
    """The topics could not be created as the settings ask (e.g. too few brokers)."""


@dataclass(frozen=True)
class Finding:
    """One way an existing topic differs from what the settings ask."""

    topic: str
    what: str
    found: str
    wanted: str
    # True: the log is not safe or not usable as configured, and `ledger migrate` fails.
    # False: it is stronger than asked, or the difference concerns only the dead-letter copy.
    fatal: bool
    hint: str = ""

    def __str__(self) -> str:
        level = "ERROR" if self.fatal else "warning"
        text = (
            f"{level}: topic {self.topic}: {self.what} is {self.found}, settings want {self.wanted}"
        )
        return f"{text} ({self.hint})" if self.hint else text


@dataclass
class TopicsReport:
    created: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def fatal(self) -> list[Finding]:
        return [f for f in self.findings if f.fatal]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int
    # The events topic is the system of record; the dead-letter topic is a copy for operators'
    # tools (the dead_letters table, written in the batch's transaction, is the record).
    system_of_record: bool

    @property
    def configs(self) -> dict[str, str]:
        return {
            **FOREVER,
            **NO_UNCLEAN_ELECTION,
            "min.insync.replicas": str(self.min_insync_replicas),
        }


def ensure_topics(
    bootstrap_servers: str,
    events_topic: str,
    partitions: int,
    dead_letter_topic: str,
    timeout: float = 60,
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> TopicsReport:
    """Create the topics if absent (idempotent) with the given replication; check the ones that
    exist already against the same settings. Waits up to ``timeout`` for the broker.

    What differs is returned, not raised: the caller decides (``ledger migrate`` fails on a
    fatal finding). Raises TopicSetupError when a topic cannot be created as asked.
    """
    specs = [
        TopicSpec(events_topic, partitions, replication_factor, min_insync_replicas, True),
        TopicSpec(dead_letter_topic, 1, replication_factor, min_insync_replicas, False),
    ]
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers, client_id="district-ledger-admin"
            )
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    report = TopicsReport()
    try:
        existing = set(admin.list_topics())
        for spec in specs:
            if spec.name in existing:
                continue
            try:
                admin.create_topics(
                    {
                        spec.name: {
                            "num_partitions": spec.partitions,
                            "replication_factor": spec.replication_factor,
                            "configs": spec.configs,
                        }
                    }
                )
                report.created.append(spec.name)
            except TopicAlreadyExistsError:  # made meanwhile elsewhere: check it below
                existing.add(spec.name)
            except InvalidReplicationFactorError as exc:
                raise TopicSetupError(
                    f"cannot create topic {spec.name} with replication factor"
                    f" {spec.replication_factor}: {exc_message(exc)}"
                ) from exc
        checked = [spec for spec in specs if spec.name in existing]
        for spec in checked:
            report.findings += check_topic(admin, spec)
        report.checked = [spec.name for spec in checked]
    finally:
        admin.close()
    return report


def exc_message(exc: KafkaError) -> str:
    """The broker's own words, when kafka-python's message quotes the whole response."""
    text = str(exc)
    marker = "error_message='"
    if marker in text:
        return text.split(marker, 1)[1].split("'", 1)[0]
    return text


def check_topic(admin: KafkaAdminClient, spec: TopicSpec) -> list[Finding]:
    """How an existing topic differs from ``spec``."""
    [described] = admin.describe_topics([spec.name])
    parts = described["partitions"]
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=dict.fromkeys(spec.configs))],
        config_filter="all",
    )["topic"][spec.name]

    def value(name: str) -> str:
        return str(configs[name]["value"]) if name in configs else "unknown"

    def found(what: str, got: object, wanted: object, fatal: bool, hint: str = "") -> None:
        findings.append(
            Finding(spec.name, what, str(got), str(wanted), fatal and spec.system_of_record, hint)
        )

    findings: list[Finding] = []
    alter = (
        f"kafka-configs.sh --bootstrap-server HOST:PORT --alter --entity-type topics"
        f" --entity-name {spec.name} --add-config"
    )
    if len(parts) != spec.partitions:
        found(
            "the partition count",
            len(parts),
            spec.partitions,
            True,
            "events are keyed by unit to a partition and the projector's offsets are kept per "
            "partition: set EVENTS_TOPIC_PARTITIONS to the topic's count (adding partitions to a"
            " topic in use would move units to other partitions and break their order)",
        )
    copies = min((len(p["replica_nodes"]) for p in parts), default=0)
    if copies < spec.replication_factor:
        found(
            "the replication factor",
            copies,
            spec.replication_factor,
            True,
            "fewer copies than configured: raise it with kafka-reassign-partitions.sh",
        )
    elif copies > spec.replication_factor:
        found(
            "the replication factor",
            copies,
            spec.replication_factor,
            False,
            "more copies than configured: set EVENTS_TOPIC_REPLICATION_FACTOR to match",
        )
    min_isr = value("min.insync.replicas")
    if min_isr.isdigit() and int(min_isr) > copies:
        found(
            "min.insync.replicas",
            min_isr,
            spec.min_insync_replicas,
            True,
            f"more than the {copies} copies: no write can be acknowledged;"
            f" {alter} min.insync.replicas={spec.min_insync_replicas}",
        )
    elif min_isr != str(spec.min_insync_replicas):
        weaker = not min_isr.isdigit() or int(min_isr) < spec.min_insync_replicas
        found(
            "min.insync.replicas",
            min_isr,
            spec.min_insync_replicas,
            weaker,
            (
                "an acknowledged write may be on fewer copies than configured"
                if weaker
                else "writes stop sooner than configured when brokers are lost"
            )
            + f"; {alter} min.insync.replicas={spec.min_insync_replicas}",
        )
    for name, wanted in {**FOREVER, **NO_UNCLEAN_ELECTION}.items():
        got = value(name)
        if got != wanted:
            why = {
                "retention.ms": "Kafka would delete old events",
                "retention.bytes": "Kafka would delete old events",
                "cleanup.policy": "compaction or deletion would drop events",
                "unclean.leader.election.enable": "a lagging replica made leader drops acknowledged events",
            }[name]
            found(name, got, wanted, True, f"{why}; {alter} {name}={wanted}")
    return findings
