"""The recorder's projections as pure folds: decoded events in, rows to write out.

No database here. The store loads the rows a batch touches (items, per-run items, runs), `project`
folds the batch's *new* events into them and returns what to write back plus counter deltas.

The status rule (interfaces.md §2, architecture.md): an item is pending until a final event
(ValidationFailed or SubmissionCompleted) arrives; the latest final event by event time wins; a
catalog change newer than that final event makes the item pending again (a new sync of it). Every
step is a max over event time, so the result does not depend on arrival order, and the store drops
duplicates (same event_id) before they get here.

Two more per-item facts serve `publish --changed-only` and `retry`: the latest catalog payload of
an item, and per endpoint the content hash of what last finished at Amazon. The fold keeps only the
newest of each per batch; the store writes them with an upsert guarded by event time, so neither
needs loading before the fold and an older event arriving late changes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import overload

from catalog_sync.runtime.contract import (
    AWAITING,
    ERROR,
    FINISHED,
    ITEM_TYPES,
    LISTING_ERROR,
    LISTING_STATES,
    RUN_STATUSES,
    item_status,
)
from catalog_sync.runtime.events import item_key
from catalog_sync.runtime.sync_modes import persists, recorded_endpoint

CHANGED = "CatalogItemChanged"
VALIDATION_FAILED = "ValidationFailed"
SUBMISSION_COMPLETED = "SubmissionCompleted"
# What Amazon showed of a listing after ACCEPTED (the submitter's reconciliation): a final event
# like the others, newer than the acceptance it observes, so the latest-final rule applies as is.
LISTING_OBSERVED = "ListingObserved"
RUN_OPENED = "RunOpened"
RUN_CLOSED = "RunClosed"
ITEM_EVENTS = (CHANGED, VALIDATION_FAILED, SUBMISSION_COMPLETED, LISTING_OBSERVED)
RUN_EVENTS = (RUN_OPENED, RUN_CLOSED)
PROJECTED_EVENTS = ITEM_EVENTS + RUN_EVENTS

RUN_IN_PROGRESS, RUN_FINISHED, RUN_FINISHED_WITH_ERRORS, RUN_INTERRUPTED = RUN_STATUSES
NO_RUN = ""  # counter key of items synced outside any run
MINUTE_MS = 60_000  # bucket of the per-minute item counters
# Outcomes after which Amazon holds the submitted content. Not `valid`: VALIDATION_PREVIEW persists
# nothing (and no outcome of a mode that does not persist counts, sync_modes.persists); not
# `not_sent` nor `preview_not_sent`: nothing reached Amazon.
PERSISTED_OUTCOMES = frozenset({"accepted", "deleted", "unchanged"})
# The finished hash of a listing Amazon turned down after accepting it: it equals no content hash,
# so `publish --changed-only` sends the item again.
REJECTED_AFTER_ACCEPTANCE = ""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class InvalidEvent(ValueError):
    """A decoded event the recorder cannot project (missing or malformed field)."""


@overload
def to_ms(value: datetime | int) -> int: ...
@overload
def to_ms(value: None) -> None: ...
@overload
def to_ms(value: datetime | int | None) -> int | None: ...
def to_ms(value: datetime | int | None) -> int | None:
    """Event times are kept as epoch milliseconds: the same column type in SQLite and PostgreSQL."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidEvent("naive datetime in event (timestamps must be tz-aware)")
        return (value - _EPOCH) // _MS  # integer arithmetic: no float rounding
    return int(value)


def endpoint_for_mode(mode: str | None) -> str | None:
    """The endpoint a mode records under (sync_modes), or None while the mode is unknown."""
    return recorded_endpoint(mode) if mode else None


