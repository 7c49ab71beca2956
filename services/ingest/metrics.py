"""Ingest's Prometheus metrics as one service, however many uvicorn workers answer.

Each worker is a process of its own with its own counters: scraped as they are, `/metrics`
would show whichever worker took the scrape. In prometheus_client's multiprocess mode every
worker writes its values to files in one directory (named by PROMETHEUS_MULTIPROC_DIR, which
the workers inherit from the process that starts them), and a scrape adds them up.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from shared.settings import IngestSettings

ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_directory(settings: IngestSettings) -> Path:
    """PROMETHEUS_MULTIPROC_DIR if set, else one per ingest port in the system's temp dir (two
    ingest services cannot listen on one port, so they never share it)."""
    if settings.prometheus_multiproc_dir is not None:
        return settings.prometheus_multiproc_dir
    return Path(tempfile.gettempdir()) / f"district-ledger-ingest-{settings.ingest_port}-metrics"


def prepare_worker_metrics(settings: IngestSettings, workers: int) -> Path | None:
    """In the process that starts the workers, before it starts them: an emptied directory,
    named to them in the environment. A single process keeps its own registry, unless
    PROMETHEUS_MULTIPROC_DIR was set (then its files are emptied all the same).

    Emptied because a file an earlier run's worker left would be added to this run's figures
    (counters would start above zero). Only the files prometheus_client writes (``*.db``) are
    removed: the directory may be one the operator named."""
    if workers == 1 and settings.prometheus_multiproc_dir is None:
        return None
    directory = metrics_directory(settings)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    except OSError as exc:
        raise RuntimeError(
            f"cannot prepare the metrics directory {directory} for {workers} ingest workers"
            f" ({exc.strerror}); set PROMETHEUS_MULTIPROC_DIR to a writable directory"
        ) from exc
    os.environ[ENV] = str(directory)
    return directory


def scrape() -> bytes:
    """The text a scrape of `/metrics` gets: every worker's values added up in multiprocess
    mode, else this process's."""
    if os.environ.get(ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
