"""`make drill`: a bounded fault drill. Nothing answered 202 may be lost or counted twice.

Unit clients (legacy districts before the 2025 reform, communes after) post events (single and
in batches) with retries and deliberate resends; the projector is killed with SIGKILL several
times, and PostgreSQL and the broker are each restarted once meanwhile. At the end every
accepted event must be in the log and in the aggregates exactly once (checked by counting
against the clients' own records and by `ledger verify`), and no request may have had a 5xx
other than 503 while a dependency was down: neither the clients' posts nor a dashboard's
summaries, asked of the query API all along.

On a cluster (`make drill CLUSTER=3`: --nodes 3, the events topic with 3 copies and
min.insync.replicas 2), the broker is not restarted as a whole: the leader of the topic's
partitions is SIGKILLed in turn, each node once (whichever leads most partitions among those
not killed yet), kept down past the cluster's session timeout so that its partitions get new
leaders, then started again and waited for until every partition has 3 in-sync copies.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.run import ROOT, exit_on_sigterm, fresh_bodies, ledger, reporting_units, service
from services.topics import ensure_topics
from services.web.auth import create_token
from shared.db.engine import make_engine, migrate
from shared.db.schema import read_models
from tests.cluster import LocalCluster
from tests.support import free_port, wait_for

# How long a killed leader stays down: past the cluster's broker.session.timeout.ms (3 s), so
# that it is fenced and its partitions are led by the others meanwhile.
LEADER_DOWN_SECONDS = 5

# The figures the drill checks against its own records: (event type, payload field or None to
# count events) -> the daily figure that must sum to it.
CHECKED = {
    ("ConferenceHeld", None): "conferences",
    ("ConferenceHeld", "attendees"): "conference_attendees",
    ("OutreachSessionHeld", "sessions"): "outreach_sessions",
    ("CitizenTipsReceived", "tips"): "tips",
    ("CaseResolved", None): "cases_resolved",
    ("ProgramSigned", None): "programs_signed",
}


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates_answered: int = 0
    resends: int = 0
    unavailable: int = 0
    unavailable_at: list[float] = field(default_factory=list)  # time.monotonic() of each 503
    other_5xx: list[str] = field(default_factory=list)
    retries: int = 0
    summaries: Counter[str] = field(default_factory=Counter)  # the dashboard's answers, by kind


def post_with_retries(
    client: httpx.Client, path: str, body: Any, tally: Tally, deadline: float
) -> Any:
    """Post until a non-5xx answer, as a unit's system on a poor link would."""
    while time.monotonic() < deadline:
        try:
            response = client.post(path, json=body)
        except httpx.HTTPError:
            tally.retries += 1
            time.sleep(0.2)
            continue
        if response.status_code == 503:
            with tally.lock:
                tally.unavailable += 1
                tally.unavailable_at.append(time.monotonic())
            time.sleep(float(response.headers.get("Retry-After", "1")) / 5)
            continue
        if response.status_code >= 500:
            with tally.lock:
                tally.other_5xx.append(f"{response.status_code} {response.text[:200]}")
            time.sleep(0.2)
            continue
        return response
    raise TimeoutError("the drill ran out of time posting")


