"""The bulk lane: a seller's large backlog goes to Amazon as JSON_LISTINGS_FEED documents, and
every item still ends with its own outcome (domain core; the HTTP adapter is feeds_http.py, the
journal of feeds in flight feeds_journal.py).

Lane choice. A seller's backlog is its items waiting at the item lane's rate gates plus the items
already gathered for a feed. Once it reaches the threshold, further ready items of the seller join
an open batch (one per seller, marketplace and mode); small and urgent changes, and everything
while the backlog is short, keep going item by item. Preview runs never feed (runtime/sync_modes).
The default threshold is what the item lane sends in the time one createFeed of the plan takes
to refill: put 5 req/s x 60 s (five feeds per five minutes) = 300 items. Above it a feed slot
moves more items than the item lane can in the same time.

The flow per batch: createFeedDocument -> upload -> journal "uploaded" -> (the seller's turn)
journal "creating" -> createFeed -> journal the feed id -> getFeed every poll interval (its lane
keeps the plan) -> getFeedDocument -> download (asked again for a fresh URL when the last one
expired: they last five minutes), gunzip -> one result per item from the processing report. A
whole-feed FATAL or CANCELLED ends every item as `failed` with the reason; an item is retried per
item (a new run).

Crash safety. The journal holds every feed from its upload until its report is read
(and an hour after, so a redelivered item is answered from the report). Items are named by their
position (partition, offset) in listing.ready, so the submitter that next owns the seller's
partition attaches each redelivered item to its journaled feed instead of sending it again. A
createFeed whose answer was lost (a crash, a timeout, a 5xx) is looked up with getFeeds before it
is sent again: createFeed runs one at a time per seller and an entry turns "creating" only when
its createFeed is next, so at most one entry of a seller is ever "creating", and a
JSON_LISTINGS_FEED of the seller created since then that no entry names is its feed (Amazon's
getFeeds does not name a feed's input document).

Handover. A rebalance (a scale-out, not a crash) moves a partition to another process while this
one goes on. From the revoke (`revoked`), the lane makes no Feeds call and no journal write for the
partition's entries, drops its items from open batches and answers none of them: the consumer
loop gives them to the next owner, which goes on from the journal (an entry stopped short of its
createFeed stays "uploaded"). The revoke waits, up to `handover_wait_s`, for a createFeed already
sent to have its answer journaled; the group assigns the partition anew only once every member's
revoke returned (eager protocol), so the next owner never looks for a feed still on its way. An
entry turns "creating" once its createFeed has passed the rate gate, so a wait there holds up no
revoke.

Time comes from an injected clock and sleep (Amazon time, catalog_sync.runtime.amazon_time)."""

from __future__ import annotations

import asyncio
import functools
import gzip
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import orjson

from catalog_sync.runtime.sync_modes import feeds_allowed
from catalog_sync.runtime.usage_plans import UsagePlan
from catalog_sync.submitter.accounts import Account
from catalog_sync.submitter.classification import Answer, RetryPolicy
from catalog_sync.submitter.listing_requests import ListingCall
from catalog_sync.submitter.outcomes import FeedRef, SubmissionResult, parse_issues
from catalog_sync.submitter.rate import DEFAULT_PLANS, RateLimiter

FEED_TYPE = "JSON_LISTINGS_FEED"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
FEEDS_API = "/feeds/2021-06-30"
MAX_MESSAGES = 25_000           # messages per JSON_LISTINGS_FEED document
MAX_DOCUMENT_BYTES = 10_000_000  # Amazon's recommended maximum feed size
FINAL_STATUSES = frozenset({"DONE", "FATAL", "CANCELLED"})
REPORTED_KEPT_S = 3600.0        # a reported feed stays in the journal this long (wall seconds)
CREATED_SKEW_S = 120.0          # getFeeds looks this far before the journal entry (clock skew)
REPORT_URL_TRIES = 3            # presigned report URLs asked for per report (each lasts five minutes)


