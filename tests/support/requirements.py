"""What a test needs from the machine, and what happens when it is absent: skip on a user's
machine, fail in CI (CATALOG_SYNC_STRICT=1)."""

from __future__ import annotations

import os

import pytest

STRICT_ENV = "CATALOG_SYNC_STRICT"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://catalog_sync:catalog_sync@127.0.0.1:5432/test")


def strict() -> bool:
    """CI sets CATALOG_SYNC_STRICT=1: a missing tool fails the test instead of skipping it."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0", "false")


def require(condition: bool, reason: str) -> None:
    """Skip (on a user's machine) or fail (in CI) when something the test needs is absent."""
    if condition:
        return
    if strict():
        pytest.fail(f"{reason} ({STRICT_ENV} is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def postgres_answers(url: str = POSTGRES_URL) -> bool:
    """Whether the test PostgreSQL server accepts connections (tests `require` it)."""
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=3).close()
        return True
    except Exception:
        return False
