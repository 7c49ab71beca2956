"""Engines and migrations. Engines are built by callers (lifespan, main), never at import."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, *, statement_timeout: float = 0, **kwargs: Any) -> sa.Engine:
    """``statement_timeout`` (seconds, PostgreSQL; 0: none): each statement is cancelled past it
    (SQLSTATE 57014, raised as an OperationalError), and a caller waits no longer for a
    connection. SQLite has no such limit; it serves one machine."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    if statement_timeout:
        kwargs["pool_timeout"] = statement_timeout
        kwargs["connect_args"] = {
            "options": f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
        }
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


def database_answers(engine: sa.Engine) -> bool:
    """A readiness probe: true only if the database runs a query now."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError:
        return False
    return True


@contextmanager
def snapshot(engine: sa.Engine, *, shared: str | None = None) -> Iterator[sa.Connection]:
    """A read-only connection whose queries all see one moment of the database.

    PostgreSQL's REPEATABLE READ gives that. On SQLite a transaction does (WAL), but pysqlite
    begins one only at the first write: BEGIN is sent here, so the reads are one transaction.
    ``shared`` (PostgreSQL): a snapshot another transaction exported (``export_snapshot``), so
    that several processes read the same moment.
    """
    options: dict[str, Any] = {}
    if engine.dialect.name == "postgresql":
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        elif shared is not None:
            if not SNAPSHOT_ID.fullmatch(shared):
                raise ValueError(f"not a snapshot id: {shared!r}")
            # a utility statement takes no parameters; the id was checked above
            conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{shared}'")
        yield conn


SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


def export_snapshot(conn: sa.Connection) -> str:
    """The id other transactions import (``snapshot(shared=...)``) to see what ``conn``'s
    REPEATABLE READ transaction sees; valid while that transaction lasts (PostgreSQL)."""
    return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())


def _sqlite_engine(url: str, **kwargs: Any) -> sa.Engine:
    database = sa.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets the API read while the projector writes; the three services share the file.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
