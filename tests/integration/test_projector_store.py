"""The projector's store, poison handling and rebuild, in process, on SQLite and PostgreSQL.

Records go through the real broker (so the rebuild and the dead-letter topic are exercised for
real); the projector and the rebuild run in this process, so a fold can be made to fail.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from services.projector.consumer import Projector
from services.projector.rebuild import Rebuild
from services.projector.store import ReadModelStore
from shared import events as ev
from shared import folds
from shared.db.schema import read_models
from shared.events import parse_event
from shared.examples import EXAMPLES
from shared.projection import Record
from shared.records import encode_event

HA_TINH_CITY = "436"


def event(kind: str, district: str = HA_TINH_CITY, **payload: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLES[kind])
    body["event_id"] = str(uuid.uuid4())
    body["unit_code"] = district
    body["payload"].update(payload)
    return body


def retraction(of: dict[str, Any]) -> dict[str, Any]:
    return event("EventRetracted", of["unit_code"], retracted_event_id=of["event_id"])


def encoded(body: dict[str, Any]) -> bytes:
    return encode_event(parse_event(body), datetime.now(UTC))


def produce(bootstrap: str, topic: str, values: list[bytes], key: str = HA_TINH_CITY) -> None:
    """Write raw record values, in order, to the partition of one district."""
    produce_keyed(bootstrap, topic, [(key, value) for value in values])


def produce_keyed(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    # One request in flight: a retried send cannot overtake the next one.
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_in_flight_requests_per_connection=1
    )
    try:
        for key, value in records:
            producer.send(topic, key=key.encode(), value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def log_of(bootstrap: str, topic: str) -> list[Record]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps)
        records: list[Record] = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records += [Record(tp.partition, r.offset, r.value) for r in batch]
        return records
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: o for tp, o in consumer.end_offsets(tps).items() if o}
    finally:
        consumer.close()


def rows(engine: sa.Engine, table: sa.Table, *ignored: str) -> list[tuple[Any, ...]]:
    columns = [c for c in table.columns if c.name not in ignored]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*columns).order_by(*table.primary_key))]


def snapshot(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every read model's rows, minus the wall-clock columns."""
    t = read_models
    return {
        "offsets": rows(engine, t.offsets, "updated_at"),
        "archive": rows(engine, t.archive),
        "figures": rows(engine, t.figures),
        "programs": rows(engine, t.programs),
        "conferences": rows(engine, t.conferences),
        "cases": rows(engine, t.cases),
        "dead_letters": rows(engine, t.dead_letters, "parked_at"),
    }


@pytest.fixture
def store(engine: sa.Engine) -> ReadModelStore:
    return ReadModelStore(engine, read_models, "events")


def figures_of(engine: sa.Engine, district: str = HA_TINH_CITY) -> dict[str, int]:
    t = read_models.figures
    with engine.connect() as conn:
        summed = conn.execute(
            sa.select(*(sa.func.sum(t.c[name]).label(name) for name in folds.STORED_FIGURES)).where(
                t.c.unit_code == district
            )
        ).one()
    return {name: int(value or 0) for name, value in summed._mapping.items() if value}


# --- the store -------------------------------------------------------------------------------


def test_a_batch_read_again_after_it_was_applied_changes_nothing(
    store: ReadModelStore, engine: sa.Engine
) -> None:
    batch = [
        Record(0, 0, encoded(event("ConferenceHeld", attendees=40))),
        Record(0, 1, encoded(event("ConferenceHeld", attendees=60))),
    ]
    first = store.apply(batch)
    again = store.apply(batch)

    assert (first.applied, first.next_offsets) == (2, {0: 2})
    assert (again.applied, again.skipped_already_applied) == (0, 2)
    assert figures_of(engine) == {"conferences": 2, "conference_attendees": 100}


def test_a_batch_that_starts_past_the_stored_offset_is_refused_and_the_consumer_told_to_rewind(
    store: ReadModelStore, engine: sa.Engine
) -> None:
    store.apply([Record(1, 0, encoded(event("ConferenceHeld")))])

    result = store.apply([Record(1, 5, encoded(event("ConferenceHeld")))])

    assert result.rewind == {1: 1}
    assert result.applied == 0
    assert store.stored_offsets() == {1: 1}