# -- item events, normalised ----------------------------------------------------------------
@dataclass(slots=True)  # not frozen: a frozen __init__ is several times slower, once per event
class ItemEvent:
    """One item event with what every fold needs; `details` is what the history row keeps.
    Treated as read-only once built."""

    item_key: str
    kind: str
    event_id: str
    time: int
    run_id: str | None
    seller_id: str
    marketplace_id: str
    reference: str
    item_type: str
    endpoint: str | None
    final_status: str | None  # error | finished for final events, None for a catalog change
    details: dict
    # CatalogItemChanged: (operation, product_type, requirements, parent_reference, attributes_json,
    # changed_at ms) -- what `retry` republishes.
    payload: tuple | None = None
    # SubmissionCompleted after which Amazon holds the content (PERSISTED_OUTCOMES, not preview):
    # its content hash, for `publish --changed-only`.
    finished_hash: str | None = None


def _required(event: dict, name: str, kind: str):
    value = event.get(name)
    if value is None or value == "":
        raise InvalidEvent(f"{kind} without {name}")
    return value


def normalise(kind: str, event: dict, default_seller_id: str | None = None) -> ItemEvent:
    """Validate an item event and keep what the read model shows. A change or validation failure
    without seller uses the configured default seller, as the validator and submitter do, so it
    lands on the same item as the submission outcome."""
    if kind not in ITEM_EVENTS:
        raise InvalidEvent(f"{kind} is not an item event")
    event_id = _required(event, "event_id", kind)
    time = to_ms(_required(event, "event_time", kind))
    seller = event.get("seller_id") or default_seller_id or ""
    marketplace = _required(event, "marketplace_id", kind)
    reference = _required(event, "reference", kind)
    item_type = event["item_type"]
    if item_type not in ITEM_TYPES:
        raise InvalidEvent(f"{kind} with unknown item_type {item_type!r}")
    mode = event.get("mode")
    key = item_key(seller, marketplace, reference)
    if kind == CHANGED:
        attributes = event.get("attributes_json") or "{}"
        changed_ms = to_ms(event.get("changed_at"))
        details = {
            "operation": event["operation"],
            "mode": mode,
            "product_type": event.get("product_type"),
            "requirements": event.get("requirements"),
            "parent_reference": event.get("parent_reference"),
            "changed_at": iso_from_ms(changed_ms) if changed_ms is not None else None,
            "attributes_bytes": len(attributes.encode("utf-8")),
        }
        payload = (details["operation"], details["product_type"], details["requirements"], details["parent_reference"],
                   attributes, changed_ms)
        return ItemEvent(key, kind, event_id, time, event.get("run_id"), seller, marketplace, reference, item_type,
                         endpoint_for_mode(mode), None, details, payload)
    if kind == VALIDATION_FAILED:
        errors = [
            {"code": e.get("code"), "message": e.get("message"), "path": e.get("path")}
            for e in event.get("errors") or []
        ]
        details = {"mode": mode, "source_event_id": event.get("source_event_id"), "errors": errors}
        return ItemEvent(key, kind, event_id, time, event.get("run_id"), seller, marketplace, reference, item_type,
                         endpoint_for_mode(mode), ERROR, details)
    status = event.get("status")
    if status not in (ERROR, FINISHED):
        raise InvalidEvent(f"{kind} with status {status!r} (expected error or finished)")
    if kind == LISTING_OBSERVED:
        return _observed(key, event_id, time, event, seller, marketplace, reference, item_type, mode, status)
    details = {
        "mode": mode,
        "operation": event["operation"],
        "outcome": event.get("outcome"),
        "status": status,
        "http_status": event.get("http_status"),
        "amazon_status": event.get("amazon_status"),
        "request_id": event.get("request_id"),
        "attempt_request_ids": list(event.get("attempt_request_ids") or []),
        "submission_id": event.get("submission_id"),
        "issues": [_issue(i) for i in event.get("issues") or []],
        "error_code": event.get("error_code"),
        "error_message": event.get("error_message"),
        "attempts": event.get("attempts") or 0,
        "latency_ms": event.get("latency_ms") or 0.0,
        "source_event_id": event.get("source_event_id"),
    }
    if event.get("feed_id"):  # sent in a JSON_LISTINGS_FEED (the bulk lane): what support asks for
        details.update(feed_id=event["feed_id"], feed_message_id=event.get("feed_message_id"),
                       create_feed_request_id=event.get("create_feed_request_id"),
                       get_feed_request_id=event.get("get_feed_request_id"),
                       feed_processing_status=event.get("feed_processing_status"))
    persisted = status == FINISHED and details["outcome"] in PERSISTED_OUTCOMES and persists(mode)
    return ItemEvent(key, kind, event_id, time, event.get("run_id"), seller, marketplace, reference, item_type,
                     event.get("endpoint") or endpoint_for_mode(mode), status, details,
                     finished_hash=event.get("content_hash") if persisted else None)


