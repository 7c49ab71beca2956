"""Bulk inserts and portable upserts: PostgreSQL and SQLite share the ON CONFLICT syntax,
through their dialects.

On PostgreSQL a large set of rows is first COPYed into a temporary staging table and then
inserted with one ``INSERT ... SELECT ... ON CONFLICT``: psycopg's executemany sends one statement
per row, and the projector spent most of each batch in those round trips (measured on this
machine: 5.9k events/s with executemany; see the change's closing note for the figure after).
SQLite's executemany runs in process and stays as it is.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

Rows = Sequence[dict[str, Any]]
STAGE_FROM_ROWS = 100  # below this, plain executemany is as fast
SQLITE_IN_CHUNK = 900  # under SQLite's default limit of bound parameters per statement


def one_of(
    conn: sa.Connection, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> Iterator[sa.ColumnElement[bool]]:
    """Conditions "column is one of values", as few as the database allows.

    PostgreSQL takes the whole list as one array parameter (``= ANY(:values)``); an IN list of
    thousands of literals cost the projector more to render and parse than to run. SQLite gets
    IN lists in chunks under its bound-parameter limit.
    """
    if not values:
        return
    if conn.dialect.name == "postgresql":
        yield column == sa.any_(
            sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        )
        return
    for start in range(0, len(values), SQLITE_IN_CHUNK):
        yield column.in_(values[start : start + SQLITE_IN_CHUNK])


@dataclass(frozen=True)
class _OnConflict:
    """What an insert does where a row's key exists: fail, skip the row, add onto it, replace it."""

    action: Literal["fail", "ignore", "add", "replace"]
    key: tuple[str, ...] = ()
    added: tuple[str, ...] = ()

    def finish(self, statement: Any, table: sa.Table) -> Any:
        if self.action == "ignore":
            return statement.on_conflict_do_nothing()
        if self.action == "add":
            return statement.on_conflict_do_update(
                index_elements=list(self.key),
                set_={name: table.c[name] + statement.excluded[name] for name in self.added},
            )
        if self.action == "replace":
            return statement.on_conflict_do_update(
                index_elements=list(self.key),
                set_={
                    c.name: statement.excluded[c.name]
                    for c in table.columns
                    if c.name not in self.key
                },
            )
        return statement


@functools.cache
def _statement(
    dialect: str, table: sa.Table, on_conflict: _OnConflict, staged: tuple[str, ...] | None
) -> Any:
    """The insert for ``table``, built once. Built for every batch, with its ON CONFLICT
    clause, it cost the projector a sixth of a small batch's time (measured: 100 events
    10.4-11.3 -> 9.0-9.2 ms, 10 events 3.6 -> 2.4-2.8 ms). ``staged``: the columns to read from
    the staging table instead of bound values."""
    if staged is None:
        insert = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    else:
        source = sa.table(_stage(table), *[sa.column(n) for n in staged])
        insert = postgresql.insert(table).from_select(list(staged), sa.select(*source.c))
    return on_conflict.finish(insert, table)


def _stage(table: sa.Table) -> str:
    """The temporary table big upserts into ``table`` are COPYed into first."""
    return f"stage_{table.name}"


def _write(conn: sa.Connection, table: sa.Table, rows: Rows, on_conflict: _OnConflict) -> None:
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect != "postgresql" or len(rows) < STAGE_FROM_ROWS:
        conn.execute(_statement(dialect, table, on_conflict, None), list(rows))
        return
    names = tuple(rows[0])
    stage = _stage(table)
    conn.exec_driver_sql(
        f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}" INCLUDING DEFAULTS)'
    )
    _copy(conn, stage, table, list(names), rows)
    conn.execute(_statement(dialect, table, on_conflict, names))
    conn.exec_driver_sql(f'TRUNCATE "{stage}"')


def _copy(conn: sa.Connection, into: str, table: sa.Table, names: list[str], rows: Rows) -> None:
    """COPY rows shaped like ``table`` into the table named ``into``."""
    as_json = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    columns = ", ".join(f'"{n}"' for n in names)
    driver = conn.connection.driver_connection
    assert driver is not None, "a checked-out connection has its driver connection"
    statement = f'COPY "{into}" ({columns}) FROM STDIN'
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([json.dumps(row[n]) if n in as_json else row[n] for n in names])
    except conn.dialect.loaded_dbapi.Error as exc:
        # Raised past SQLAlchemy: wrap it as SQLAlchemy would (a duplicate key becomes an
        # IntegrityError, which the projector retries), so callers see one family of errors.
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
        ) from exc


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Rows) -> None:
    """A plain insert: a conflict is an error. Many rows on PostgreSQL are COPYed straight in."""
    if conn.dialect.name == "postgresql" and len(rows) >= STAGE_FROM_ROWS:
        _copy(conn, table.name, table, list(rows[0]), rows)
        return
    _write(conn, table, rows, _OnConflict("fail"))


def insert_ignoring_conflicts(conn: sa.Connection, table: sa.Table, rows: Rows) -> None:
    _write(conn, table, rows, _OnConflict("ignore"))


def insert_or_add(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    added: Sequence[str],
) -> None:
    """Insert rows; where the key exists already, add the ``added`` columns onto it."""
    _write(conn, table, rows, _OnConflict("add", tuple(key), tuple(added)))


def insert_or_replace(
    conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], key: Sequence[str]
) -> None:
    _write(conn, table, rows, _OnConflict("replace", tuple(key)))