def test_a_resent_event_and_a_retraction_in_one_batch_leave_the_event_counted_once_then_not(
    store: ReadModelStore, engine: sa.Engine
) -> None:
    conference = event("ConferenceHeld", attendees=25)
    store.apply([Record(0, 0, encoded(conference)), Record(0, 1, encoded(conference))])
    assert figures_of(engine) == {"conferences": 1, "conference_attendees": 25}

    taken_back = retraction(conference)
    result = store.apply(
        [
            Record(0, 2, encoded(taken_back)),
            Record(0, 3, encoded(retraction(conference))),  # already retracted: recorded
            Record(0, 4, encoded(event("EventRetracted", retracted_event_id=str(uuid.uuid4())))),
        ]
    )

    assert result.applied == 3
    assert figures_of(engine) == {}
    with engine.connect() as conn:
        query = sa.select(read_models.archive.c.offset, read_models.archive.c.note)
        notes = {offset: note for offset, note in conn.execute(query)}
        retracted_by = conn.scalar(
            sa.select(read_models.archive.c.retracted_by).where(
                read_models.archive.c.event_id == conference["event_id"]
            )
        )
    assert retracted_by == taken_back["event_id"]
    assert notes == {0: None, 2: None, 3: "already_retracted", 4: "unknown_event"}


def test_a_retraction_of_another_districts_event_is_unknown_even_when_that_event_was_applied(
    store: ReadModelStore, engine: sa.Engine
) -> None:
    # The two districts' events sit in different partitions, applied in whatever order the
    # projector, a rebuild or a verify happens to read them: the outcome must not depend on it.
    elsewhere = event("ConferenceHeld", "437", attendees=9)
    store.apply([Record(0, 0, encoded(elsewhere))])

    store.apply([Record(1, 0, encoded(retraction(elsewhere) | {"unit_code": "436"}))])

    archive = read_models.archive
    with engine.connect() as conn:
        notes = conn.execute(sa.select(archive.c.partition, archive.c.note, archive.c.retracted_by))
        assert sorted(tuple(row) for row in notes) == [(0, None, None), (1, "unknown_event", None)]
    assert figures_of(engine, "437") == {"conferences": 1, "conference_attendees": 9}


# --- poison ----------------------------------------------------------------------------------


