"""Event envelopes and partition keys shared by every producer."""

from __future__ import annotations

import random
from datetime import UTC, datetime

_VERSION_4 = 0x4 << 76
_VARIANT_RFC4122 = 0x2 << 62
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def utc_now() -> datetime:
    # Millisecond precision: what timestamp-millis keeps, so a round trip compares equal.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_event_id() -> str:
    """A random (version 4) UUID. From `random`, not os.urandom: ids need uniqueness, not secrecy,
    and a syscall per event showed up in worker profiles. `random` is reseeded in forked children."""
    h = "%032x" % ((random.getrandbits(128) & _CLEAR) | _VERSION_4 | _VARIANT_RFC4122)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_header(run_id: str | None) -> dict:
    """event_id, event_time, run_id: the fields every event starts with."""
    return {"event_id": new_event_id(), "event_time": utc_now(), "run_id": run_id}


def item_key(seller_id: str | None, marketplace_id: str, reference: str) -> str:
    """Key of every per-item event: all events of one item stay in order on one partition."""
    return f"{seller_id or ''}|{marketplace_id}|{reference}"


def family_key(seller_id: str | None, marketplace_id: str, reference: str, parent_reference: str | None) -> str:
    """Key of catalog changes: a variant travels with its parent (the parent's item key), so one
    validator sees a whole family in publishing order, parents first, and each item stays in order."""
    return item_key(seller_id, marketplace_id, parent_reference or reference)


def split_item_key(key: str) -> tuple[str, str, str]:
    """(seller_id, marketplace_id, reference) of an item key; the reference may itself hold '|'."""
    seller_id, marketplace_id, reference = key.split("|", 2)
    return seller_id, marketplace_id, reference

