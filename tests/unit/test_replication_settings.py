"""The events topic's replication settings: 1 and 1 by default (the local single broker),
and production refuses fewer than 3 copies or 2 in sync, as it refuses SQLite, unless told."""

from __future__ import annotations

import pytest

from shared.settings import ApiSettings, CommonSettings, IngestSettings, ProjectorSettings

SERVER_DATABASE = "postgresql+psycopg://ledger@db/ledger"


def test_the_defaults_suit_the_local_single_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVENTS_TOPIC_REPLICATION_FACTOR", "EVENTS_TOPIC_MIN_INSYNC_REPLICAS"):
        monkeypatch.delenv(name, raising=False)
    settings = CommonSettings()
    assert settings.events_topic_replication_factor == 1
    assert settings.events_topic_min_insync_replicas == 1


@pytest.mark.parametrize("service", [IngestSettings, ProjectorSettings, ApiSettings])
@pytest.mark.parametrize(("copies", "in_sync"), [("1", "1"), ("2", "2"), ("3", "1")])
def test_production_refuses_fewer_than_three_copies_or_two_in_sync(
    service: type[CommonSettings], copies: str, in_sync: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", SERVER_DATABASE)
    monkeypatch.setenv("EVENTS_TOPIC_REPLICATION_FACTOR", copies)
    monkeypatch.setenv("EVENTS_TOPIC_MIN_INSYNC_REPLICAS", in_sync)
    with pytest.raises(ValueError, match="ALLOW_LOW_REPLICATION=true"):
        service()
    monkeypatch.setenv("ALLOW_LOW_REPLICATION", "true")  # told otherwise
    assert service().events_topic_replication_factor == int(copies)


def test_production_takes_three_copies_two_in_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", SERVER_DATABASE)
    monkeypatch.setenv("EVENTS_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("EVENTS_TOPIC_MIN_INSYNC_REPLICAS", "2")
    settings = ProjectorSettings()
    assert (
        settings.events_topic_replication_factor,
        settings.events_topic_min_insync_replicas,
    ) == (3, 2)


def test_more_in_sync_replicas_than_copies_is_refused_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No acks=all write could ever be acknowledged.
    monkeypatch.setenv("EVENTS_TOPIC_REPLICATION_FACTOR", "1")
    monkeypatch.setenv("EVENTS_TOPIC_MIN_INSYNC_REPLICAS", "2")
    with pytest.raises(ValueError, match="cannot exceed"):
        IngestSettings()