def default_threshold(plans: dict[str, UsagePlan] | None = None) -> int:
    """Backlog above which a feed beats the item lane: items the put lane sends while one
    createFeed refills (see the module doc)."""
    plans = plans or DEFAULT_PLANS
    return max(1, math.ceil(plans["put"].rate / plans["createFeed"].rate))


@dataclass(frozen=True)
class BulkSettings:
    threshold: int = default_threshold()
    max_messages: int = MAX_MESSAGES
    max_bytes: int = MAX_DOCUMENT_BYTES
    linger_s: float = 2.0         # a batch closes when nothing joined it for this long
    poll_interval_s: float = 30.0  # between getFeed calls of one feed
    # A revoke waits this long (real seconds) for createFeeds on their way. kafka-python heartbeats
    # from the thread that runs the revoke: with the 5 s revoke drain it stays under the 10 s session.
    handover_wait_s: float = 3.0


class FeedsTransport(Protocol):
    async def feeds_call(self, account: Account, base_url: str, mode: str, operation: str, path: str,
                   query: str = "", body: dict | None = None) -> Answer:
        """One Feeds API call with the account's access token (after the rate gate)."""

    async def upload(self, url: str, content_type: str, content: bytes) -> Answer:
        """PUT the document to the presigned URL."""

    async def download(self, url: str) -> tuple[Answer, bytes]:
        """GET a document from its presigned URL."""


class FeedJournal(Protocol):
    async def write(self, key: str, record: dict | None) -> None:
        """Durably record (None: forget) a feed in flight before returning."""

    def records(self) -> dict[str, dict]:
        """Every journaled feed, by key."""


class FeedObserver(Protocol):
    """What the lane tells metrics and logs (the adapter's side of it)."""

    def routed(self, lane: str) -> None:
        """One item went to `lane`: "item" (one by one) or "feed"."""

    def feed_created(self, record: dict) -> None:
        """A feed was created (or found after a lost createFeed answer); its id is journaled."""

    def feed_ended(self, record: dict, status: str, results: dict[int, SubmissionResult]) -> None:
        """A feed's items have their results. `status` is Amazon's final processingStatus, or the
        error code when the feed never got that far (feed_refused, feed_upload_failed, ...)."""


class _Unobserved:
    def routed(self, lane: str) -> None:
        pass

    def feed_created(self, record: dict) -> None:
        pass

    def feed_ended(self, record: dict, status: str, results: dict[int, SubmissionResult]) -> None:
        pass


class MemoryJournal:
    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}
        self.writes: list[tuple[str, dict | None]] = []

    async def write(self, key: str, record: dict | None) -> None:
        self.writes.append((key, record))
        if record is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = record

    def records(self) -> dict[str, dict]:
        return dict(self.entries)


# ---- documents and reports ------------------------------------------------------------------
def feed_message(ready: dict, call: ListingCall) -> dict:
    """The feed message (without messageId) that does what `call` does for the item."""
    if call.method == "DELETE":
        return {"sku": ready["reference"], "operationType": "DELETE"}
    body = orjson.loads(call.body or b"{}")
    return {"sku": ready["reference"], "operationType": "UPDATE", "productType": body["productType"],
            "requirements": body.get("requirements") or "LISTING", "attributes": body["attributes"]}


def build_document(seller_id: str, messages: list[dict]) -> bytes:
    """A JSON_LISTINGS_FEED document; message i (from 0) gets messageId i + 1."""
    return orjson.dumps({"header": {"sellerId": seller_id, "version": "2.0", "issueLocale": "en_US"},
                         "messages": [{"messageId": i + 1, **m} for i, m in enumerate(messages)]})


