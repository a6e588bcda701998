"""An SQLite MLflow store's state, read with sqlite3 (opening it through MLflow would create or migrate it)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

# what a job needs before it may open the store through MLflow
SCHEMA_TABLES = frozenset({"alembic_version", "experiments", "runs", "metrics", "params", "tags"})


def tables(file: Path) -> set[str] | None:
    """Table names of an SQLite file (None: not a database), read-only so nothing is created."""
    try:
        with contextlib.closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as db:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return None


def count_runs(file: Path) -> int:
    if "runs" not in (tables(file) or set()):
        return 0
    with contextlib.closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as db:
        return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def has_schema(file: Path) -> bool:
    return SCHEMA_TABLES <= (tables(file) or set())


def forget_engine(uri: str) -> None:
    """Drop MLflow's cached engine for an SQLite URI whose file is replaced (its pool holds the old file)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
    if engine is not None:
        engine.dispose()