def _observed(key: str, event_id: str, time: int, event: dict, seller: str, marketplace: str, reference: str,
              item_type: str, mode: str | None, status: str) -> ItemEvent:
    state = event.get("listing_state")
    if state not in LISTING_STATES:
        raise InvalidEvent(f"{LISTING_OBSERVED} with listing_state {state!r}")
    details = {
        "mode": mode,
        "listing_state": state,
        "status": status,
        "amazon_statuses": list(event.get("amazon_statuses") or []),
        "request_id": event.get("request_id"),
        "submission_request_id": event.get("submission_request_id"),
        "submission_id": event.get("submission_id"),
        "submitted_at": to_ms(event.get("submitted_at")),
        "issues": [_issue(i) for i in event.get("issues") or []],
        "error_code": event.get("error_code"),
        "error_message": event.get("error_message"),
        "looks": event.get("looks") or 0,
        "ended_by": event.get("ended_by"),
        "note": event.get("note"),
        "source_event_id": event.get("source_event_id"),
    }
    rejected = state == LISTING_ERROR and persists(mode)
    return ItemEvent(key, LISTING_OBSERVED, event_id, time, event.get("run_id"), seller, marketplace, reference,
                     item_type, event.get("endpoint") or endpoint_for_mode(mode), status, details,
                     finished_hash=REJECTED_AFTER_ACCEPTANCE if rejected else None)


def _issue(issue: dict) -> dict:
    return {
        "code": issue.get("code"),
        "message": issue.get("message") or "",
        "severity": issue.get("severity") or "ERROR",
        "attribute_names": list(issue.get("attribute_names") or []),
        "categories": list(issue.get("categories") or []),
    }


def search_text(text: str) -> str:
    """References as reference search compares them (the item_refs rows and the searched text):
    Unicode case folding done in Python, the same on SQLite, whose LOWER and LIKE fold ASCII only,
    and on PostgreSQL, whose LOWER follows the database's locale."""
    return text.casefold()


@lru_cache(maxsize=4096)  # a run's changes mostly share their changed_at: format it once
def iso_from_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (_EPOCH + ms * _MS).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- error details shown to users ----------------------------------------------------------
def error_of(final: ItemEvent) -> dict | None:
    """{"type", "code", "message", "details"} for a final error; None for a success."""
    if final.final_status != ERROR:
        return None
    d = final.details
    if final.kind == VALIDATION_FAILED:
        errors = d["errors"]
        first = errors[0] if errors else {"code": "validation", "message": "validation failed"}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return {"type": "validation", "code": first["code"], "message": f"{first['message']}{more}",
                "details": errors}
    if final.kind == LISTING_OBSERVED:
        errors = [i for i in d["issues"] if i["severity"] == "ERROR"] or d["issues"]
        return {"type": "amazon_response", "code": d["error_code"] or (errors[0]["code"] if errors else None),
                "message": d["error_message"] or (errors[0]["message"] if errors else "Amazon shows the listing in error"),
                "details": d["issues"]}
    errors = [i for i in d["issues"] if i["severity"] == "ERROR"] or d["issues"]
    code = d["error_code"] or (errors[0]["code"] if errors else None) or d["amazon_status"] or d["outcome"]
    message = d["error_message"] or (errors[0]["message"] if errors else None)
    if message is None:
        message = f"Amazon answered {d['amazon_status'] or d['http_status'] or d['outcome']}"
    return {"type": "amazon_response", "code": code, "message": message, "details": d["issues"]}