def message_results(report: dict, methods: dict[int, str], ref: Callable[[int], FeedRef],
                    request_ids: list[str]) -> dict[int, SubmissionResult]:
    """The outcome of each message (by messageId) of a processed feed."""
    issues: dict[int, list] = {}
    for entry in report.get("issues") or []:
        if isinstance(entry, dict) and isinstance(entry.get("messageId"), int):
            issues.setdefault(entry["messageId"], []).append(
                {**entry, "attributeNames": [entry["attributeName"]] if entry.get("attributeName") else []})
    results = {}
    for message_id, method in methods.items():
        found = parse_issues(issues.get(message_id, []))
        errors = [i for i in found if i["severity"] == "ERROR"]
        if errors:
            result = SubmissionResult("invalid", amazon_status="INVALID", error_code=errors[0]["code"],
                                      error_message=errors[0]["message"])
        else:
            result = SubmissionResult("deleted" if method == "DELETE" else "accepted", amazon_status="ACCEPTED")
        result.issues = found
        result.request_ids = list(request_ids)
        result.feed = ref(message_id)
        results[message_id] = result
    return results


def whole_feed_failure(status: str, report: dict | None, detail: str = "") -> tuple[str, str]:
    """(error code, message) for every item of a feed that failed as a whole."""
    first = next((i for i in (report or {}).get("issues") or [] if isinstance(i, dict) and "messageId" not in i),
                 None)
    reason = (first or {}).get("message") or detail or "no processing report"
    return f"feed_{status.lower()}", f"the JSON_LISTINGS_FEED ended {status}: {reason}"


def ranges(offsets: list[int]) -> list[list[int]]:
    """Sorted offsets as inclusive [first, last] runs (a journal entry of 25,000 items stays small)."""
    runs: list[list[int]] = []
    for offset in sorted(offsets):
        if runs and offset == runs[-1][1] + 1:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset])
    return runs


def message_id_of(record: dict, position: tuple[int, int]) -> int | None:
    """The messageId of the item at `position` in a journaled feed, or None."""
    partition, offset = position
    if record.get("partition") != partition:
        return None
    before = 0
    for first, last in record["ranges"]:
        if first <= offset <= last:
            return before + offset - first + 1
        before += last - first + 1
    return None


# ---- the lane ---------------------------------------------------------------------------------
@dataclass
class _Entry:
    ready: dict
    call: ListingCall
    position: tuple[int, int]
    future: asyncio.Future
    message: dict
    size: int  # in the document


@dataclass
class _Batch:
    key: tuple[str, str, str]  # seller, marketplace, mode
    account: Account
    base_url: str
    entries: list[_Entry] = field(default_factory=list)
    size: int = 0
    touched: float = 0.0
    closed: bool = False


@dataclass
class _Resumed:
    """A journaled feed this process took over: items attach by position as they are redelivered."""

    key: str
    record: dict
    waiting: dict[int, list[tuple[str, asyncio.Future]]] = field(default_factory=dict)
    results: dict[int, SubmissionResult] | None = None
    task: asyncio.Task | None = None


class _HandedOver(Exception):
    """The entry's partition of listing.ready went to another process, which goes on from the journal."""


