"""`ledger tokens create|list|revoke` against a real database: what operators type."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from services.cli import app
from services.web.auth import authenticate, hash_token
from services.web.problems import Problem
from shared.db.engine import make_engine
from shared.db.schema import tokens
from shared.settings import get_projector_settings

runner = CliRunner()


@pytest.fixture
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_projector_settings.cache_clear()
    yield database_url
    get_projector_settings.cache_clear()


def test_a_created_district_token_is_printed_last_stored_hashed_and_can_be_revoked(
    cli_database: str,
) -> None:
    created = runner.invoke(app, ["tokens", "create", "--role", "district", "--district", "436"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    engine = make_engine(cli_database)
    principal = authenticate(engine, f"Bearer {token}")
    assert (principal.role, principal.district_code) == ("district", "436")
    with engine.connect() as conn:
        stored = conn.execute(sa.select(tokens.c.token_hash)).scalars().all()
    assert stored == [hash_token(token)]

    listed = runner.invoke(app, ["tokens", "list"])
    assert principal.token_id in listed.stdout and token not in listed.stdout

    revoked = runner.invoke(app, ["tokens", "revoke", principal.token_id])
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(Problem):
        authenticate(engine, f"Bearer {token}")
    assert runner.invoke(app, ["tokens", "revoke", principal.token_id]).exit_code == 1
    engine.dispose()


@pytest.mark.parametrize(
    "arguments",
    [
        ["--role", "district"],
        ["--role", "district", "--district", "999"],
        ["--role", "dashboard", "--district", "436"],
        ["--role", "auditor", "--province", "42"],
        ["--role", "dashboard", "--province", "99"],
        ["--role", "king"],
    ],
)
def test_a_token_that_makes_no_sense_is_refused_and_nothing_is_stored(
    cli_database: str, arguments: list[str]
) -> None:
    result = runner.invoke(app, ["tokens", "create", *arguments])
    assert result.exit_code == 2, result.output
    engine = make_engine(cli_database)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(tokens)) == 0
    engine.dispose()
