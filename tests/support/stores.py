"""Read stores for tests: SQLite in a folder of the test's, or a PostgreSQL schema of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from catalog_sync.recorder.store import ReadStore
from tests.support.requirements import POSTGRES_URL, postgres_answers, require

# Parametrise a store fixture with these: every such test runs on both databases.
STORE_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def migrated_store(kind: str, folder: Path) -> Iterator[ReadStore]:
    """A migrated read store of `kind`; a PostgreSQL schema is dropped afterwards."""
    schema = None
    if kind == "postgres":
        require(postgres_answers(), f"PostgreSQL does not answer at {POSTGRES_URL} (set TEST_POSTGRES_URL)")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        store = ReadStore(POSTGRES_URL, schema=schema)
    else:
        store = ReadStore(f"sqlite:///{folder / 'read.db'}")
    try:
        store.migrate()
        yield store
    finally:
        store.close()
        if schema:
            import psycopg
            from psycopg import sql

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