class FeedFailed(Exception):
    def __init__(self, code: str, message: str, request_ids: list[str], status: str | None = None,
                 feed_id: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.request_ids, self.status, self.feed_id = code, message, request_ids, status, feed_id


class BulkLane:
    def __init__(self, *, transport: FeedsTransport, journal: FeedJournal, limiter: RateLimiter,
                 settings: BulkSettings | None = None, policy: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable] = asyncio.sleep,
                 wall: Callable[[], float] = time.time, rng: random.Random | None = None,
                 observer: FeedObserver | None = None) -> None:
        self.transport = transport
        self.observer = observer or _Unobserved()
        self.journal = journal
        self.limiter = limiter
        self.settings = settings or BulkSettings()
        self.policy = policy or RetryPolicy()
        self._clock, self._sleep, self._wall = clock, sleep, wall
        self._rng = rng or random.Random()
        self._open: dict[tuple[str, str, str], _Batch] = {}
        self._item_lane: dict[str, int] = {}  # seller -> items sent item by item, not yet answered
        self._resumed: dict[str, _Resumed] = {}
        self._create_locks: dict[str, asyncio.Lock] = {}
        self._owned: set[int] | None = None  # listing.ready partitions; None: never told (no consumer group)
        self._holds: dict[int, set[asyncio.Future]] = {}  # partition -> steps a revoke waits for
        self._tasks: set[asyncio.Task] = set()
        self._ids = itertools.count(1)
        self.feeds_sent = 0  # observable: feeds this process created
        self.feeds_in_flight = 0  # feeds this process is taking from upload (or resumption) to results

    # -- lane choice ------------------------------------------------------------------------
    def backlog(self, seller_id: str) -> int:
        """Items of the seller on their way item by item, plus those gathered for a feed."""
        return self._item_lane.get(seller_id, 0) + sum(len(b.entries) for k, b in self._open.items()
                                                          if k[0] == seller_id)

    def left_item_lane(self, seller_id: str) -> None:
        """An item `route` sent item by item has its answer."""
        left = self._item_lane.get(seller_id, 0) - 1
        if left > 0:
            self._item_lane[seller_id] = left
        else:
            self._item_lane.pop(seller_id, None)

    def route(self, account: Account, base_url: str, ready: dict, call: ListingCall,
              position: tuple[int, int] | None) -> Awaitable[SubmissionResult] | None:
        """The item's result by feed (journaled, or a new batch), or None: send it item by item
        (and call `left_item_lane` once it has its answer)."""
        if position is not None:
            resumed = self._attach(account, ready, call, position)
            if resumed is not None:
                self.observer.routed("feed")
                return resumed
        if (position is None or not feeds_allowed(call.mode) or call.method not in ("PUT", "DELETE")
                or self.backlog(account.seller_id) < self.settings.threshold):
            self._item_lane[account.seller_id] = self._item_lane.get(account.seller_id, 0) + 1
            self.observer.routed("item")
            return None
        self.observer.routed("feed")
        return self._join(account, base_url, ready, call, position)

    # -- batches ----------------------------------------------------------------------------
    def _join(self, account: Account, base_url: str, ready: dict, call: ListingCall,
              position: tuple[int, int]) -> asyncio.Future:
        message = feed_message(ready, call)
        size = len(orjson.dumps(message)) + 24  # messageId and separators
        key = (account.seller_id, ready["marketplace_id"], call.mode)
        batch = self._open.get(key)
        if batch is not None and (len(batch.entries) >= self.settings.max_messages
                                  or batch.size + size > self.settings.max_bytes - 200):
            self._close(batch)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(key, account, base_url)
            self._spawn(self._linger(batch))
        future = asyncio.get_running_loop().create_future()
        batch.entries.append(_Entry(ready, call, position, future, message, size))
        batch.size += size
        batch.touched = self._clock()
        if len(batch.entries) >= self.settings.max_messages:
            self._close(batch)
        return future

    async def _linger(self, batch: _Batch) -> None:
        while not batch.closed:
            wait = batch.touched + self.settings.linger_s - self._clock()
            if wait <= 0:
                self._close(batch)
                return
            await self._sleep(wait)

    def _close(self, batch: _Batch) -> None:
        if batch.closed:
            return
        batch.closed = True
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        self._spawn(self._send(batch))

    def _spawn(self, work: Awaitable) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: _Batch) -> None:
        seller, marketplace, mode = batch.key
        entries = batch.entries
        key = f"{seller}|{marketplace}|{mode}|{int(self._wall() * 1000)}-{next(self._ids)}"
        partition = entries[0].position[0]
        record = {"seller_id": seller, "marketplace_id": marketplace, "mode": mode, "base_url": batch.base_url,
                  "partition": partition, "ranges": ranges([e.position[1] for e in entries]),
                  "count": len(entries), "methods": "".join("D" if e.call.method == "DELETE" else "U" for e in entries),
                  "state": "uploading"}
        # Message ids follow the offsets' order (how a resumed feed maps a redelivered item).
        entries.sort(key=lambda e: e.position[1])
        try:
            results = await self._observed_run(batch.account, key, record,
                                               build_document(seller, [e.message for e in entries]))
        except _HandedOver:  # the partition's next owner gets the items again: none is answered here
            for entry in entries:
                entry.future.cancel()
            return
        for index, entry in enumerate(entries):
            if not entry.future.done():
                entry.future.set_result(results[index + 1])
        await self.expire()

    async def _observed_run(self, account: Account, key: str, record: dict,
                            document: bytes | None) -> dict[int, SubmissionResult]:
        """`_run`, with every way it can end (but a handover) as a result per message id, told to
        the observer."""
        self.feeds_in_flight += 1
        try:
            results = await self._run(account, key, record, document)
            status = record.get("status") or "FATAL"
        except _HandedOver:  # the next owner answers the items: nothing ended here
            raise
        except FeedFailed as failed:
            results, status = {i: _failed(failed, i) for i in range(1, record["count"] + 1)}, failed.code
        except Exception as exc:  # never leave an item without an answer
            lost = FeedFailed("feed_error", f"the feed could not be sent or resumed: {type(exc).__name__}: {exc}", [])
            results, status = {i: _failed(lost, i) for i in range(1, record["count"] + 1)}, lost.code
        finally:
            self.feeds_in_flight -= 1
        self.observer.feed_ended(record, status, results)
        return results

    async def _run(self, account: Account, key: str, record: dict,
                   document: bytes | None) -> dict[int, SubmissionResult]:
        """From wherever `record` stands (a new batch, or an entry resumed from the journal) to a
        result per message id."""
        ids: list[str] = record.setdefault("request_ids", [])
        if record["state"] == "uploading":
            answer = await self._call(account, record, "createFeedDocument", f"{FEEDS_API}/documents",
                                      body={"contentType": FEED_CONTENT_TYPE}, expect=201)
            _note(ids, answer)
            assert document is not None  # only a new feed uploads: the journal starts at "creating"
            url = _body(answer)["url"]
            uploaded = await self._retrying(lambda: self.transport.upload(url, FEED_CONTENT_TYPE, document),
                                            expect=200)
            if uploaded.status != 200:
                raise FeedFailed("feed_upload_failed", f"the feed document upload answered {uploaded.label}", ids)
            record.update(state="uploaded", document_id=_body(answer)["feedDocumentId"])
            await self._write(key, record)
        if record["state"] in ("uploaded", "creating"):
            await self._create(account, key, record)
        if record["state"] == "submitted":
            status, answer = await self._poll(account, record)
            record.update(state="reported", status=status, result_document_id=_body(answer).get("resultFeedDocumentId"),
                          get_feed_request_id=answer.request_id, expires=self._wall() + REPORTED_KEPT_S)
            await self._write(key, record)
        return await self._results(account, record)

    async def _create(self, account: Account, key: str, record: dict) -> None:
        """createFeed exactly once per journal entry. Under the seller's lock an entry turns
        "creating" right before its createFeed and leaves that state before the lock is let go, so
        an entry found "creating" was left by a process that died (or failed) with its createFeed
        perhaps sent: it is resolved first, by getFeeds, before any other createFeed of the seller."""
        lock = self._create_locks.setdefault(account.seller_id, asyncio.Lock())
        async with lock:
            current = self.journal.records().get(key)
            if current is not None and current.get("state") in ("submitted", "reported"):
                record.update(current)  # resolved meanwhile (by another entry's creation)
                return
            others = sorted(((k, dict(r)) for k, r in self.journal.records().items()
                             if k != key and r.get("seller_id") == account.seller_id and r.get("state") == "creating"),
                            key=lambda kr: kr[1].get("since", ""))
            for other_key, other in others:
                await self._create_once(account, other_key, other)
            await self._create_once(account, key, record)

    async def _create_once(self, account: Account, key: str, record: dict) -> None:
        ids = record.setdefault("request_ids", [])
        hold: asyncio.Future | None = None

        async def leaving() -> None:
            # From here until its answer is journaled, a revoke of the partition waits for this
            # createFeed: the next owner must not look for a feed that is still on its way.
            nonlocal hold
            hold = self._hold(record)
            if record["state"] != "creating":
                record.update(state="creating", since=_iso(self._wall() - CREATED_SKEW_S))
                await self.journal.write(key, record)

        try:
            found = None
            if record["state"] == "creating":  # left by a process that may have sent its createFeed
                found = await self._created_since(account, record)
            if found is None:
                attempts = 0
                while True:
                    attempts += 1
                    answer = await self._once(account, record, "createFeed", f"{FEEDS_API}/feeds", body={
                        "feedType": FEED_TYPE, "marketplaceIds": [record["marketplace_id"]],
                        "inputFeedDocumentId": record["document_id"]}, leaving=leaving)
                    _note(ids, answer)
                    created = answer.body or {}
                    if answer.status == 202 and isinstance(created.get("feedId"), str):
                        found, record["create_feed_request_id"] = created["feedId"], answer.request_id
                        self.feeds_sent += 1
                        break
                    if answer.status is not None and answer.status < 500 and answer.status != 429:
                        await self.journal.write(key, None)
                        raise FeedFailed("feed_refused", f"createFeed answered {_error_text(answer)}", ids)
                    if answer.status != 429:  # no answer or 5xx: the feed may exist all the same
                        found = await self._created_since(account, record)
                        if found is not None:
                            break
                    if attempts >= self.policy.max_attempts:
                        found = await self._created_since(account, record) if answer.status != 429 else None
                        if found is not None:
                            break
                        await self.journal.write(key, None)  # not created: its items end as failed
                        raise FeedFailed("feed_refused", f"createFeed gave up after {attempts} attempts: "
                                         f"{_error_text(answer)}", ids)
                    _release(hold)  # nothing on its way until the next attempt leaves
                    await self._sleep(self.policy.delay(attempts, self._rng))
            else:
                record["create_feed_request_id"] = None  # created before a crash: its answer was lost
                hold = self._hold(record)  # journaled only while this process owns the partition
            record.update(state="submitted", feed_id=found)
            await self.journal.write(key, record)
            self.observer.feed_created(record)
        finally:
            _release(hold)

    async def _created_since(self, account: Account, record: dict) -> str | None:
        """A JSON_LISTINGS_FEED of the seller created since the journal entry that no journal
        entry names: the feed whose createFeed answer was lost."""
        known = {r.get("feed_id") for r in self.journal.records().values()} | {None}
        answer = await self._call(account, record, "getFeeds", f"{FEEDS_API}/feeds",
                                  query=f"feedTypes={FEED_TYPE}&pageSize=100&createdSince={record['since']}",
                                  expect=200)
        _note(record["request_ids"], answer)
        for feed in (answer.body or {}).get("feeds") or []:
            if feed.get("feedId") not in known and record["marketplace_id"] in (feed.get("marketplaceIds") or []):
                return feed["feedId"]
        return None

    async def _poll(self, account: Account, record: dict) -> tuple[str, Answer]:
        while True:
            answer = await self._call(account, record, "getFeed", f"{FEEDS_API}/feeds/{record['feed_id']}",
                                      expect=200)
            status = (answer.body or {}).get("processingStatus")
            if status in FINAL_STATUSES:
                return status, answer
            await self._sleep(self.settings.poll_interval_s)

    async def _results(self, account: Account, record: dict) -> dict[int, SubmissionResult]:
        ids = list(record["request_ids"])
        report = None
        if record.get("result_document_id"):
            for tries in itertools.count(1):
                answer = await self._call(account, record, "getFeedDocument",
                                          f"{FEEDS_API}/documents/{record['result_document_id']}", expect=200)
                _note(ids, answer)
                downloaded, content = await self._retrying(
                    functools.partial(self.transport.download, _body(answer)["url"]), expect=200)
                # A presigned URL answers 403 once its five minutes are over (a slow download, a
                # stalled process): getFeedDocument gives a fresh one.
                if downloaded.status != 403 or tries >= REPORT_URL_TRIES:
                    break
            if downloaded.status != 200:
                raise FeedFailed("feed_report_unavailable", f"the processing report download answered "
                                 f"{downloaded.label}", ids, record.get("status"), record.get("feed_id"))
            if _body(answer).get("compressionAlgorithm") == "GZIP":
                content = gzip.decompress(content)
            report = orjson.loads(content)

        def ref(message_id: int) -> FeedRef:
            return FeedRef(record.get("feed_id"), message_id, record.get("create_feed_request_id"),
                           record.get("get_feed_request_id"), record.get("status"))

        methods = {i + 1: "DELETE" if m == "D" else "PUT" for i, m in enumerate(record["methods"])}
        if record.get("status") != "DONE" or report is None:
            code, message = whole_feed_failure(record.get("status") or "FATAL", report)
            return {i: _failed(FeedFailed(code, message, ids), i, ref(i)) for i in methods}
        return message_results(report, methods, ref, ids)

    # -- resuming journaled feeds -----------------------------------------------------------
    def _attach(self, account: Account, ready: dict, call: ListingCall,
                position: tuple[int, int]) -> asyncio.Future | None:
        for key, record in self.journal.records().items():
            if record.get("seller_id") != ready["seller_id"] or record.get("state") == "uploading":
                continue
            message_id = message_id_of(record, position)
            if message_id is None:
                continue
            resumed = self._resumed.get(key)
            if resumed is None:
                resumed = self._resumed[key] = _Resumed(key, dict(record))
            future = asyncio.get_running_loop().create_future()
            if resumed.results is not None:
                future.set_result(_copy(resumed.results[message_id]))
                return future
            resumed.waiting.setdefault(message_id, []).append((call.method, future))
            if resumed.task is None:
                resumed.task = asyncio.ensure_future(self._resume(resumed, account))
            return future
        return None

    async def _resume(self, resumed: _Resumed, account: Account) -> None:
        try:
            results = await self._observed_run(account, resumed.key, resumed.record, None)
        except _HandedOver:
            self._resumed.pop(resumed.key, None)  # read afresh from the journal if the partition comes back
            for waiters in resumed.waiting.values():
                for _method, future in waiters:
                    future.cancel()
            return
        resumed.results = results
        for message_id, waiters in resumed.waiting.items():
            for _method, future in waiters:
                if not future.done():
                    future.set_result(_copy(results[message_id]))
        resumed.waiting.clear()

    async def expire(self) -> None:
        """Forget reported feeds past their keeping time (called now and then)."""
        now = self._wall()
        for key, record in self.journal.records().items():
            if record.get("state") == "reported" and record.get("expires", now) < now:
                await self.journal.write(key, None)
                self._resumed.pop(key, None)

    # -- calls ------------------------------------------------------------------------------
    async def _once(self, account: Account, record: dict, operation: str, path: str, query: str = "",
                    body: dict | None = None, *, leaving: Callable[[], Awaitable] | None = None) -> Answer:
        """One Feeds call for the journal entry `record`. It leaves only while this process owns the
        entry's partition, checked once the rate gate lets it through (the wait may outlast the
        ownership); `leaving` runs then too, right before it leaves."""
        lane = self.limiter.lane(account.seller_id, operation)

        async def owned() -> None:
            self._check_owned(record)
            if leaving is not None:
                await leaving()

        await lane.acquire(owned)
        try:
            answer = await self.transport.feeds_call(account, record["base_url"], record["mode"], operation, path,
                                                     query, body)
        finally:
            lane.answered()
        if answer.status == 429:
            self.limiter.throttled(account.seller_id, operation)
        elif answer.status is not None and answer.status < 500:
            self.limiter.succeeded(account.seller_id, operation, answer.rate_limit)
        return answer

    async def _call(self, account: Account, record: dict, operation: str, path: str, *,
                    query: str = "", body: dict | None = None, expect: int) -> Answer:
        """A Feeds call that is safe to repeat, retried on 429, 5xx and no answer."""
        attempts = 0
        while True:
            attempts += 1
            answer = await self._once(account, record, operation, path, query, body)
            if answer.status == expect and isinstance(answer.body, dict):
                return answer
            if (answer.status is not None and answer.status < 500 and answer.status != 429) \
                    or attempts >= self.policy.max_attempts:
                raise FeedFailed(f"feed_{operation}_failed", f"{operation} answered {_error_text(answer)}",
                                 [answer.request_id] if answer.request_id else [])
            await self._sleep(self.policy.delay(attempts, self._rng))

    async def _retrying(self, attempt: Callable[[], Awaitable], expect: int):
        attempts = 0
        while True:
            attempts += 1
            outcome = await attempt()
            answer = outcome[0] if isinstance(outcome, tuple) else outcome
            if answer.status == expect or (answer.status is not None and answer.status < 500) \
                    or attempts >= self.policy.max_attempts:
                return outcome
            await self._sleep(self.policy.delay(attempts, self._rng))

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # -- partitions owned -------------------------------------------------------------------
    async def assigned(self, partitions: Iterable[int]) -> None:
        """The consumer group gave this process `partitions` of listing.ready."""
        self._owned = (self._owned or set()) | set(partitions)

    async def revoked(self, partitions: Iterable[int]) -> int:
        """The consumer group took `partitions` away: their items leave the open batches, and no
        Feeds call or journal write of their entries starts any more; none of their items is
        answered here (the next owner gets them again and goes on from the journal). Waits, up to
        `handover_wait_s`, until every createFeed already on its way has its answer journaled, so
        the next owner never looks for a feed still being created. Returns how many are still on
        their way after that (0: none)."""
        gone = set(partitions)
        self._owned = (self._owned or set()) - gone
        for batch in list(self._open.values()):
            kept = [e for e in batch.entries if e.position[0] not in gone]
            if len(kept) == len(batch.entries):
                continue
            for entry in batch.entries:
                if entry.position[0] in gone:
                    entry.future.cancel()
            batch.entries, batch.size = kept, sum(e.size for e in kept)
            if not kept:
                batch.closed = True
                del self._open[batch.key]
        holds = [hold for partition in gone for hold in self._holds.get(partition, ())]
        if not holds:
            return 0
        _, pending = await asyncio.wait(holds, timeout=self.settings.handover_wait_s)
        return len(pending)

    def _check_owned(self, record: dict) -> None:
        if self._owned is not None and record["partition"] not in self._owned:
            raise _HandedOver(record["partition"])

    def _hold(self, record: dict) -> asyncio.Future:
        """A step of the entry that a revoke of its partition waits for until it is set; refused
        (_HandedOver) once the partition is revoked."""
        self._check_owned(record)
        hold = asyncio.get_running_loop().create_future()
        holds = self._holds.setdefault(record["partition"], set())
        holds.add(hold)
        hold.add_done_callback(holds.discard)
        return hold

    async def _write(self, key: str, record: dict) -> None:
        """Journal the entry's next state, only while this process owns its partition."""
        hold = self._hold(record)
        try:
            await self.journal.write(key, record)
        finally:
            _release(hold)


def _release(hold: asyncio.Future | None) -> None:
    if hold is not None and not hold.done():
        hold.set_result(None)


def _failed(failed: FeedFailed, message_id: int, ref: FeedRef | None = None) -> SubmissionResult:
    return SubmissionResult("failed", error_code=failed.code, error_message=failed.message,
                            request_ids=list(failed.request_ids),
                            feed=ref or FeedRef(failed.feed_id, message_id, None, None, failed.status))


def _copy(result: SubmissionResult) -> SubmissionResult:
    return SubmissionResult(**{**result.__dict__, "request_ids": list(result.request_ids),
                               "issues": list(result.issues)})


def _note(ids: list[str], answer: Answer) -> None:
    if answer.request_id:
        ids.append(answer.request_id)


def _error_text(answer: Answer) -> str:
    if answer.status is None:
        return f"nothing ({answer.failure}: {answer.detail})"
    errors = (answer.body or {}).get("errors") or [{}]
    return f"HTTP {answer.status} {errors[0].get('code', '')}: {errors[0].get('message', '')}".strip()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _body(answer: Answer) -> dict:
    """The JSON body of an answer `_call` or `_poll` returned: they return only answers with one."""
    assert answer.body is not None
    return answer.body