def dead_letter_topic_records(bootstrap: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning()
        end = consumer.end_offsets([tp])[tp]
        found: list[Any] = []
        while consumer.position(tp) < end:
            for batch in consumer.poll(timeout_ms=500).values():
                found += batch
        return found
    finally:
        consumer.close()


def run_projector_until(projector: Projector, store: ReadModelStore, ends: dict[int, int]) -> None:
    """Run the real loop in a thread until the store has reached ``ends``, then stop it."""
    caught_up = threading.Event()

    def watch(_: object) -> None:
        stored = store.stored_offsets()
        if all(stored.get(p, 0) >= end for p, end in ends.items()):
            caught_up.set()
            projector.stop()

    thread = threading.Thread(target=projector.run, kwargs={"on_batch": watch}, daemon=True)
    thread.start()
    caught_up.wait(timeout=90)
    projector.stop()
    thread.join(timeout=30)
    assert caught_up.is_set(), f"the projector did not reach {ends}: {store.stored_offsets()}"


def test_poison_records_are_parked_with_reason_and_position_and_the_events_after_them_applied(
    engine: sa.Engine, kafka_bootstrap: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fold(e: Any) -> dict[str, int]:
        raise RuntimeError("a bug in this build")

    kind: type[ev.Envelope] = ev.CommendationAwarded
    monkeypatch.setitem(folds.FIGURE_FOLDS, kind, broken_fold)
    before, after = event("ConferenceHeld", attendees=10), event("ConferenceHeld", attendees=32)
    newer = event("ConferenceHeld") | {"schema_version": 3}
    unknown_type = event("ConferenceHeld") | {"type": "ConferenceCancelled"}
    values = [
        encoded(before),
        b"\xff not json at all",
        json.dumps(unknown_type | {"received_at": "2024-01-01T00:00:00+00:00"}).encode(),
        json.dumps(newer | {"received_at": "2024-01-01T00:00:00+00:00"}).encode(),
        encoded(event("CommendationAwarded")),
        encoded(after),
    ]
    produce(kafka_bootstrap, topic, values)
    [(partition, end)] = end_offsets(kafka_bootstrap, topic).items()
    store = ReadModelStore(engine, read_models, topic)
    projector = Projector(
        store, kafka_bootstrap, f"group-{uuid.uuid4().hex[:8]}", f"{topic}.dead-letters"
    )
    parked_before = REGISTRY.get_sample_value("projector_dead_letters_total") or 0

    run_projector_until(projector, store, {partition: end})

    dead = read_models.dead_letters
    with engine.connect() as conn:
        parked = {
            row.offset: row.reason
            for row in conn.execute(sa.select(dead).where(dead.c.partition == partition))
        }
    assert sorted(parked) == [1, 2, 3, 4]
    assert parked[1].startswith("not JSON")
    assert "ConferenceCancelled" in parked[2]
    assert "newer than this build" in parked[3]
    assert parked[4] == "fold failed: RuntimeError: a bug in this build"
    assert figures_of(engine) == {"conferences": 2, "conference_attendees": 42}
    assert store.stored_offsets() == {partition: 6}
    copies = dead_letter_topic_records(kafka_bootstrap, f"{topic}.dead-letters")
    positions = [json.loads(dict(c.headers)["position"]) for c in copies]
    assert positions == [[partition, offset] for offset in (1, 2, 3, 4)]
    assert [dict(c.headers)["reason"].decode() for c in copies] == [parked[o] for o in (1, 2, 3, 4)]
    assert copies[0].value == values[1]
    assert REGISTRY.get_sample_value("projector_dead_letters_total") == parked_before + 4


# --- rebuild ---------------------------------------------------------------------------------


@pytest.fixture
def projected_log(engine: sa.Engine, kafka_bootstrap: str, topic: str) -> Iterator[ReadModelStore]:
    """A log with duplicates, retractions and poison, applied to the live tables."""
    districts = ["436", "437", "001"]
    sent: list[dict[str, Any]] = []
    records: list[tuple[str, bytes]] = []
    for i in range(60):
        district = districts[i % 3]
        kind = ["ConferenceHeld", "ProgramSigned", "CaseResolved", "OutreachSessionHeld"][i % 4]
        body = event(kind, district)
        sent.append(body)
        records.append((district, encoded(body)))
        if i % 7 == 0:
            records.append((district, encoded(body)))  # a resend
        if i % 5 == 0 and i >= 3:
            records.append((district, encoded(retraction(sent[i - 3]))))  # same district
        if i == 10:
            records.append((district, b"not json"))
    produce_keyed(kafka_bootstrap, topic, records)
    store = ReadModelStore(engine, read_models, topic)
    store.apply(log_of(kafka_bootstrap, topic))
    yield store


def test_a_rebuild_equals_the_live_read_models_row_for_row_and_can_be_run_again(
    engine: sa.Engine, kafka_bootstrap: str, topic: str, projected_log: ReadModelStore
) -> None:
    live = snapshot(engine)

    first = Rebuild(engine, topic, kafka_bootstrap).run()
    second = Rebuild(engine, topic, kafka_bootstrap).run()

    assert first.identical and first.swapped, first.differences
    assert second.identical and second.swapped, second.differences
    assert snapshot(engine) == live
    assert first.applied == len(live["archive"])
    assert first.dead_letters == len(live["dead_letters"]) > 0
    names = set(sa.inspect(engine).get_table_names())
    assert not {n for n in names if n.startswith("rebuild_")}
    inspector = sa.inspect(engine)
    assert {i["name"] for i in inspector.get_indexes("cases")} == {
        "ix_cases_province",
        "ix_cases_reported",
    }
    if engine.dialect.name == "postgresql":  # SQLite's constraint names are not schema objects
        assert inspector.get_pk_constraint("cases")["name"] == "cases_pkey"
        [unique] = inspector.get_unique_constraints("event_archive")
        assert unique["name"] == "uq_archive_position"


def test_verify_only_lists_a_row_changed_by_hand_and_swaps_nothing(
    engine: sa.Engine, kafka_bootstrap: str, topic: str, projected_log: ReadModelStore
) -> None:
    figures = read_models.figures
    with engine.begin() as conn:
        day, district, leaflets = conn.execute(
            sa.select(figures.c.day, figures.c.unit_code, figures.c.leaflets)
            .order_by(figures.c.day)
            .limit(1)
        ).one()
        conn.execute(
            figures.update()
            .where(figures.c.day == day, figures.c.unit_code == district)
            .values(leaflets=figures.c.leaflets + 7)
        )
    tampered = snapshot(engine)

    report = Rebuild(engine, topic, kafka_bootstrap).run(verify_only=True)

    assert not report.swapped
    assert report.difference_counts["daily_figures"] == 1
    assert sum(report.difference_counts.values()) == 1
    [difference] = report.differences
    assert difference["key"] == {"day": day.isoformat(), "unit_code": district}
    assert difference["columns"] == {"leaflets": {"served": leaflets + 7, "log": leaflets}}
    assert snapshot(engine) == tampered


def test_after_a_swap_the_live_store_goes_on_from_the_swapped_offsets(
    engine: sa.Engine, kafka_bootstrap: str, topic: str, projected_log: ReadModelStore
) -> None:
    more = event("ConferenceHeld", "436", attendees=77)
    produce(kafka_bootstrap, topic, [encoded(more)], key="436")
    # The live tables lag one record behind the log; the rebuild goes to its end and swaps.
    Rebuild(engine, topic, kafka_bootstrap).run()
    log = log_of(kafka_bootstrap, topic)

    result = projected_log.apply(log)  # the live projector's next poll, from where it was

    assert result.applied == 0 and result.skipped_already_applied == len(log)
    with engine.connect() as conn:
        archived = conn.scalar(
            sa.select(sa.func.count())
            .select_from(read_models.archive)
            .where(read_models.archive.c.event_id == more["event_id"])
        )
    assert archived == 1
    assert Rebuild(engine, topic, kafka_bootstrap).run(verify_only=True).identical