# -- fold state -----------------------------------------------------------------------------
@dataclass(slots=True)
class ItemState:
    """Everything the read model shows of one item, plus what the fold needs to stay order-free.

    Used for the item table (scope: the item) and for per-run membership (scope: run and item)."""

    item_key: str
    seller_id: str
    marketplace_id: str
    reference: str
    item_type: str
    run_id: str | None = None          # run of the latest event
    synced_at: int = 0                 # event time of the latest event ...
    latest_event_id: str = ""          # ... and its id (tie-break of equal times)
    change_time: int | None = None     # latest catalog change
    final_time: int | None = None      # latest final event ...
    final_event_id: str | None = None  # ... and its id (tie-break of equal times)
    final_status: str | None = None
    endpoint: str | None = None
    request_id: str | None = None
    submission_id: str | None = None
    error: dict | None = None
    issues: list = field(default_factory=list)
    outcome: str | None = None         # of the final SubmissionCompleted (None after a validation failure)
    request_run_id: str | None = None  # run and time of the submission request_id belongs to: an
    request_time: int | None = None    # unchanged outcome keeps an earlier run's request
    # Amazon's view after ACCEPTED: awaiting (from the acceptance on) | live | error; None when
    # the final event is no acceptance of a run that persists. The note says why it is still awaiting.
    listing_state: str | None = None
    listing_note: str | None = None
    listing_checked_at: int | None = None  # time of the observation
    feed_id: str | None = None         # the JSON_LISTINGS_FEED and message that carried the request
    feed_message_id: int | None = None

    @property
    def status(self) -> str:
        return item_status(self.change_time, self.final_time, self.final_status)

    @classmethod
    def empty(cls, e: ItemEvent) -> ItemState:
        return cls(e.item_key, e.seller_id, e.marketplace_id, e.reference, e.item_type, issues=[])

    def apply(self, e: ItemEvent, details: bool = True) -> None:
        """Fold one event in; `details=False` keeps only what status needs (run membership)."""
        if (e.time, e.event_id) > (self.synced_at, self.latest_event_id):
            self.synced_at, self.latest_event_id = e.time, e.event_id
            self.run_id = e.run_id
            self.item_type = e.item_type
            if e.endpoint:
                self.endpoint = e.endpoint
        if e.final_status is None:
            if self.change_time is None or e.time > self.change_time:
                self.change_time = e.time
            return
        if self.final_time is not None and (e.time, e.event_id) <= (self.final_time, self.final_event_id or ""):
            return  # an older (or the same) final event: the latest one keeps deciding
        was_finished = self.final_status == FINISHED
        self.final_time, self.final_event_id, self.final_status = e.time, e.event_id, e.final_status
        if not details:
            return
        if e.kind == LISTING_OBSERVED:
            self._observed(e)
            return
        sc = e.kind == SUBMISSION_COMPLETED
        self.outcome = e.details["outcome"] if sc else None
        if sc and was_finished and e.details["outcome"] == "unchanged" and self.request_id:
            # Amazon already has this content (typically a redelivered ready event after a crash
            # finding its own accepted hash): the acceptance that put it there stays the item's request.
            return
        self.request_id = e.details["request_id"] if sc else None
        self.request_run_id, self.request_time = (e.run_id, e.time) if self.request_id else (None, None)
        self.submission_id = e.details["submission_id"] if sc else None
        self.feed_id = e.details.get("feed_id") if sc else None
        self.feed_message_id = e.details.get("feed_message_id") if sc else None
        self.issues = e.details["issues"] if sc else []
        self.error = error_of(e)
        accepted = sc and self.outcome == "accepted" and e.details["operation"] == "upsert" and persists(e.details["mode"])
        self.listing_state = AWAITING if accepted else None
        self.listing_note = self.listing_checked_at = None

    def _observed(self, e: ItemEvent) -> None:
        d = e.details
        self.outcome = "accepted"
        self.listing_state, self.listing_note, self.listing_checked_at = d["listing_state"], d["note"], e.time
        self.issues = d["issues"]
        self.error = error_of(e)
        if e.final_status == ERROR:  # the GET that found the issues is what support asks about
            self.request_id, self.request_run_id, self.request_time = d["request_id"], e.run_id, e.time
        else:  # the acceptance's request (the observation may arrive first: it carries it)
            self.request_id = d["submission_request_id"] or self.request_id
            self.request_run_id, self.request_time = e.run_id, d["submitted_at"]
        self.submission_id = d["submission_id"] or self.submission_id


