"""Bulk inserts and portable upserts: PostgreSQL and SQLite share the ON CONFLICT syntax,
through their dialects.

On PostgreSQL a large set of rows is first COPYed into a temporary staging table and then
inserted with one ``INSERT ... SELECT ... ON CONFLICT``: psycopg's executemany sends one statement
per row, and the projector spent most of each batch in those round trips (measured on this
machine: 5.9k events/s with executemany; see the change's closing note for the figure after).
SQLite's executemany runs in process and stays as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _write(conn: sa.Connection, table: sa.Table, rows: Rows, finish: Callable[[Any], Any]) -> None:
    if not rows:
        return
    if conn.dialect.name != "postgresql" or len(rows) < STAGE_FROM_ROWS:
        conn.execute(finish(_insert(conn, table)), list(rows))
        return
    names = list(rows[0])
    stage = f"stage_{table.name}"
    conn.exec_driver_sql(
        f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}" INCLUDING DEFAULTS)'
    )
    _copy(conn, stage, table, names, rows)
    staged = sa.table(stage, *[sa.column(n) for n in names])
    conn.execute(finish(postgresql.insert(table).from_select(names, sa.select(*staged.c))))
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
    _write(conn, table, rows, lambda statement: statement)


def insert_ignoring_conflicts(conn: sa.Connection, table: sa.Table, rows: Rows) -> None:
    _write(conn, table, rows, lambda statement: statement.on_conflict_do_nothing())


def insert_or_add(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    added: Sequence[str],
) -> None:
    """Insert rows; where the key exists already, add the ``added`` columns onto it."""
    _write(
        conn,
        table,
        rows,
        lambda statement: statement.on_conflict_do_update(
            index_elements=list(key),
            set_={name: table.c[name] + statement.excluded[name] for name in added},
        ),
    )


def insert_or_replace(
    conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], key: Sequence[str]
) -> None:
    _write(
        conn,
        table,
        rows,
        lambda statement: statement.on_conflict_do_update(
            index_elements=list(key),
            set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in key},
        ),
    )
