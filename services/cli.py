"""``ledger``: the one operator CLI, a thin layer over the three services."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

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
    district = "district"
    dashboard = "dashboard"
    auditor = "auditor"


@app.command()
def serve(
    service: Service,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes (HTTP services)")] = 1,
) -> None:
    """Run one service in the foreground until SIGTERM or Ctrl-C."""
    import uvicorn

    if service is Service.projector:
        from services.projector.main import main

        main()
        return
    if service is Service.ingest:
        ingest = get_ingest_settings()
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
    """Bring the database schema up to date (Alembic), then make sure the Kafka topics exist."""
    from services.topics import ensure_topics
    from shared.db.engine import migrate as run_migrations

    settings = get_projector_settings()
    run_migrations(settings.database_url, revision)
    console.print(f"database migrated to {revision}")
    ensure_topics(
        settings.kafka_bootstrap_servers,
        settings.events_topic,
        settings.events_topic_partitions,
        settings.dead_letter_topic,
    )
    console.print(f"topics ready: {settings.events_topic}, {settings.dead_letter_topic}")


def _engine(settings: CommonSettings | None = None):  # type: ignore[no-untyped-def]
    from shared.db.engine import make_engine

    return make_engine((settings or get_projector_settings()).database_url)


@tokens_app.command("create")
def tokens_create(
    role: Annotated[Role, typer.Option(help="district, dashboard or auditor")],
    district: Annotated[
        str | None, typer.Option(help="The district a district token posts for")
    ] = None,
    province: Annotated[
        str | None, typer.Option(help="Limit a dashboard token to one province")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Who holds it")] = None,
) -> None:
    """Create a token; it is printed once, on the last line, and stored only as a hash."""
    import sqlalchemy as sa

    from services.web.auth import create_token
    from shared.db.schema import districts, provinces

    if role is Role.district and not district:
        raise typer.BadParameter("a district token needs --district", param_hint="--district")
    if role is not Role.district and district:
        raise typer.BadParameter(
            "only district tokens are bound to a district", param_hint="--district"
        )
    if role is not Role.dashboard and province:
        raise typer.BadParameter(
            "only dashboard tokens are scoped to a province", param_hint="--province"
        )
    engine = _engine()
    with engine.connect() as conn:
        if (
            district
            and conn.scalar(sa.select(districts.c.code).where(districts.c.code == district)) is None
        ):
            raise typer.BadParameter(f"unknown district {district!r}", param_hint="--district")
        if (
            province
            and conn.scalar(sa.select(provinces.c.code).where(provinces.c.code == province)) is None
        ):
            raise typer.BadParameter(f"unknown province {province!r}", param_hint="--province")
    token_id, token = create_token(
        engine, role.value, district_code=district, province_code=province, label=label
    )
    console.print(f"created {role.value} token {token_id}; keep it now, it is not shown again:")
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

    table = Table("id", "role", "district", "province", "label", "created", "revoked")
    with _engine().connect() as conn:
        for row in conn.execute(sa.select(tokens).order_by(tokens.c.created_at)):
            table.add_row(
                row.token_id,
                row.role,
                row.district_code or "",
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
        bool, typer.Option(help="Three districts of two provinces, two years")
    ] = False,
    seed: Annotated[int, typer.Option(help="Same seed, same events")] = 2022,
) -> None:
    """Load realistic sample data (modelled on the seed articles) through ingest, like districts do."""
    import httpx
    from rich.progress import Progress

    from services.demo import generate
    from services.web.auth import create_token

    if small:
        data = generate(provinces=("42", "01"), per_province=3, years=(2023, 2024), seed=seed)
    else:
        data = generate(seed=seed)
    engine = _engine()
    total = sum(len(events) for events in data.values())
    accepted = duplicates = 0
    with (
        httpx.Client(base_url=ingest_url, timeout=60) as client,
        Progress(console=console) as progress,
    ):
        task = progress.add_task("posting sample events", total=total)
        for district, events in data.items():
            _, token = create_token(engine, "district", district_code=district, label="demo")
            for start in range(0, len(events), 1000):
                chunk = events[start : start + 1000]
                response = client.post(
                    "/v1/events/batch", json=chunk, headers={"Authorization": f"Bearer {token}"}
                )
                if response.status_code != 202:
                    console.print(
                        f"[red]ingest answered {response.status_code}: {response.text[:500]}"
                    )
                    raise typer.Exit(1)
                statuses = [r["status"] for r in response.json()["receipts"]]
                accepted += statuses.count("accepted")
                duplicates += statuses.count("duplicate")
                progress.advance(task, len(chunk))
    console.print(
        f"{accepted} events accepted, {duplicates} already there, from {len(data)} districts"
    )


if __name__ == "__main__":
    app()