@dataclass(slots=True)
class RunState:
    run_id: str
    mode: str | None = None
    endpoint: str | None = None
    source: str | None = None
    started_at: int | None = None
    next_run_at: int | None = None
    opened: bool = False
    closed_at: int | None = None
    item_count: int | None = None
    changes_received: int = 0
    total: int = 0
    pending: int = 0
    error: int = 0
    finished: int = 0
    last_event_at: int | None = None
    finished_at: int | None = None
    status: str = RUN_IN_PROGRESS

    def touch(self, time: int) -> None:
        self.last_event_at = time if self.last_event_at is None else max(self.last_event_at, time)
        if not self.opened:
            # Items can arrive before RunOpened (another topic): start at the earliest seen.
            self.started_at = time if self.started_at is None else min(self.started_at, time)

    def count(self, old: str | None, new: str) -> None:
        if old == new:
            return
        if old is None:
            self.total += 1
        else:
            setattr(self, old, getattr(self, old) - 1)
        setattr(self, new, getattr(self, new) + 1)

    def settle(self) -> None:
        """Finished once closed, every published change received and nothing pending."""
        done = (self.item_count is not None and self.changes_received >= self.item_count
                and self.pending == 0)
        if done:
            self.status = RUN_FINISHED_WITH_ERRORS if self.error else RUN_FINISHED
            self.finished_at = self.last_event_at
        else:
            self.status, self.finished_at = RUN_IN_PROGRESS, None


def effective_run_status(run: RunState, now_ms: int, stall_ms: int) -> str:
    """`interrupted`: still in progress but no event of the run for longer than the stall threshold."""
    if run.status == RUN_IN_PROGRESS and run.last_event_at is not None and now_ms - run.last_event_at > stall_ms:
        return RUN_INTERRUPTED
    return run.status


def apply_run_event(run: RunState, kind: str, event: dict) -> None:
    time = to_ms(_required(event, "event_time", kind))
    if kind == RUN_OPENED:
        run.mode = _required(event, "mode", kind)
        run.endpoint = event.get("endpoint") or endpoint_for_mode(run.mode)
        run.source = event.get("source")
        run.started_at = to_ms(event.get("started_at")) or time
        run.next_run_at = to_ms(event.get("next_run_at"))
        run.opened = True
        run.touch(time)
    elif kind == RUN_CLOSED:
        count = event.get("item_count")
        if count is None or count < 0:
            raise InvalidEvent("RunClosed without a valid item_count")
        run.item_count = int(count)
        run.closed_at = to_ms(event.get("closed_at")) or time
        run.touch(time)
    else:
        raise InvalidEvent(f"{kind} is not a run event")


# -- one batch ------------------------------------------------------------------------------
@dataclass
class Loaded:
    """Current rows of what a batch touches, as the store found them (absent = new)."""

    items: dict[str, ItemState] = field(default_factory=dict)
    run_items: dict[tuple[str, str], ItemState] = field(default_factory=dict)
    runs: dict[str, RunState] = field(default_factory=dict)


@dataclass
class Projected:
    items: dict[str, ItemState]
    run_items: dict[tuple[str, str], ItemState]
    runs: dict[str, RunState]
    # (run_id or NO_RUN, item_type, status) -> change in the number of items: keeps summaries O(1)
    item_count_deltas: Counter
    applied: Counter  # event kind -> events folded
    # (minute of synced_at, run_id or NO_RUN, item_type, status) -> change: "since" summaries
    item_minute_deltas: Counter = field(default_factory=Counter)
    # item_key -> its newest catalog change of the batch (the store keeps it if newer than the stored one)
    payloads: dict[str, ItemEvent] = field(default_factory=dict)
    # (item_key, endpoint) -> its newest persisted submission of the batch (same rule)
    finished_hashes: dict[tuple[str, str], ItemEvent] = field(default_factory=dict)


