"""Running the projector as a process: metrics endpoint, signal handling, the loop."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from services.projector.consumer import Projector
from services.projector.store import ReadModelStore
from shared.db.engine import make_engine
from shared.db.schema import read_models
from shared.logs import configure_logging
from shared.runtime import tune_garbage_collector
from shared.settings import ProjectorSettings, get_projector_settings

log = logging.getLogger(__name__)


def build_projector(settings: ProjectorSettings) -> Projector:
    engine = make_engine(settings.database_url)
    store = ReadModelStore(engine, read_models, settings.events_topic)
    return Projector(
        store,
        settings.kafka_bootstrap_servers,
        settings.projector_group_id,
        settings.dead_letter_topic,
        max_records=settings.projector_batch_max_records,
        poll_timeout_ms=settings.projector_poll_timeout_ms,
        session_timeout_ms=settings.projector_session_timeout_ms,
    )


def main(settings: ProjectorSettings | None = None) -> None:
    settings = settings or get_projector_settings()
    configure_logging(settings.log_level, service="projector")
    start_http_server(settings.projector_metrics_port, addr=settings.projector_metrics_host)
    projector = build_projector(settings)
    projector.install_signal_handlers()
    tune_garbage_collector()
    log.info("projector started", extra={"fields": {"topic": settings.events_topic}})
    projector.run()
    log.info("projector stopped")