def unit_client(
    url: str,
    token: str,
    events: list[dict[str, Any]],
    tally: Tally,
    deadline: float,
    seconds: float,
) -> None:
    """Post ``events`` paced over about ``seconds``, so the faults land while posting goes on."""
    rng = random.Random(token)
    started = time.monotonic()
    with httpx.Client(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        i = 0
        while i < len(events):
            time.sleep(max(0.0, started + seconds * i / len(events) - time.monotonic()))
            size = 1 if rng.random() < 0.3 else rng.randrange(2, 200)
            chunk = events[i : i + size]
            i += size
            for attempt in range(2 if rng.random() < 0.05 else 1):  # now and then resend it all
                path = "/v1/events" if len(chunk) == 1 else "/v1/events/batch"
                response = post_with_retries(
                    client, path, chunk[0] if len(chunk) == 1 else chunk, tally, deadline
                )
                if response.status_code != 202:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                receipts = [response.json()] if len(chunk) == 1 else response.json()["receipts"]
                with tally.lock:
                    tally.sent += len(chunk) if attempt == 0 else 0
                    tally.resends += len(chunk) if attempt else 0
                    for event, receipt in zip(chunk, receipts, strict=True):
                        tally.accepted.setdefault(event["event_id"], event)
                        tally.duplicates_answered += receipt["status"] == "duplicate"


def dashboard(url: str, token: str, tally: Tally, stop: threading.Event) -> None:
    """A provincial dashboard asking for its summary ten times a second through the faults: it
    must get the current figures, remembered ones marked with ``Age`` while the database is
    down, or a 503, and never another 5xx."""
    with httpx.Client(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        while not stop.wait(0.1):
            try:
                response = client.get("/v1/summary", params={"group_by": "province"})
            except httpx.HTTPError:
                kind = "no answer"
            else:
                status = response.status_code
                kind = (
                    ("remembered" if "age" in response.headers else "current")
                    if status == 200
                    else str(status)
                )
                if status >= 500 and status != 503:
                    with tally.lock:
                        tally.other_5xx.append(f"GET /v1/summary: {status} {response.text[:200]}")
            with tally.lock:
                tally.summaries[kind] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=45, help="how long the clients post")
    parser.add_argument(
        "--nodes",
        type=int,
        default=int(os.environ.get("KAFKA_NODES", "1")),
        help="Kafka nodes (KAFKA_NODES): 1, or 3 and more to kill partition leaders in turn",
    )
    options = parser.parse_args(argv)
    if options.nodes == 2 or options.nodes < 1:
        parser.error(
            f"--nodes is 1, or 3 or more (a cluster that outlives a node), not {options.nodes}"
        )
    cluster = (
        LocalCluster(
            Path(os.environ["KAFKA_STATE_DIR"]),
            int(os.environ["KAFKA_PORT"]),
            options.nodes,
            int(os.environ["KAFKA_CONTROLLER_PORT"]),
        )
        if options.nodes > 1
        else None
    )
    copies, in_sync = (3, 2) if cluster else (1, 1)
    exit_on_sigterm()
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    control = os.environ["LEDGER_TEST_BROKER_CONTROL"]
    database_control = os.environ["LEDGER_TEST_DATABASE_CONTROL"]
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    admin = sa.create_engine(os.environ["DATABASE_URL"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "drill_{stamp}"')
    database_url = (
        sa.make_url(os.environ["DATABASE_URL"])
        .set(database=f"drill_{stamp}")
        .render_as_string(hide_password=False)
    )
    migrate(database_url)
    engine = make_engine(database_url)
    topic = f"drill-{stamp}"
    ensure_topics(
        bootstrap,
        topic,
        6,
        f"{topic}.dead-letters",
        replication_factor=copies,
        min_insync_replicas=in_sync,
    )
    if cluster:
        cluster.wait_in_sync(topic, copies)
    ingest_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EVENTS_TOPIC": topic,
        "DEAD_LETTER_TOPIC": f"{topic}.dead-letters",
        "INGEST_PORT": str(ingest_port),
        "API_PORT": str(api_port),
        "PROJECTOR_METRICS_PORT": str(free_port()),
        "PROJECTOR_GROUP_ID": f"drill-{stamp}",
        "PRODUCE_TIMEOUT_SECONDS": "5",
        "LOG_LEVEL": "WARNING",
        "EVENTS_TOPIC_REPLICATION_FACTOR": str(copies),
        "EVENTS_TOPIC_MIN_INSYNC_REPLICAS": str(in_sync),
    }
    # Two legacy districts (reporting before the 2025 reform) and two communes (after) in each
    # of Hà Tĩnh and Hà Nội: eight clients, as before.
    units = reporting_units(("42", "01"), 2)
    per_unit = options.events // len(units)
    tally = Tally()
    kills = 0
    leaders_killed: list[dict[str, Any]] = []
    deadline = time.monotonic() + 900
    reading = threading.Event()
    with (
        service(ledger("serve", "ingest", "--workers", "2"), env, "drill-ingest"),
        service(ledger("serve", "api"), env, "drill-api"),
    ):
        wait_for(f"http://127.0.0.1:{ingest_port}/readyz")
        wait_for(f"http://127.0.0.1:{api_port}/readyz")
        reader = threading.Thread(
            target=dashboard,
            args=(
                f"http://127.0.0.1:{api_port}",
                create_token(engine, "dashboard")[1],
                tally,
                reading,
            ),
            daemon=True,
        )
        reader.start()
        clients = [
            threading.Thread(
                target=unit_client,
                args=(
                    f"http://127.0.0.1:{ingest_port}",
                    create_token(engine, "reporter", unit_code=u)[1],
                    fresh_bodies(per_unit, u),
                    tally,
                    deadline,
                    options.seconds,
                ),
                daemon=True,  # so a terminated drill exits without waiting for them
            )
            for u in units
        ]
        for client in clients:
            client.start()
        projector = subprocess.Popen(ledger("serve", "projector"), env=env, cwd=ROOT)
        try:
            # Faults at fixed points of the posting window: the kills spread over it, the
            # database restart in its first half and the broker's in its second (on a cluster,
            # each node's kill as the leader spread over it), the kills a little jittered.
            # They are run one after another: a node is started again (and in sync) before the
            # next fault, so that at most one of the cluster's nodes is ever down.
            rng = random.Random(stamp)
            started = time.monotonic()
            faults: list[tuple[float, str]] = [
                (options.seconds * (i + 1) / (options.kills + 1) + rng.uniform(-1, 1), "projector")
                for i in range(options.kills)
            ]
            faults.append((options.seconds * 0.3, "database"))
            if cluster:
                for i in range(options.nodes):
                    at = options.seconds * (0.15 + 0.7 * i / (options.nodes - 1))
                    faults += [(at, "kill leader"), (at + LEADER_DOWN_SECONDS, "restart leader")]
            else:
                faults.append((options.seconds * 0.6, "broker"))
            faults.sort()
            restarted: list[str] = []
            down: list[int] = []
            # (what, from, to) in time.monotonic(): when each broker or database fault lasted.
            windows: list[tuple[str, float, float]] = []
            while faults:
                at, fault = faults[0]
                if time.monotonic() - started < at:
                    time.sleep(0.1)
                    continue
                faults.pop(0)
                if fault == "projector":
                    projector.send_signal(signal.SIGKILL)
                    projector.wait()
                    kills += 1
                    projector = subprocess.Popen(ledger("serve", "projector"), env=env, cwd=ROOT)
                elif fault in ("database", "broker"):
                    script = database_control if fault == "database" else control
                    began = time.monotonic()
                    subprocess.run([script, "stop"], check=True, capture_output=True)
                    time.sleep(3)
                    subprocess.run([script, "start"], check=True, capture_output=True)
                    restarted.append(script)
                    windows.append((f"{fault} restart", began, time.monotonic()))
                elif fault == "kill leader":
                    assert cluster is not None
                    victim, led = leader_to_kill(
                        cluster, topic, [k["node"] for k in leaders_killed]
                    )
                    down_since = time.monotonic()
                    cluster.kill(victim)
                    down.append(victim)
                    leaders_killed.append(
                        {"node": victim, "led_partitions": led, "at_s": round(at, 1)}
                    )
                else:  # restart leader
                    assert cluster is not None
                    node = down.pop()
                    cluster.start(node)
                    cluster.wait_in_sync(topic, copies)
                    windows.append(
                        (f"node {node} killed until in sync", down_since, time.monotonic())
                    )
            for client in clients:
                client.join()
            reading.set()
            reader.join()
            while applied(engine) < log_end(bootstrap, topic) and time.monotonic() < deadline:
                if projector.poll() is not None:  # else the drill would wait out its deadline
                    raise SystemExit(
                        f"drill FAILED: the projector exited ({projector.returncode}) before"
                        " applying the log; see its traceback above"
                    )
                time.sleep(0.5)
        finally:  # the projector of the moment, whichever kill it is past
            projector.terminate()
            projector.wait(timeout=30)

    figures = check(engine, tally)
    verify = subprocess.run(ledger("verify"), env=env, cwd=ROOT, capture_output=True, text=True)
    figures.update(
        events_sent=tally.sent,
        resends=tally.resends,
        accepted=len(tally.accepted),
        duplicates_answered=tally.duplicates_answered,
        answers_503=tally.unavailable,
        answers_503_by_fault=by_fault(tally.unavailable_at, windows),
        other_5xx=len(tally.other_5xx),
        projector_kills_survived=kills,
        database_restarts=restarted.count(database_control),
        broker_restarts=restarted.count(control),
        kafka_nodes=options.nodes,
        leaders_sigkilled=leaders_killed,
        verify_exit=verify.returncode,
        summaries_asked=sum(tally.summaries.values()),
        summaries_answered=dict(tally.summaries),
    )
    print(json.dumps(figures, indent=2))
    if tally.other_5xx:
        print("\n".join(tally.other_5xx[:10]), file=sys.stderr)
    if verify.returncode != 0:
        print(verify.stdout[-3000:], verify.stderr[-3000:], file=sys.stderr)
    ok = (
        figures["lost"] == 0
        and figures["double_counted"] == 0
        and not tally.other_5xx
        and tally.summaries["current"] > 0
        and not tally.summaries["no answer"]
        and verify.returncode == 0
    )
    print("drill passed" if ok else "drill FAILED")
    return 0 if ok else 1


def by_fault(times: list[float], windows: list[tuple[str, float, float]]) -> dict[str, int]:
    """The 503s counted against the fault they were answered during, else against one that
    ended at most PRODUCE_TIMEOUT_SECONDS (5 s here) before (a request sent before its end may
    wait that long for its 503), else as "no fault"."""
    counts: Counter[str] = Counter()
    for t in times:
        during = [what for what, began, ended in windows if began <= t <= ended]
        after = [what for what, _, ended in windows if ended < t <= ended + 5]
        counts[(during or after or ["no fault"])[0]] += 1
    return {what: counts[what] for what, _, _ in windows} | {"no fault": counts["no fault"]}


def leader_to_kill(cluster: LocalCluster, topic: str, killed: list[int]) -> tuple[int, list[int]]:
    """The node leading most of the topic's partitions among those not killed yet (any leader
    once all were), and the partitions it leads."""
    led: dict[int, list[int]] = {}
    for partition, leader in sorted(cluster.leaders(topic).items()):
        led.setdefault(leader, []).append(partition)
    candidates = [node for node in led if node not in killed] or list(led)
    victim = max(candidates, key=lambda node: len(led[node]))
    return victim, led[victim]


def applied(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(read_models.offsets.c.next_offset), 0))
            )
            or 0
        )


def log_end(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def check(engine: sa.Engine, tally: Tally) -> dict[str, Any]:
    """Count what the read models hold against what the clients were told was accepted."""
    archive, figures = read_models.archive, read_models.figures
    with engine.connect() as conn:
        archived = set(conn.scalars(sa.select(archive.c.event_id)))
        sums = (
            conn.execute(
                sa.select(
                    *[
                        sa.func.coalesce(sa.func.sum(figures.c[name]), 0).label(name)
                        for name in CHECKED.values()
                    ]
                )
            )
            .mappings()
            .one()
        )
    expected: Counter[str] = Counter()
    for event in tally.accepted.values():
        for (kind, payload_field), figure in CHECKED.items():
            if event["type"] == kind:
                expected[figure] += 1 if payload_field is None else event["payload"][payload_field]
    over = {
        name: int(sums[name]) - expected[name]
        for name in CHECKED.values()
        if int(sums[name]) != expected[name]
    }
    return {
        "lost": len(set(tally.accepted) - archived),
        "unexpected_in_archive": len(archived - set(tally.accepted)),
        "double_counted": sum(v for v in over.values() if v > 0),
        "figure_differences": over,
    }


if __name__ == "__main__":
    sys.exit(main())
