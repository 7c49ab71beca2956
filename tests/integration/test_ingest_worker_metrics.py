"""`ledger serve ingest --workers 2`: a scrape of /metrics shows the whole service, both
workers' requests added up, whichever worker answers the scrape (prometheus_client's
multiprocess mode, its directory set up and emptied by the service itself)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from services.ingest.metrics import prepare_worker_metrics
from shared.examples import EXAMPLES
from shared.settings import IngestSettings
from tests.support import ROOT, running_stack, wait_for

ACCEPTED = {"outcome": "accepted"}


def accepted_per_worker(directory: Path) -> Counter[int]:
    """Events each worker process counted as accepted, from the files it writes."""
    counts: Counter[int] = Counter()
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == "ingest_events_total" and labels == ACCEPTED:
                counts[pid] += int(value)
    return counts


def scraped_accepted(ingest_url: str) -> float:
    # A new connection each time, so that the scrapes go to either worker.
    text = httpx.get(f"{ingest_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ingest_events_total" and sample.labels == ACCEPTED
    )


def test_with_two_workers_every_scrape_counts_the_requests_both_workers_answered(
    kafka_bootstrap: str, topic: str, postgres_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    stale = directory / "counter_999999.db"  # as a worker of an earlier run would leave it
    stale.write_bytes(b"")
    with running_stack(kafka_bootstrap, postgres_url, topic, tmp_path, services=()) as stack:
        env = stack.env | {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
        with (tmp_path / "ingest.log").open("ab") as log:
            stack.processes["ingest"] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", "ingest", "--workers", "2"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(f"{stack.ingest_url}/readyz")
        token = stack.token("reporter", "436")
        sent = 0
        # Until both workers answered some (each request on a new connection, which either
        # worker may accept), bounded.
        deadline = time.monotonic() + 60
        while len(per_worker := accepted_per_worker(directory)) < 2 or sent < 20:
            assert time.monotonic() < deadline, f"one worker answered all {sent}: {per_worker}"
            event = copy.deepcopy(EXAMPLES["ConferenceHeld"]) | {"event_id": str(uuid.uuid4())}
            response = httpx.post(
                f"{stack.ingest_url}/v1/events",
                json=event,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert response.status_code == 202, response.text
            sent += 1
        scrapes = [scraped_accepted(stack.ingest_url) for _ in range(8)]
        per_worker = accepted_per_worker(directory)

    assert not stale.exists()  # emptied at start
    assert len(per_worker) == 2 and min(per_worker.values()) > 0, per_worker
    assert sum(per_worker.values()) == sent
    assert scrapes == [sent] * len(scrapes)


def test_one_worker_keeps_its_own_registry_unless_a_directory_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert prepare_worker_metrics(IngestSettings(), workers=1) is None

    named = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(named))
    assert prepare_worker_metrics(IngestSettings(), workers=1) == named
    assert named.is_dir()


def test_a_metrics_directory_that_cannot_be_made_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(occupied / "metrics"))
    with pytest.raises(RuntimeError, match="set PROMETHEUS_MULTIPROC_DIR to a writable"):
        prepare_worker_metrics(IngestSettings(), workers=2)
