"""Configuration from the environment, one settings class per service.

Build them through the ``get_*_settings()`` functions (cached), never at import time, so tests
and commands can set the environment first.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    events_topic: str = "district-ledger.events"
    events_topic_partitions: int = Field(default=6, ge=1)
    # Copies of each partition of the events topic (and of its dead-letter topic), and how many
    # of them must hold a record before ingest's acks=all is answered. 1 and 1 suit the local
    # single broker; a cluster wants 3 and 2, so that one lost broker loses nothing (two copies
    # of every accepted event) and stops nothing (two in-sync replicas are still there).
    events_topic_replication_factor: int = Field(default=1, ge=1)
    events_topic_min_insync_replicas: int = Field(default=1, ge=1)
    # Production refuses fewer than 3 copies or fewer than 2 in sync; this says "I know".
    allow_low_replication: bool = False
    database_url: str = "sqlite:///./var/ledger.db"
    log_level: str = "INFO"
    # How long a service remembers a token it verified; a revocation takes effect within it.
    token_cache_seconds: float = Field(default=2.0, ge=0)

    @model_validator(mode="after")
    def _no_embedded_database_in_production(self) -> CommonSettings:
        # SQLite is the one-machine default; a deployment must say where its database is.
        if self.environment == "production" and self.database_url.startswith("sqlite"):
            raise ValueError("DATABASE_URL must name a server database in production")
        return self

    @model_validator(mode="after")
    def _events_topic_replicated(self) -> CommonSettings:
        rf, isr = self.events_topic_replication_factor, self.events_topic_min_insync_replicas
        if isr > rf:  # acks=all could never be satisfied: every append would fail
            raise ValueError(
                f"EVENTS_TOPIC_MIN_INSYNC_REPLICAS ({isr}) cannot exceed"
                f" EVENTS_TOPIC_REPLICATION_FACTOR ({rf})"
            )
        # The events topic is the system of record: in production a lost broker must lose no
        # accepted event, so every acknowledged write is on at least two of at least 3 copies
        # (min.insync.replicas 1 would let acks=all be answered by a single copy).
        if (
            self.environment == "production"
            and not self.allow_low_replication
            and (rf < 3 or isr < 2)
        ):
            raise ValueError(
                "in production the events topic needs EVENTS_TOPIC_REPLICATION_FACTOR >= 3 and"
                f" EVENTS_TOPIC_MIN_INSYNC_REPLICAS >= 2 (got {rf} and {isr}); set"
                " ALLOW_LOW_REPLICATION=true to run on fewer copies knowingly"
            )
        return self


class IngestSettings(CommonSettings):
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8001
    max_body_bytes: int = 1024 * 1024
    max_batch_items: int = 1000
    rate_limit_per_second: float = Field(default=2000.0, gt=0)
    rate_limit_burst: int = Field(default=4000, ge=1)
    produce_timeout_seconds: float = Field(default=10.0, gt=0)
    # Where the workers of `ledger serve ingest --workers N` keep their Prometheus values, so
    # that /metrics adds them up (services/ingest/metrics.py); emptied at each start. Unset: a
    # directory per ingest port in the system's temp dir.
    prometheus_multiproc_dir: Path | None = None


class ProjectorSettings(CommonSettings):
    projector_group_id: str = "district-ledger-projector"
    projector_batch_max_records: int = Field(default=5000, ge=1)
    projector_poll_timeout_ms: int = Field(default=200, ge=1)
    # How long a killed projector keeps its partitions before the group gives them to another
    # (kafka-python's default is 45 s of standing still); 6 s is the broker's minimum.
    projector_session_timeout_ms: int = Field(default=10_000, ge=6_000)
    projector_metrics_host: str = "127.0.0.1"
    projector_metrics_port: int = 8003
    dead_letter_topic: str = "district-ledger.events.dead-letters"


class ApiSettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = 8002
    read_your_writes_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # While ingest moves the projection position, a summary is recomputed at most every
    # summary_refresh_seconds; meanwhile the previous answer is served (with the freshness it
    # was computed at) if it is younger than summary_stale_seconds, else requests wait for a
    # new one. summary_stale_seconds=0: every request waits for the newest position.
    summary_refresh_seconds: float = Field(default=0.25, ge=0, le=60)
    summary_stale_seconds: float = Field(default=1.0, ge=0, le=60)
    # How old the freshness an answer shows (applied offsets, records behind, lag) may be.
    # Threads read the database's offsets and ask Kafka five times per budget (0.1 s); a
    # request shows their last readings aged, reads the offsets itself when theirs is older or
    # failed (the database slow or down), and shows the lag unknown when Kafka's answer is
    # (services/api/freshness.py).
    freshness_budget_seconds: float = Field(default=0.5, gt=0, le=10)
    # Requests one API process answers at once; more are answered 503 with Retry-After at once
    # rather than queued (/healthz, /readyz and /metrics are never refused): under saturation,
    # queued requests waited 30 s and timed out (make bench). 64 is above the worker threads
    # (40) and database connections (30), so answers from memory pass while those are busy.
    api_max_concurrent_requests: int = Field(default=64, ge=1)
    # PostgreSQL: the longest one statement of the API may run (and a request wait for a
    # connection to run it on); past it the statement is cancelled and the request answered
    # 503 with Retry-After, so no request holds the database longer. 0: no limit.
    api_statement_timeout_seconds: float = Field(default=10.0, ge=0, le=3600)
    # Processes a verification of the log (the HTTP job and `ledger verify`) checks partitions
    # in at once, on PostgreSQL; each holds at most a chunk. One per core (more were slower on
    # 2 cores). 1: in the calling process.
    verify_workers: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 8), ge=1, le=64)


@cache
def get_ingest_settings() -> IngestSettings:
    return IngestSettings()


@cache
def get_projector_settings() -> ProjectorSettings:
    return ProjectorSettings()


@cache
def get_api_settings() -> ApiSettings:
    return ApiSettings()
