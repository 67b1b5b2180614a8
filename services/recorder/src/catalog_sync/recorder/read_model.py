"""Queries behind the read API, the web page and `catalog-sync status` (interfaces.md §5 shapes).

Item pages are keyset-paginated newest first on (synced_at, item_key); summaries come from the
maintained item_counts table when the filters allow it (run, type, status), so they cost the same
at a thousand items as at a million; a time filter adds the per-minute counters of item_minute_counts
and counts only the items of its first, partial minute; a reference filter counts the matching rows.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from catalog_sync.runtime.contract import ITEM_STATUSES, ITEM_TYPES, PENDING, RUN_STATUSES, parse_time
from catalog_sync.runtime.events import split_item_key
from catalog_sync.runtime.marketplaces import PRODUCTION_HOSTS, SANDBOX_HOSTS, describe
from catalog_sync.runtime.sync_modes import SANDBOX, SPAPI_OPERATION, not_sent_message, route, route_of_change

from .projection import (
    LISTING_OBSERVED,
    MINUTE_MS,
    RUN_FINISHED,
    RUN_FINISHED_WITH_ERRORS,
    RUN_IN_PROGRESS,
    SUBMISSION_COMPLETED,
    RunState,
    effective_run_status,
    iso_from_ms,
    search_text,
)
from .store import RUN_COLUMNS, RUN_MEMBERS, ReadStore, Session

DEFAULT_PAGE = 25
MAX_PAGE = 500
ALL_RUNS = "all"
API_NAME = "Listings Items API"
API_VERSION = "2021-08-01"
FEEDS_API_NAME = "Feeds API"  # items the bulk lane sent in a JSON_LISTINGS_FEED
FEEDS_API_VERSION = "2021-06-30"
_RUN_COLS = ", ".join(RUN_COLUMNS)  # in RunState's field order
_ITEM_COLS = ("item_key, seller_id, marketplace_id, reference, item_type, run_id, status, synced_at, endpoint, "
              "request_id, submission_id, error_json, issues_json, outcome, request_run_id, request_time, listing_state, "
              "listing_note, listing_checked_at, feed_id, feed_message_id")
EXPORT_PAGE = 1_000  # rows per query of an export: memory stays flat however many items match


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NEXT_RUN_GRACE_MS = 60_000  # a scheduled run's opening reaches the store within this of its announced time
RETRY_OF = "retry of "  # the source `catalog-sync retry` gives its runs
# Outcomes of a run that sent the item nothing: content Amazon already had, a category, a preview's delete.
_NOT_SENT = frozenset({"unchanged", "not_sent", "preview_not_sent"})


class BadQuery(ValueError):
    """A filter value the API answers with 400."""


class NotFound(LookupError):
    """Something the request names (a run) is not in the read store: the API answers 404."""


def _check_text(**values: str | None) -> None:
    # PostgreSQL text cannot hold NUL: the driver refuses such a parameter (an error 500), and it
    # could match nothing stored there, so it is a bad query on every store.
    for name, value in values.items():
        if value is not None and "\x00" in value:
            raise BadQuery(f"{name} must not contain NUL characters")


def since_ms(value: str | None) -> int | None:
    """The `since` filter (ISO-8601; a trailing Z, or no zone meaning UTC) -> epoch ms."""
    if value is None or value == "":
        return None
    try:
        return int(parse_time(value.strip()).timestamp() * 1000)
    except ValueError:
        raise BadQuery(f"since={value!r} is not an ISO-8601 time") from None


@dataclass(frozen=True)
class ItemFilters:
    reference: str | None = None
    status: str = "all"
    item_type: str | None = None
    since: str | None = None
    run_id: str | None = None   # None: the last run (or all runs when `since` is given); "all": every run
    limit: int = DEFAULT_PAGE
    cursor: str | None = None

    def checked(self) -> ItemFilters:
        if self.status not in ("all", *ITEM_STATUSES):
            raise BadQuery(f"status={self.status!r} must be one of all, {', '.join(ITEM_STATUSES)}")
        if self.item_type not in (None, "", *ITEM_TYPES):
            raise BadQuery(f"type={self.item_type!r} must be one of {', '.join(ITEM_TYPES)}")
        if not 1 <= self.limit <= MAX_PAGE:
            raise BadQuery(f"limit={self.limit} must be between 1 and {MAX_PAGE}")
        _check_text(reference=self.reference, run_id=self.run_id, since=self.since, cursor=self.cursor)
        since_ms(self.since)
        if self.cursor:
            decode_cursor(self.cursor)
        return self


def encode_cursor(synced_at: int, item_key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([synced_at, item_key])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        synced_at, item_key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        # A forged cursor must not overflow the databases' 64-bit integers or carry a NUL.
        if (not isinstance(synced_at, int) or not isinstance(item_key, str) or not -(2**63) <= synced_at < 2**63
                or "\x00" in item_key):
            raise ValueError
        return synced_at, item_key
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise BadQuery("cursor is not one this API returned") from None


def _like_pattern(text: str) -> str:
    escaped = search_text(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _candidate_pattern(text: str) -> str:
    """A LIKE pattern with no escape character (FTS5 uses its trigram index only for plain
    two-argument LIKE): `%`, `_` and `\\` become `_`, which matches them too, so the candidates are a
    superset that the escaped pattern then narrows. Fewer than 3 characters cannot use trigrams."""
    return "%" + "".join("_" if c in "%_\\" else c for c in search_text(text)) + "%"


class ReadModel:
    def __init__(self, store: ReadStore, *, stall_seconds: float = 900.0, clock: Callable[[], float] = time.time):
        self.store = store
        self.stall_ms = int(stall_seconds * 1000)
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- runs -------------------------------------------------------------------------------
    def _run_json(self, row: tuple, now_ms: int) -> dict:
        run = RunState(*row)
        status = effective_run_status(run, now_ms, self.stall_ms)
        return {
            "run_id": run.run_id,
            "mode": run.mode,
            "endpoint": run.endpoint,
            "status": status,
            "started_at": iso_from_ms(run.started_at),
            "finished_at": iso_from_ms(run.finished_at),
            "counts": {"total": run.total, "pending": run.pending, "error": run.error, "finished": run.finished},
            "item_count": run.item_count,
            "closed_at": iso_from_ms(run.closed_at),
            "next_run_at": iso_from_ms(run.next_run_at),
            "last_event_at": iso_from_ms(run.last_event_at),
            "source": run.source,
            **_trigger(run),
            "duration_s": _duration_s(run, now_ms if status == RUN_IN_PROGRESS else run.last_event_at),
        }

    def run(self, run_id: str) -> dict:
        _check_text(run_id=run_id)
        now = self._now_ms()
        with self.store.read() as s:
            row = s.one(f"SELECT {_RUN_COLS} FROM runs WHERE run_id = ?", (run_id,))
        if row is None:
            raise NotFound(f"no run {run_id!r} in the read store")
        return self._run_json(row, now)

    def runs(self, limit: int = 20) -> dict:
        if not 1 <= limit <= 500:
            raise BadQuery(f"limit={limit} must be between 1 and 500")
        now = self._now_ms()
        with self.store.read() as s:
            rows = s.execute(f"SELECT {_RUN_COLS} FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?", (limit,))
        return {"runs": [self._run_json(r, now) for r in rows]}

    def activity(self) -> dict:
        now = self._now_ms()
        with self.store.read() as s:
            open_runs = s.execute(f"SELECT {_RUN_COLS} FROM runs WHERE status = ? ORDER BY started_at DESC, "
                                  "run_id DESC", (RUN_IN_PROGRESS,))
            done = s.execute(f"SELECT {_RUN_COLS} FROM runs WHERE status IN (?, ?) ORDER BY started_at DESC, "
                             "run_id DESC LIMIT 1", (RUN_FINISHED, RUN_FINISHED_WITH_ERRORS))
            next_run = s.one("SELECT MAX(next_run_at) FROM runs")[0]
        runs = [self._run_json(r, now) for r in open_runs]
        current = next((r for r in runs if r["status"] == RUN_IN_PROGRESS), None)
        ended = [r for r in runs if r["status"] != RUN_IN_PROGRESS] + [self._run_json(r, now) for r in done]
        last = max(ended, key=lambda r: (r["started_at"] or "", r["run_id"]), default=None)
        # The newest announcement of a scheduled run. Once it is well past and no scheduled run
        # started after it (that run would announce a later one), the scheduler has stopped: the
        # time moves to `missed_run_at` instead of reading as a run still to come.
        missed = next_run is not None and now - next_run > NEXT_RUN_GRACE_MS
        return {"in_progress": current is not None, "current_run": current, "last_run": last,
                "next_run_at": None if missed else iso_from_ms(next_run),
                "missed_run_at": iso_from_ms(next_run) if missed else None}

    def run_gauges(self) -> tuple[dict[str, int], int]:
        """Runs by effective status and items pending (latest state): the recorder's gauges."""
        now = self._now_ms()
        by_status = dict.fromkeys(RUN_STATUSES, 0)
        with self.store.read() as s:
            rows = s.execute("SELECT status, COUNT(*) FROM runs WHERE status <> ? GROUP BY status", (RUN_IN_PROGRESS,))
            open_runs = s.execute(f"SELECT {_RUN_COLS} FROM runs WHERE status = ?", (RUN_IN_PROGRESS,))
            pending = s.one("SELECT COALESCE(SUM(n), 0) FROM item_counts WHERE status = ?", (PENDING,))[0]
        for status, n in rows:
            by_status[status] = by_status.get(status, 0) + n
        for row in open_runs:
            by_status[effective_run_status(RunState(*row), now, self.stall_ms)] += 1
        return by_status, int(pending)

    # -- items ------------------------------------------------------------------------------
    def _last_run_id(self, s: Session) -> str | None:
        row = s.one("SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1")
        return row[0] if row else None

    def items(self, filters: ItemFilters) -> dict:
        f = filters.checked()
        with self.store.read() as s:
            query = self._item_query(s, f)
            summary = self._summary(s, query.where, query.params, query.run_id, f, query.since)
            rows = _item_page(s, query, decode_cursor(f.cursor) if f.cursor else None, f.limit + 1)
        more = len(rows) > f.limit
        rows = rows[:f.limit]
        return {
            "summary": summary,
            "items": [_item_json(r) for r in rows],
            "next_cursor": encode_cursor(rows[-1][7], rows[-1][0]) if more else None,
            "run_id": query.run_id,
        }

    def export_items(self, filters: ItemFilters) -> Iterator[dict]:
        """Every item the filters select (from the cursor on; `limit` does not apply), newest first,
        read in pages from one snapshot. A bad filter or an unknown run raises here, before the
        first item, so the API can still answer 400 or 404."""
        f = filters.checked()
        with self.store.read() as s:
            self._item_query(s, f)

        def rows() -> Iterator[dict]:
            with self.store.read() as s:
                query = self._item_query(s, f)
                after = decode_cursor(f.cursor) if f.cursor else None
                while True:
                    page = _item_page(s, query, after, EXPORT_PAGE)
                    yield from (_item_json(r) for r in page)
                    if len(page) < EXPORT_PAGE:
                        return
                    after = (page[-1][7], page[-1][0])

        return rows()

    def _item_query(self, s: Session, f: ItemFilters) -> _ItemQuery:
        """The run the filters resolve to (None: every run) and their WHERE conditions."""
        since = since_ms(f.since)
        run_id = f.run_id
        if run_id is None and since is None:
            run_id = self._last_run_id(s)
        elif run_id not in (None, ALL_RUNS) and s.one("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)) is None:
            raise NotFound(f"no run {run_id!r} in the read store")
        if run_id == ALL_RUNS:
            run_id = None
        where, params = _equality_filters(run_id, f)
        if since is not None:
            where.append("synced_at >= ?")
            params.append(since)
        if f.reference:
            # Candidates from the trigram index (SQLite FTS5 / pg_trgm) on item_refs, narrowed by the
            # escaped pattern on the same folded text (search_text: Unicode, not SQL's ASCII LOWER).
            where.append("item_key IN (SELECT item_key FROM item_refs WHERE reference LIKE ? "
                         "AND reference LIKE ? ESCAPE '\\')")
            params.extend((_candidate_pattern(f.reference), _like_pattern(f.reference)))
        return _ItemQuery(run_id, since, where, params)

    @staticmethod
    def _summary(s: Session, where: list[str], params: list, run_id: str | None, f: ItemFilters,
                 since: int | None) -> dict:
        counts = dict.fromkeys(ITEM_STATUSES, 0)
        if not f.reference and since is None:
            # Only run/type/status filters: read the maintained counters instead of counting rows.
            cw, cp = _equality_filters(run_id, f)
            clause = f"WHERE {' AND '.join(cw)}" if cw else ""
            rows = s.execute(f"SELECT status, SUM(n) FROM item_counts {clause} GROUP BY status", cp)
        elif not f.reference and since is not None:
            # A time window: per-minute counters for its whole minutes, the items themselves for
            # the part of its first minute after `since`.
            cw, cp = _equality_filters(run_id, f)
            first_whole = -(-since // MINUTE_MS)  # the first minute that starts at or after `since`
            rows = s.execute("SELECT status, SUM(n) FROM item_minute_counts WHERE "
                             + " AND ".join(["minute >= ?", *cw]) + " GROUP BY status", (first_whole, *cp))
            rows += s.execute("SELECT status, COUNT(*) FROM items WHERE "
                              + " AND ".join([*where, "synced_at < ?"]) + " GROUP BY status",
                              (*params, first_whole * MINUTE_MS))
        else:
            # One pass of filtered counts (SQL:2003, SQLite >= 3.30): the covering indexes answer it
            # without a sort, a third faster than SUM(CASE ...) on SQLite.
            row = s.one("SELECT " + ", ".join(f"COUNT(*) FILTER (WHERE status = '{st}')" for st in ITEM_STATUSES)
                        + f" FROM items WHERE {' AND '.join(where)}", params)
            assert row is not None  # an aggregate without GROUP BY answers one row
            rows = list(zip(ITEM_STATUSES, row, strict=True))
        for status, n in rows:
            counts[status] = counts.get(status, 0) + int(n or 0)
        return {"total": sum(counts.values()), **counts}

    def item(self, reference: str, marketplace_id: str | None = None, seller_id: str | None = None) -> dict | None:
        """The most recently synced item with this exact reference (narrowed by marketplace and
        seller), its history oldest first, and the other items sharing the reference."""
        _check_text(reference=reference, marketplace_id=marketplace_id, seller_id=seller_id)
        with self.store.read() as s:
            where, params = _reference_filters(s, reference, marketplace_id, seller_id)
            rows = s.execute(f"SELECT {_ITEM_COLS} FROM items WHERE {' AND '.join(where)} "
                             "ORDER BY synced_at DESC, item_key DESC", params)
            if not rows:
                return None
            history = s.execute("SELECT event_id, event_type, event_time, run_id, details_json FROM item_events "
                                "WHERE item_key = ? ORDER BY event_time, event_id", (rows[0][0],))
        found = _item_json(rows[0])
        found["history"] = [_history_json(h) for h in history]
        found["other_items"] = [{"seller_id": r[1], "marketplace_id": r[2]} for r in rows[1:]]
        return found

    # -- republishing ---------------------------------------------------------------------------
    def run_payloads(self, run_id: str, status: str = "error") -> RunPayloads | None:
        """The items of `run_id` whose status in that run is `status` ("all": every item), each with
        the latest catalog payload recorded for it, in one query. None when the run is unknown.

        The latest payload, not the run's own: an item changed again since then must not be sent
        back to older content."""
        if status not in ("all", *ITEM_STATUSES):
            raise BadQuery(f"status={status!r} must be one of all, {', '.join(ITEM_STATUSES)}")
        _check_text(run_id=run_id)
        where, params = "true", [run_id, run_id]
        if status != "all":
            where = "ri.status = ?"
            params.append(status)
        with self.store.read() as s:
            run = s.one("SELECT mode FROM runs WHERE run_id = ?", (run_id,))
            if run is None:
                return None
            rows = s.execute(
                "SELECT ri.item_key, p.run_id, p.item_type, p.operation, p.product_type, p.requirements, "
                f"p.parent_reference, p.attributes_json, p.changed_at FROM {RUN_MEMBERS} ri "
                f"LEFT JOIN item_payloads p ON p.item_key = ri.item_key WHERE {where} "
                "ORDER BY p.event_time, ri.item_key", params)
        found = RunPayloads(run_id, run[0])
        for item_key, payload_run, *payload in rows:
            if payload[1] is None:  # no operation: no payload row (recorded before it was kept)
                found.missing.append(item_key)
                continue
            found.items.append(_payload_fields(item_key, tuple(payload)))
            found.changed_since += payload_run != run_id
        return found

    def last_finished_hashes(self, item_keys: Iterable[str], endpoint: str) -> dict[str, str]:
        """item key -> content hash of what last finished at Amazon on `endpoint` (test or
        production), for the keys that have one. Batched: a few queries for any number of keys."""
        with self.store.read() as s:
            rows = s.select_in("SELECT item_key, content_hash FROM item_finished_hashes WHERE endpoint = ? AND item_key",
                               sorted(set(item_keys)), params=(endpoint,))
        return dict(rows)

    # -- support ------------------------------------------------------------------------------
    def support_case(self, *, reference: str | None = None, marketplace_id: str | None = None,
                     seller_id: str | None = None, run_id: str | None = None, items: Sequence[str] = (),
                     limit: int = 50) -> dict | None:
        """What Amazon support asks for: marketplace and country, API, operation and endpoint, the
        x-amzn-RequestId of every attempt, submission IDs and times (newest first). `items`: item
        keys (seller_id|marketplace_id|reference), e.g. the error items a user selected."""
        if not reference and not run_id and not items:
            raise BadQuery("give reference (and marketplace_id), run_id or item")
        _check_text(reference=reference, marketplace_id=marketplace_id, seller_id=seller_id, run_id=run_id,
                    item="".join(items))
        if not 1 <= limit <= 500:
            raise BadQuery(f"limit={limit} must be between 1 and 500")
        if len(items) > MAX_PAGE:
            raise BadQuery(f"at most {MAX_PAGE} items per support case")
        with self.store.read() as s:
            if items:
                keys = [r[0] for r in s.select_in("SELECT item_key FROM items WHERE item_key", sorted(set(items)))]
                if not keys:
                    return None
                events = self._submissions_of_items(s, keys, limit)
            elif reference:
                where, params = _reference_filters(s, reference, marketplace_id, seller_id)
                keys = [r[0] for r in s.execute(f"SELECT item_key FROM items WHERE {' AND '.join(where)}", params)]
                if not keys:
                    return None
                events = self._submissions_of_items(s, keys, limit)
            else:
                if s.one("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)) is None:
                    return None
                # The run's items whose final outcome is an Amazon error: what a case is about.
                finals = s.execute(f"SELECT item_key, final_event_id FROM {RUN_MEMBERS} ri WHERE status = 'error' "
                                   "AND final_event_id IS NOT NULL ORDER BY final_time DESC LIMIT ?",
                                   (run_id, run_id, limit * 2))
                wanted = {r[1] for r in finals}
                # History is indexed per item: fetch those items' submissions (and the looks that
                # found issues after an acceptance), keep the final ones and what they observed.
                events = s.select_in("SELECT event_id, item_key, event_time, details_json, event_type FROM item_events "
                                     "WHERE event_type IN ('SubmissionCompleted', 'ListingObserved') AND item_key",
                                     sorted({r[0] for r in finals}))
                wanted |= {orjson.loads(e[3]).get("source_event_id") for e in events
                           if e[0] in wanted and e[4] == LISTING_OBSERVED}
                events = sorted((e for e in events if e[0] in wanted), key=lambda e: (e[2], e[0]),
                                reverse=True)[:limit]
        submissions = [_submission_json(e) for e in events]
        marketplaces = sorted({sub["marketplace_id"] for sub in submissions} | ({marketplace_id} if marketplace_id else set()))
        described = [describe(m) for m in marketplaces]
        operations = sorted({sub["operation"] for sub in submissions}) or ["putListingsItem"]
        apis = sorted({(sub["api"], sub["api_version"]) for sub in submissions}) or [(API_NAME, API_VERSION)]
        case = {
            "api": ", ".join(name for name, _ in apis),
            "api_version": ", ".join(version for _, version in apis),
            "operation": ", ".join(operations),
            "endpoints": sorted({(sub["endpoint"], sub["endpoint_url"]) for sub in submissions if sub["endpoint"]}),
            "reference": reference,
            "run_id": run_id,
            "marketplace_id": described[0]["marketplace_id"] if len(described) == 1 else None,
            "country": described[0]["country"] if len(described) == 1 else None,
            "marketplaces": described,
            "request_ids": [rid for sub in submissions for rid in sub["attempt_request_ids"]],
            "submission_ids": [sub["submission_id"] for sub in submissions if sub["submission_id"]],
            "feed_ids": sorted({sub["feed_id"] for sub in submissions if sub["feed_id"]}),
            "submissions": submissions,
        }
        case["text"] = support_text(case)
        return case

    @staticmethod
    def _submissions_of_items(s: Session, keys: list[str], limit: int) -> list[tuple]:
        rows: list[tuple] = []
        for key in keys:
            found = s.execute("SELECT event_id, item_key, event_time, details_json, event_type FROM item_events "
                              "WHERE item_key = ? AND event_type IN (?, ?) ORDER BY event_time DESC LIMIT ?",
                              (key, SUBMISSION_COMPLETED, LISTING_OBSERVED, limit))
            # Of the looks after an acceptance, those that found issues (what a case is about).
            rows.extend(e for e in found if e[4] == SUBMISSION_COMPLETED or
                        orjson.loads(e[3]).get("listing_state") == "error")
        return sorted(rows, key=lambda e: (e[2], e[0]), reverse=True)[:limit]


def _trigger(run: RunState) -> dict:
    """What started a run: `retry` (of `retry_of`), `schedule` (it announced its successor) or `publish`."""
    if run.source and run.source.startswith(RETRY_OF):
        return {"trigger": "retry", "retry_of": run.source[len(RETRY_OF):]}
    return {"trigger": "schedule" if run.next_run_at is not None else "publish", "retry_of": None}


def _duration_s(run: RunState, open_end: int | None) -> float | None:
    """Start to finish; `open_end` ends a run that has not finished (now while it is in progress,
    its last event once it is interrupted)."""
    end = run.finished_at if run.finished_at is not None else open_end
    return None if run.started_at is None or end is None else max(0, end - run.started_at) / 1000


@dataclass(frozen=True)
class _ItemQuery:
    run_id: str | None  # the run the filters resolved to; None: every run
    since: int | None
    where: list[str]
    params: list


def _item_page(s: Session, query: _ItemQuery, after: tuple[int, str] | None, limit: int) -> list[tuple]:
    """Up to `limit` item rows newest first, after the keyset position `after` (synced_at, item_key)."""
    where, params = list(query.where), list(query.params)
    if after is not None:
        where.append("(synced_at, item_key) < (?, ?)")
        params.extend(after)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return s.execute(f"SELECT {_ITEM_COLS} FROM items {clause} ORDER BY synced_at DESC, item_key DESC LIMIT ?",
                     (*params, limit))


@dataclass
class RunPayloads:
    """A run's items of one status with their latest recorded catalog payloads (for `retry`)."""

    run_id: str
    mode: str | None
    items: list[dict] = field(default_factory=list)  # CatalogItemChanged fields, oldest change first
    missing: list[str] = field(default_factory=list)  # item keys with no recorded payload
    changed_since: int = 0  # items whose latest payload came from a later change than this run's


def _payload_fields(item_key: str, row: tuple) -> dict:
    item_type, operation, product_type, requirements, parent_reference, attributes_json, changed_at = row
    seller, marketplace, reference = split_item_key(item_key)
    return {
        "reference": reference,
        "item_type": item_type,
        "operation": operation,
        "seller_id": seller or None,
        "marketplace_id": marketplace,
        "product_type": product_type,
        "requirements": requirements,
        "parent_reference": parent_reference,
        "attributes_json": attributes_json,
        "changed_at": None if changed_at is None else _EPOCH + timedelta(milliseconds=changed_at),
    }


def _reference_filters(s: Session, reference: str, marketplace_id: str | None,
                       seller_id: str | None) -> tuple[list[str], list]:
    """Items with exactly this reference, narrowed by marketplace and seller."""
    clause, params = s.reference_equals(reference)
    where = [clause]
    for column, value in (("marketplace_id", marketplace_id), ("seller_id", seller_id)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


def _equality_filters(run_id: str | None, f: ItemFilters) -> tuple[list[str], list]:
    """The run/status/type conditions, shared by the item page and the counter-based summary
    (both `items` and `item_counts` have these three columns)."""
    where, params = [], []
    for column, value in (("run_id", run_id), ("status", None if f.status == "all" else f.status),
                          ("item_type", f.item_type or None)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


def _item_json(row: tuple) -> dict:
    (_key, seller, marketplace, reference, item_type, run_id, status, synced_at, endpoint, request_id,
     submission_id, error_json, issues_json, outcome, request_run_id, request_time, listing_state, listing_note,
     listing_checked_at, feed_id, feed_message_id) = row
    final = status != PENDING  # a pending item's last outcome belongs to an older sync: history has it
    return {
        "reference": reference,
        "item_type": item_type,
        "seller_id": seller or None,
        "marketplace_id": marketplace,
        "status": status,
        "run_id": run_id,
        "synced_at": iso_from_ms(synced_at),
        "endpoint": endpoint,
        "request_id": request_id if final else None,
        "submission_id": submission_id if final else None,
        "error": orjson.loads(error_json) if final and error_json else None,
        "issues": orjson.loads(issues_json) if final and issues_json else [],
        "outcome": outcome if final else None,
        "note": not_sent_message(outcome) if final else None,  # why nothing reached Amazon, if so
        # The submission request_id belongs to: an item this run skipped as unchanged shows the
        # request of the run that sent it (None there when that run was not recorded: an old row).
        "request_run_id": request_run_id if final and request_id else None,
        "request_at": iso_from_ms(request_time) if final and request_id else None,
        "resent": _resent(outcome) if final else None,
        # Amazon's view after ACCEPTED: "awaiting" (accepted, awaiting Amazon), "live" or "error";
        # None when the item's outcome is no acceptance (or predates the looking).
        "listing_state": listing_state if final else None,
        "listing_note": listing_note if final else None,
        "listing_checked_at": iso_from_ms(listing_checked_at) if final and listing_checked_at else None,
        # Sent in a JSON_LISTINGS_FEED (the bulk lane): Amazon's feedId and the item's messageId.
        "feed_id": feed_id if final else None,
        "feed_message_id": feed_message_id if final and feed_id else None,
    }


def _resent(outcome: str | None) -> bool | None:
    """Whether the item's latest run sent it to Amazon: False when it skipped it as unchanged or
    sent nothing (not_sent, preview_not_sent); None when no submission outcome is known."""
    if outcome is None:
        return None
    return outcome not in _NOT_SENT


def _history_json(row: tuple) -> dict:
    event_id, event_type, event_time, run_id, details_json = row
    return {"event_id": event_id, "event_type": event_type, "event_time": iso_from_ms(event_time),
            "run_id": run_id, **orjson.loads(details_json)}


# A call made item by item (the Listings Items API), not in a feed.
_NO_FEED = {"api": API_NAME, "api_version": API_VERSION, "feed_id": None, "feed_message_id": None,
            "create_feed_request_id": None, "get_feed_request_id": None}


def _submission_json(row: tuple) -> dict:
    event_id, item_key, event_time, details_json, event_type = row
    seller, marketplace, reference = split_item_key(item_key)
    d = orjson.loads(details_json)
    if event_type == LISTING_OBSERVED:
        return _look_json(event_id, seller, marketplace, reference, event_time, d)
    request_ids = d.get("attempt_request_ids") or ([d["request_id"]] if d.get("request_id") else [])
    if d.get("request_id") and d["request_id"] not in request_ids:
        request_ids.append(d["request_id"])
    feed = _NO_FEED
    if d.get("feed_id"):  # the bulk lane: Amazon support asks for the feed, not the item call
        feed = {"api": FEEDS_API_NAME, "api_version": FEEDS_API_VERSION, "feed_id": d["feed_id"],
                "feed_message_id": d.get("feed_message_id"), "create_feed_request_id": d.get("create_feed_request_id"),
                "get_feed_request_id": d.get("get_feed_request_id")}
    return {
        **feed,
        "reference": reference,
        "seller_id": seller or None,
        "marketplace_id": marketplace,
        "country": describe(marketplace)["country"],
        "operation": "createFeed" if d.get("feed_id") else SPAPI_OPERATION[d["operation"]],
        **_endpoint_of(d.get("mode"), d["operation"], marketplace),
        "time": iso_from_ms(event_time),
        "request_id": d.get("request_id"),
        "attempt_request_ids": request_ids,
        "submission_id": d.get("submission_id"),
        "outcome": d.get("outcome"),
        "http_status": d.get("http_status"),
        "amazon_status": d.get("amazon_status"),
        "error_code": d.get("error_code"),
        "error_message": d.get("error_message"),
        "issue_codes": [i.get("code") for i in d.get("issues") or [] if i.get("code")],
        "event_id": event_id,
    }


def _look_json(event_id: str, seller: str, marketplace: str, reference: str, event_time: int, d: dict) -> dict:
    """The getListingsItem that found issues after an acceptance, shaped as a submission entry."""
    try:
        host = route(d.get("mode") or "", "getListingsItem").host
    except ValueError:
        host = None
    region = describe(marketplace)["region"]
    return {
        **_NO_FEED,
        "reference": reference, "seller_id": seller or None, "marketplace_id": marketplace,
        "country": describe(marketplace)["country"], "operation": "getListingsItem", "endpoint": host,
        "endpoint_url": (SANDBOX_HOSTS if host == SANDBOX else PRODUCTION_HOSTS).get(region) if host else None,
        "amazon_mode": None, "time": iso_from_ms(event_time), "request_id": d.get("request_id"),
        "attempt_request_ids": [d["request_id"]] if d.get("request_id") else [],
        "submission_id": d.get("submission_id"), "outcome": "issues after acceptance", "http_status": 200,
        "amazon_status": None, "error_code": d.get("error_code"), "error_message": d.get("error_message"),
        "issue_codes": [i.get("code") for i in d.get("issues") or [] if i.get("code")], "event_id": event_id,
    }


def _endpoint_of(mode: str | None, operation: str, marketplace_id: str) -> dict:
    """Which SP-API host a submission went to: `sandbox` or `production` (the sync-mode table) and
    the region's default URL (SPAPI_ENDPOINT may have pointed the workers elsewhere)."""
    try:
        found = route_of_change(mode or "", operation)
    except ValueError:
        return {"endpoint": None, "endpoint_url": None, "amazon_mode": None}
    region = describe(marketplace_id)["region"]
    hosts = SANDBOX_HOSTS if found.host == SANDBOX else PRODUCTION_HOSTS
    return {"endpoint": found.host, "endpoint_url": hosts.get(region) if found.host else None,
            "amazon_mode": found.amazon_mode}


def support_text(case: dict) -> str:
    """Plain text to paste into a Seller Central / developer support case."""
    lines = [f"API: {case['api']} ({case['api_version']})", f"Operation: {case['operation']}"]
    for endpoint, url in case.get("endpoints", ()):
        lines.append(f"Endpoint: {endpoint}" + (f" ({url})" if url else ""))
    for m in case["marketplaces"]:
        lines.append(f"Marketplace: {m['marketplace_id']} ({m['country']})")
    if case["run_id"]:
        lines.append(f"Sync run: {case['run_id']}")
    if not case["submissions"]:
        lines.append("No submission to Amazon was recorded for this selection.")
    for sub in case["submissions"]:
        status = sub["amazon_status"] or (f"HTTP {sub['http_status']}" if sub["http_status"] else sub["outcome"])
        if sub.get("feed_id"):
            lines.append(
                f"- createFeed (JSON_LISTINGS_FEED) feedId {sub['feed_id']} messageId {sub['feed_message_id']} "
                f"SKU {sub['reference']} seller {sub['seller_id']} marketplace {sub['marketplace_id']} at "
                f"{sub['time']}: {status}"
                + (f", error {sub['error_code']}" if sub["error_code"] else "")
                + (f", issues {', '.join(sub['issue_codes'])}" if sub["issue_codes"] else ""))
            named = [f"createFeed {sub['create_feed_request_id']}" if sub["create_feed_request_id"] else None,
                     f"getFeed {sub['get_feed_request_id']}" if sub["get_feed_request_id"] else None]
            others = [r for r in sub["attempt_request_ids"]
                      if r not in (sub["create_feed_request_id"], sub["get_feed_request_id"])]
            lines.append(f"  x-amzn-RequestId: {', '.join([n for n in named if n] + others)}")
            continue
        lines.append(
            f"- {sub['operation']} SKU {sub['reference']} seller {sub['seller_id']} marketplace "
            f"{sub['marketplace_id']} at {sub['time']}: {status}"
            + (f", submissionId {sub['submission_id']}" if sub["submission_id"] else "")
            + (f", error {sub['error_code']}" if sub["error_code"] else "")
            + (f", issues {', '.join(sub['issue_codes'])}" if sub["issue_codes"] else "")
        )
        if sub["attempt_request_ids"]:
            lines.append(f"  x-amzn-RequestId: {', '.join(sub['attempt_request_ids'])}")
    return "\n".join(lines)
