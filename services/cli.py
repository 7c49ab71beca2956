"""``ledger``: the one operator CLI, a thin layer over the three services."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.runtime import tune_garbage_collector
from shared.settings import CommonSettings, get_ingest_settings, get_projector_settings

app = typer.Typer(help="District Ledger operator commands.", no_args_is_help=True)
tokens_app = typer.Typer(help="Create, revoke and list API tokens.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
console = Console(stderr=True)


class Service(StrEnum):
    ingest = "ingest"
    projector = "projector"
    api = "api"


class Role(StrEnum):
    reporter = "reporter"
    dashboard = "dashboard"
    auditor = "auditor"
    district = "district"  # the older name of a reporter bound to a legacy district


@app.command()
def serve(
    service: Service,
    workers: Annotated[
        int, typer.Option(min=1, help="uvicorn worker processes (HTTP services)")
    ] = 1,
) -> None:
    """Run one service in the foreground until SIGTERM or Ctrl-C."""
    import uvicorn

    if service is Service.projector:
        from services.projector.main import main

        main()
        return
    if service is Service.ingest:
        from services.ingest.metrics import prepare_worker_metrics

        ingest = get_ingest_settings()
        prepare_worker_metrics(ingest, workers)  # before the workers start: they inherit it
        host, port, target = (
            ingest.ingest_host,
            ingest.ingest_port,
            "services.ingest.app:create_app",
        )
    else:
        from shared.settings import get_api_settings

        api = get_api_settings()
        host, port, target = api.api_host, api.api_port, "services.api.app:create_app"
    uvicorn.run(
        target,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Alembic revision")] = "head") -> None:
    """Bring the database schema up to date (Alembic), then make sure the Kafka topics exist
    and are as the settings say (partitions, replication, kept forever).

    An existing topic that is weaker than the settings ask (fewer partitions or copies, a lower
    min.insync.replicas, a retention, compaction, unclean leader election) makes it exit 1, so
    that deployments which run it before the services (docker-compose's `migrate`) do not start
    them on a log that can lose events; Kafka does not let it fix all of that itself. What is
    only stronger than asked, or concerns the dead-letter copy, is a warning.
    """
    from services.topics import TopicSetupError, ensure_topics
    from shared.db.engine import migrate as run_migrations

    settings = get_projector_settings()
    run_migrations(settings.database_url, revision)
    console.print(f"database migrated to {revision}")
    try:
        report = ensure_topics(
            settings.kafka_bootstrap_servers,
            settings.events_topic,
            settings.events_topic_partitions,
            settings.dead_letter_topic,
            replication_factor=settings.events_topic_replication_factor,
            min_insync_replicas=settings.events_topic_min_insync_replicas,
        )
    except TopicSetupError as exc:
        console.print(f"ERROR: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    replication = (
        f"replication factor {settings.events_topic_replication_factor},"
        f" min.insync.replicas {settings.events_topic_min_insync_replicas}"
    )
    for name in report.created:
        console.print(
            f"created topic {name} ({replication})", markup=False, highlight=False, soft_wrap=True
        )
    for finding in report.findings:
        console.print(str(finding), markup=False, highlight=False, soft_wrap=True)
    if report.fatal:
        console.print(
            f"topics do not match the settings: {len(report.fatal)} error(s) above",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    console.print(f"topics ready: {settings.events_topic}, {settings.dead_letter_topic}")


def _engine(settings: CommonSettings | None = None):  # type: ignore[no-untyped-def]
    from shared.db.engine import make_engine

    return make_engine((settings or get_projector_settings()).database_url)


@tokens_app.command("create")
def tokens_create(
    role: Annotated[Role, typer.Option(help="reporter, dashboard or auditor")],
    unit: Annotated[
        str | None,
        typer.Option(
            help=(
                "The unit a reporter token posts for: a commune (18073), a legacy district "
                "(436: events up to 2025-06-30), a province's office (42: also its units, in "
                "either edition) or legacy:CODE"
            )
        ),
    ] = None,
    district: Annotated[
        str | None, typer.Option(help="Older spelling of --unit, for a legacy district")
    ] = None,
    province: Annotated[
        str | None,
        typer.Option(
            help=(
                "Limit a dashboard token to one province: 33 sees today's Hưng Yên with its "
                "predecessors' history, legacy:34 only old Thái Bình's own events"
            )
        ),
    ] = None,
    label: Annotated[str | None, typer.Option(help="Who holds it")] = None,
) -> None:
    """Create a token; it is printed once, on the last line, and stored only as a hash."""
    from services.web.auth import ROLES, create_token
    from shared import registry

    if unit and district and unit != district:
        raise typer.BadParameter("--district is another name for --unit", param_hint="--district")
    unit = unit or district
    if role is Role.district:
        role = Role.reporter
        if unit and len(unit) != 3:
            raise typer.BadParameter(
                "a district token names a legacy district", param_hint="--unit"
            )
    if role is Role.reporter and not unit:
        raise typer.BadParameter("a reporter token needs --unit", param_hint="--unit")
    if role is not Role.reporter and unit:
        raise typer.BadParameter("only reporter tokens are bound to a unit", param_hint="--unit")
    if role is not Role.dashboard and province:
        raise typer.BadParameter(
            "only dashboard tokens are scoped to a province", param_hint="--province"
        )
    found = registry.lookup(unit) if unit else None
    if unit and found is None:
        raise typer.BadParameter(f"no unit {unit!r} in the registry", param_hint="--unit")
    scope = registry.lookup(province) if province else None
    if province and (scope is None or scope.level != "province"):
        raise typer.BadParameter(
            f"no province {province!r} in the registry", param_hint="--province"
        )
    [stored_role] = [r for r in ROLES if r == role.value]
    token_id, token = create_token(
        _engine(),
        stored_role,
        unit_code=found.key if found else None,
        province_code=scope.key if scope else None,
        label=label,
    )
    bound = f" for {found.describe()}" if found else f" scoped to {scope.key}" if scope else ""
    console.print(
        f"created {role.value} token {token_id}{bound}; keep it now, it is not shown again:"
    )
    print(token)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by its id (see ``tokens list``)."""
    from services.web.auth import revoke_token

    if not revoke_token(_engine(), token_id):
        console.print(f"no active token {token_id}")
        raise typer.Exit(1)
    console.print(f"revoked {token_id}")


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (ids, roles, scopes; never the secrets)."""
    import sqlalchemy as sa

    from shared.db.schema import tokens

    table = Table()
    table.add_column("id", no_wrap=True)  # operators copy it into `tokens revoke`: never cut it
    for name in ("role", "unit", "province", "label", "created", "revoked"):
        table.add_column(name)
    with _engine().connect() as conn:
        for row in conn.execute(sa.select(tokens).order_by(tokens.c.created_at)):
            table.add_row(
                row.token_id,
                row.role,
                row.unit_code or "",
                row.province_code or "",
                row.label or "",
                f"{row.created_at:%Y-%m-%d %H:%M}",
                f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "",
            )
    Console().print(table)


@app.command()
def demo(
    ingest_url: Annotated[str, typer.Option(help="Where ingest listens")] = "http://127.0.0.1:8001",
    small: Annotated[
        bool,
        typer.Option(
            help=(
                "Two units of each kind per province, from January 2025 (or of last year, if "
                "earlier), across the reform, to today"
            )
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Same seed, same events")] = 2022,
) -> None:
    """Load realistic sample data (modelled on the seed articles) through ingest, as the units
    do: legacy districts and provincial offices until 2025-06-30, communes and today's
    provincial offices from 2025-07-01, for Hà Tĩnh, Hà Nội, Hưng Yên (with Thái Bình) and Đồng
    Nai (with Bình Phước)."""
    import httpx
    from rich.progress import Progress

    from services.demo import census, generate
    from services.web.auth import create_token
    from shared.registry import REFORM_DAY

    today = date.today()
    if small:
        # Across the reform, and the dashboard opens on this year.
        first = min(today.year - 1, REFORM_DAY.year)
        data = generate(
            per_province=2, years=tuple(range(first, today.year + 1)), seed=seed, until=today
        )
    else:
        data = generate(seed=seed, until=today)  # from 2022
    engine = _engine()
    total = sum(len(events) for events in data.values())
    accepted = duplicates = 0
    with (
        httpx.Client(base_url=ingest_url, timeout=60) as client,
        Progress(console=console) as progress,
    ):
        task = progress.add_task("posting sample events", total=total)
        for unit, events in data.items():
            # Each unit's own reporter token; a provincial office's also files its units' late
            # reports.
            _, token = create_token(engine, "reporter", unit_code=unit, label="demo")
            for start in range(0, len(events), 1000):
                chunk = events[start : start + 1000]
                response = client.post(
                    "/v1/events/batch", json=chunk, headers={"Authorization": f"Bearer {token}"}
                )
                if response.status_code != 202:
                    console.print(
                        f"[red]ingest answered {response.status_code} to {unit}'s reports: "
                        f"{response.text[:500]}"
                    )
                    raise typer.Exit(1)
                statuses = [r["status"] for r in response.json()["receipts"]]
                accepted += statuses.count("accepted")
                duplicates += statuses.count("duplicate")
                progress.advance(task, len(chunk))
    table = Table(title="sample events posted")
    for name in ("reporting unit", "dated", "events"):
        table.add_column(name, justify="right" if name == "events" else "left")
    rows = sorted(census(data).items(), key=lambda row: (row[0][1].startswith("from"), row[0]))
    for (kind, period), count in rows:
        table.add_row(kind, period, f"{count:,}")
    console.print(table)
    console.print(f"{accepted} events accepted, {duplicates} already there, from {len(data)} units")


@app.command()
def replay(
    unit: Annotated[
        str | None,
        typer.Option(
            "--unit",
            "--district",
            help="Only this unit: a commune (18073), a district (436), a province (42) or legacy:CODE",
        ),
    ] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Only this event type, e.g. ConferenceHeld")
    ] = None,
    received_from: Annotated[
        str | None,
        typer.Option("--from", help="Received at or after: ISO 8601 datetime or date"),
    ] = None,
    received_to: Annotated[
        str | None,
        typer.Option("--to", help="Received at or before: ISO 8601 datetime or date (its end)"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout")] = None,
) -> None:
    """Write the log, or a slice of it, as NDJSON: what GET /v1/audit/events streams."""
    import sys

    from rich.progress import Progress

    from services.audit.log import KafkaLog, LogUnavailable, parse_instant
    from services.audit.replay import ReplayFilter, plan_replay, replay_lines
    from shared import registry
    from shared.db.schema import read_models
    from shared.events import EVENT_TYPES
    from shared.settings import get_api_settings

    if event_type is not None and event_type not in EVENT_TYPES:
        raise typer.BadParameter(f"one of {', '.join(sorted(EVENT_TYPES))}", param_hint="--type")
    found = registry.lookup(unit) if unit is not None else None
    if unit is not None and found is None:
        raise typer.BadParameter(f"no unit {unit!r} in the registry", param_hint="--unit")
    try:
        wanted = ReplayFilter(
            found.key if found else None,
            event_type,
            parse_instant(received_from) if received_from else None,
            parse_instant(received_to, end_of_day=True) if received_to else None,
        )
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 date or datetime: {exc}") from None
    settings = get_api_settings()
    engine = _engine(settings)
    sink = out.open("wb") if out else sys.stdout.buffer
    try:
        with (
            KafkaLog(settings.kafka_bootstrap_servers, settings.events_topic) as log,
            Progress(console=console, transient=out is None) as progress,
        ):
            plan = plan_replay(log, engine, read_models, wanted)
            task = progress.add_task("replaying the log", total=plan.records_to_read)
            for chunk in replay_lines(
                log, engine, read_models, plan, wanted, lambda n: progress.advance(task, n)
            ):
                sink.write(chunk)
    except LogUnavailable as exc:
        console.print(f"[red]Kafka did not answer: {exc}")
        raise typer.Exit(2) from None
    finally:
        sink.flush()
        if out:
            sink.close()


@app.command()
def verify(
    province: Annotated[str | None, typer.Option(help="Compare this province's rows only")] = None,
    heads: Annotated[
        bool,
        typer.Option(
            "--heads", help="Only export the chain head of every partition, as JSON, to keep"
        ),
    ] = False,
    against: Annotated[
        Path | None,
        typer.Option(help="A heads file exported earlier: prove the log still hashes to it"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of stdout")] = None,
) -> None:
    """Check the read models and the stored hash chain against the log, chunk by chunk.

    Prints a JSON report and exits 0 when consistent, 1 with the differences, 2 when Kafka or
    the database cannot be read (or a worker process ended). With --heads, prints the chain
    heads instead. On PostgreSQL the partitions are checked by VERIFY_WORKERS processes. Memory
    stays flat however long the log is; a progress bar shows how far it has read.
    """
    import json

    from rich.progress import Progress
    from sqlalchemy.exc import OperationalError

    from services.audit.log import KafkaLog, LogUnavailable
    from services.audit.verify import WorkerLost, log_heads, saved_heads
    from services.audit.verify import verify as verify_log
    from shared import registry
    from shared.db.schema import read_models
    from shared.settings import get_api_settings

    settings = get_api_settings()
    found = registry.lookup(province) if province is not None else None
    if province is not None and (
        found is None
        or found.key != province
        or found.level != "province"
        or province.startswith(registry.LEGACY_PREFIX)
    ):
        raise typer.BadParameter(
            f"not one of today's provinces: {province!r}", param_hint="--province"
        )
    saved = []
    if against is not None:
        try:
            document = json.loads(against.read_text())
            saved = saved_heads(document)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise typer.BadParameter(f"not a heads file: {exc}", param_hint="--against") from None
        if document.get("topic") not in (None, settings.events_topic):
            raise typer.BadParameter(
                f"heads of topic {document['topic']!r}, not {settings.events_topic!r}",
                param_hint="--against",
            )
    try:
        with KafkaLog(settings.kafka_bootstrap_servers, settings.events_topic) as log:
            if heads:
                report = log_heads(log)
            else:
                with Progress(console=console, transient=True) as progress:
                    task = progress.add_task("verifying the log", total=None)
                    report = verify_log(
                        log,
                        _engine(settings),
                        read_models,
                        province=province,
                        saved_heads=saved,
                        progress=lambda read, total: progress.update(
                            task, completed=read, total=total
                        ),
                        workers=settings.verify_workers,
                    )
    except (LogUnavailable, OperationalError, WorkerLost) as exc:
        console.print(f"[red]cannot verify now: {exc}")
        raise typer.Exit(2) from None
    text = json.dumps(report, ensure_ascii=False, indent=2) + "\n"
    if out:
        out.write_text(text)
    else:
        print(text, end="")
    if report.get("status") == "inconsistent":
        console.print(f"[red]{report['differences_total']} difference(s)")
        raise typer.Exit(1)


@app.command()
def rebuild(
    verify_only: Annotated[
        bool, typer.Option("--verify-only", help="Compare with the live read models; swap nothing")
    ] = False,
    batch: Annotated[int, typer.Option(help="Records per transaction")] = 5000,
) -> None:
    """Re-project the log from offset 0 into fresh tables, check them, and swap them in.

    The API keeps serving throughout. With --verify-only the exit status is 1 if the rebuilt and
    the live read models differ, and the differences are listed.
    """
    from services.projector.rebuild import Rebuild, RebuildError, print_report, run_with_progress

    settings = get_projector_settings()
    engine = _engine(settings)
    tune_garbage_collector()
    job = Rebuild(
        engine, settings.events_topic, settings.kafka_bootstrap_servers, batch_records=batch
    )
    try:
        report = run_with_progress(job, verify_only, console)
    except RebuildError as exc:
        console.print(f"[red]rebuild failed, nothing swapped: {exc}")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    print_report(report, console)
    if verify_only and not report.identical:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
