"""docker-compose.yml and the services' settings classes describe the same configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from shared.settings import ApiSettings, IngestSettings, ProjectorSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS: dict[str, type[BaseSettings]] = {
    "migrate": ProjectorSettings,
    "ingest": IngestSettings,
    "projector": ProjectorSettings,
    "api": ApiSettings,
}


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_compose_variable_is_a_setting_of_its_service_and_validates(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment: dict[str, str] = COMPOSE["services"][service]["environment"]
    fields = {name.upper() for name in SETTINGS[service].model_fields}
    assert set(environment) - fields == set()
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = SETTINGS[service]()
    for name, value in environment.items():
        parsed = getattr(settings, name.lower())
        assert parsed == type(parsed)(value)


@pytest.mark.parametrize("service", ["ingest", "projector", "api"])
def test_each_service_runs_the_ledger_cli_from_the_one_image_with_a_health_check(
    service: str,
) -> None:
    spec = COMPOSE["services"][service]
    assert spec["command"][:2] == ["serve", service]
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    assert spec["healthcheck"]["test"]


def test_the_kafka_service_is_a_kraft_node_of_the_apache_image() -> None:
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_production_refuses_the_embedded_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/ledger.db")
    with pytest.raises(ValueError, match="DATABASE_URL"):
        IngestSettings()
