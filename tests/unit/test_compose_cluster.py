"""docker-compose.yml describes the three-node cluster deploy/kafka/kafka.sh runs locally
(KAFKA_NODES=3), and the ledger's services are pointed at all of it with 3 copies, 2 in sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
NODES = {1: "kafka", 2: "kafka-2", 3: "kafka-3"}  # node id -> service


def test_three_kraft_nodes_each_a_broker_and_a_voter_of_one_cluster() -> None:
    envs = {node: SERVICES[name]["environment"] for node, name in NODES.items()}
    voters = ",".join(f"{node}@{name}:9093" for node, name in NODES.items())
    for node, env in envs.items():
        assert SERVICES[NODES[node]]["image"].startswith("apache/kafka:")
        assert env["KAFKA_NODE_ID"] == str(node)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{NODES[node]}:9092"
        assert SERVICES[NODES[node]]["healthcheck"]["test"]
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1  # formatted as one cluster
    volumes = [SERVICES[name]["volumes"][0].split(":")[0] for name in NODES.values()]
    assert len(set(volumes)) == 3  # a disk each


def test_every_copy_the_cluster_keeps_is_on_three_nodes_two_in_sync_never_unclean() -> None:
    for name in NODES.values():
        env = SERVICES[name]["environment"]
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_the_ledger_is_pointed_at_every_node_with_three_copies_two_in_sync() -> None:
    bootstrap = ",".join(f"{name}:9092" for name in NODES.values())
    for service in ("migrate", "ingest", "projector", "api"):
        spec = SERVICES[service]
        env = spec["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
        assert env["EVENTS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["EVENTS_TOPIC_MIN_INSYNC_REPLICAS"] == "2"
        assert "ALLOW_LOW_REPLICATION" not in env
        for name in NODES.values():
            assert spec["depends_on"][name] == {"condition": "service_healthy"}
