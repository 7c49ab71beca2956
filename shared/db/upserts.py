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
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

Rows = Sequence[dict[str, Any]]
STAGE_FROM_ROWS = 100  # below this, plain executemany is as fast


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
    stage = _stage(conn, table, names, rows)
    conn.execute(finish(postgresql.insert(table).from_select(names, sa.select(*stage.c))))
    conn.exec_driver_sql(f'TRUNCATE "{stage.name}"')


def _stage(conn: sa.Connection, table: sa.Table, names: list[str], rows: Rows) -> sa.TableClause:
    """COPY the rows into a session-local table shaped like ``table``."""
    name = f"stage_{table.name}"
    conn.exec_driver_sql(
        f'CREATE TEMP TABLE IF NOT EXISTS "{name}" (LIKE "{table.name}" INCLUDING DEFAULTS)'
    )
    as_json = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    columns = ", ".join(f'"{n}"' for n in names)
    driver = conn.connection.driver_connection
    assert driver is not None, "a checked-out connection has its driver connection"
    with driver.cursor() as cursor, cursor.copy(f'COPY "{name}" ({columns}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([json.dumps(row[n]) if n in as_json else row[n] for n in names])
    return sa.table(name, *[sa.column(n) for n in names])


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Rows) -> None:
    """A plain insert: a conflict is an error."""
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
