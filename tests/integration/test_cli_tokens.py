"""`ledger tokens create|list|revoke` against a real database: what operators type."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from services.cli import app
from services.web.auth import Principal, authenticate, hash_token
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


def created_principal(database_url: str, arguments: list[str]) -> tuple[str, Principal]:
    """Run ``tokens create`` with ``arguments``; the token it printed last, and who it is."""
    created = runner.invoke(app, ["tokens", "create", *arguments])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    engine = make_engine(database_url)
    try:
        return token, authenticate(engine, f"Bearer {token}")
    finally:
        engine.dispose()


def stored_tokens(database_url: str) -> list[sa.Row[tuple[str, str | None, str | None]]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(sa.select(tokens.c.role, tokens.c.unit_code, tokens.c.province_code))
            )
    finally:
        engine.dispose()


def test_a_created_reporter_token_is_printed_last_stored_hashed_and_can_be_revoked(
    cli_database: str,
) -> None:
    token, principal = created_principal(cli_database, ["--role", "reporter", "--unit", "436"])
    assert (principal.role, principal.unit_code, principal.province_code) == (
        "reporter",
        "436",
        None,
    )
    engine = make_engine(cli_database)
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


def test_the_older_district_role_still_creates_a_reporter_of_that_legacy_district(
    cli_database: str,
) -> None:
    _, principal = created_principal(cli_database, ["--role", "district", "--district", "436"])
    assert (principal.role, principal.unit_code, principal.province_code) == (
        "reporter",
        "436",
        None,
    )
    # Stored under the new role: no token row says "district" any more.
    assert [tuple(row) for row in stored_tokens(cli_database)] == [("reporter", "436", None)]
    # --district is another name for --unit with the new role too.
    _, renamed = created_principal(cli_database, ["--role", "reporter", "--district", "437"])
    assert (renamed.role, renamed.unit_code) == ("reporter", "437")


@pytest.mark.parametrize(
    ("unit", "stored"),
    [
        ("18073", "18073"),  # a commune (Phường Thành Sen, Hà Tĩnh), from 2025-07-01
        ("42", "42"),  # today's Hà Tĩnh: the provincial office
        ("legacy:34", "legacy:34"),  # old Thái Bình's provincial office, until 2025-06-30
        ("001", "001"),  # a legacy district of another province (Quận Ba Đình, Hà Nội)
    ],
)
def test_a_reporter_token_is_bound_to_a_unit_of_either_edition(
    cli_database: str, unit: str, stored: str
) -> None:
    _, principal = created_principal(cli_database, ["--role", "reporter", "--unit", unit])
    assert (principal.role, principal.unit_code, principal.province_code) == (
        "reporter",
        stored,
        None,
    )
    assert [tuple(row) for row in stored_tokens(cli_database)] == [("reporter", stored, None)]


@pytest.mark.parametrize("province", ["42", "legacy:34"])
def test_a_dashboard_token_is_scoped_to_todays_province_or_a_legacy_one(
    cli_database: str, province: str
) -> None:
    _, principal = created_principal(cli_database, ["--role", "dashboard", "--province", province])
    assert (principal.role, principal.unit_code, principal.province_code) == (
        "dashboard",
        None,
        province,
    )
    listed = runner.invoke(app, ["tokens", "list"])
    assert listed.exit_code == 0, listed.output
    assert principal.token_id in listed.stdout and province in listed.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--role", "reporter", "--unit", "99999"], "no unit '99999' in the registry"),
        (["--role", "reporter"], "a reporter token needs --unit"),
        (["--role", "reporter", "--unit", "436", "--district", "437"], "another name for --unit"),
        (["--role", "reporter", "--unit", "legacy:99"], "no unit 'legacy:99' in the registry"),
        (["--role", "district"], "a reporter token needs --unit"),
        (["--role", "district", "--district", "999"], "no unit '999' in the registry"),
        (["--role", "district", "--unit", "18073"], "a district token names a legacy district"),
        (["--role", "dashboard", "--district", "436"], "only reporter tokens are bound to a unit"),
        (["--role", "dashboard", "--unit", "18073"], "only reporter tokens are bound to a unit"),
        (["--role", "auditor", "--province", "42"], "only dashboard tokens are scoped"),
        (["--role", "reporter", "--unit", "436", "--province", "42"], "only dashboard tokens"),
        (["--role", "dashboard", "--province", "99"], "no province '99' in the registry"),
        (["--role", "dashboard", "--province", "legacy:99"], "no province 'legacy:99'"),
        (["--role", "dashboard", "--province", "18073"], "no province '18073' in the registry"),
        (["--role", "king"], "king"),
    ],
)
def test_a_token_that_makes_no_sense_is_refused_with_a_clear_message_and_nothing_is_stored(
    cli_database: str, arguments: list[str], message: str
) -> None:
    result = runner.invoke(app, ["tokens", "create", *arguments])
    assert result.exit_code == 2, result.output
    # The error box may wrap a long line: compare the words.
    assert " ".join(message.split()) in " ".join(result.output.split()), result.output
    assert stored_tokens(cli_database) == []


@pytest.mark.parametrize("province", ["legacy:34", "99", "18073"])
def test_verify_takes_only_todays_provinces(province: str) -> None:
    refused = runner.invoke(app, ["verify", "--province", province])

    assert refused.exit_code == 2, refused.output
    assert "not one of today's provinces" in refused.output