def touched(item_events: list[ItemEvent], run_events: list[tuple[str, dict]]):
    """Keys the store must load before `project`: item keys, (run, item) keys, run ids."""
    items = {e.item_key for e in item_events}
    run_items = {(e.run_id, e.item_key) for e in item_events if e.run_id}
    runs = {e.run_id for e in item_events if e.run_id} | {
        _required(ev, "run_id", kind) for kind, ev in run_events}
    return items, run_items, runs


def project(loaded: Loaded, item_events: list[ItemEvent], run_events: list[tuple[str, dict]]) -> Projected:
    """Fold new (already de-duplicated) events into the loaded rows and return what changed.

    `loaded` is consumed: its states are updated in place (the store loads them fresh for each
    transaction; copying them would cost a third of the projection's time)."""
    items, run_items, runs = loaded.items, loaded.run_items, loaded.runs
    old_item_rows = {k: (v.synced_at // MINUTE_MS, v.run_id or NO_RUN, v.item_type, v.status)
                     for k, v in items.items()}
    old_run_item_status = {k: v.status for k, v in run_items.items()}
    changed_items: set[str] = set()
    changed_run_items: set[tuple[str, str]] = set()
    changed_runs: set[str] = set()
    applied: Counter = Counter()
    payloads: dict[str, ItemEvent] = {}
    finished_hashes: dict[tuple[str, str], ItemEvent] = {}

    for kind, event in run_events:
        run_id = _required(event, "run_id", kind)
        apply_run_event(runs.setdefault(run_id, RunState(run_id)), kind, event)
        changed_runs.add(run_id)
        applied[kind] += 1

    for e in item_events:
        state = items.get(e.item_key)
        if state is None:
            state = items[e.item_key] = ItemState.empty(e)
        state.apply(e)
        changed_items.add(e.item_key)
        applied[e.kind] += 1
        if e.payload is not None:
            newest = payloads.get(e.item_key)
            if newest is None or (e.time, e.event_id) > (newest.time, newest.event_id):
                payloads[e.item_key] = e
        elif e.finished_hash is not None:
            where = (e.item_key, e.endpoint or "")
            newest = finished_hashes.get(where)
            if newest is None or (e.time, e.event_id) > (newest.time, newest.event_id):
                finished_hashes[where] = e
        if not e.run_id:
            continue
        key = (e.run_id, e.item_key)
        member = run_items.get(key)
        if member is None:
            member = run_items[key] = ItemState.empty(e)
        member.apply(e, details=False)
        changed_run_items.add(key)
        run = runs.get(e.run_id)
        if run is None:  # not setdefault: that would build a RunState for every event
            run = runs[e.run_id] = RunState(e.run_id)
        if run.mode is None and e.details.get("mode"):
            run.mode, run.endpoint = e.details["mode"], endpoint_for_mode(e.details["mode"])
        run.touch(e.time)
        if e.kind == CHANGED:
            run.changes_received += 1
        changed_runs.add(e.run_id)

    for key in changed_run_items:
        runs[key[0]].count(old_run_item_status.get(key), run_items[key].status)
    for run_id in changed_runs:
        runs[run_id].settle()

    minute_deltas: Counter = Counter()
    for k in changed_items:
        new = items[k]
        new_row = (new.synced_at // MINUTE_MS, new.run_id or NO_RUN, new.item_type, new.status)
        old_row = old_item_rows.get(k)
        if old_row != new_row:
            if old_row is not None:
                minute_deltas[old_row] -= 1
            minute_deltas[new_row] += 1
    deltas: Counter = Counter()  # the same changes without the minute: moves between minutes cancel out
    for (_minute, *row), n in minute_deltas.items():
        deltas[tuple(row)] += n
    return Projected(
        items={k: items[k] for k in changed_items},
        run_items={k: run_items[k] for k in changed_run_items},
        runs={k: runs[k] for k in changed_runs},
        item_count_deltas=Counter({k: v for k, v in deltas.items() if v}),
        applied=applied,
        item_minute_deltas=Counter({k: v for k, v in minute_deltas.items() if v}),
        payloads=payloads,
        finished_hashes=finished_hashes,
    )
