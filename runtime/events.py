"""Event envelopes and partition keys shared by every producer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def utc_now() -> datetime:
    # Millisecond precision: what timestamp-millis keeps, so a round trip compares equal.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_header(run_id: str | None) -> dict:
    """event_id, event_time, run_id: the fields every event starts with."""
    return {"event_id": str(uuid.uuid4()), "event_time": utc_now(), "run_id": run_id}


def item_key(seller_id: str | None, marketplace_id: str, reference: str) -> str:
    """Key of every per-item event: all events of one item stay in order on one partition."""
    return f"{seller_id or ''}|{marketplace_id}|{reference}"


def endpoint_for_mode(mode: str) -> str:
    """interfaces.md §2: test mode talks to the sandbox; preview and production to production."""
    return "test" if mode == "test" else "production"
