"""Submitting one ready item to Amazon: the domain core of the submitter.

Pure orchestration over ports: an SP-API transport (one HTTP attempt; the httpx adapter lives in
spapi_client.py), the per-(seller, lane) rate limiter, the accepted-hash table and metrics. Time
and randomness are injected, so tests run it with fakes and a fake clock.

Per item, events are handled in order: a second event for the same SKU waits for the first to
finish, and a variant waits for its parent's submission in flight, so Amazon sees parents before
children and never an older payload after a newer one. Different items of one seller run
concurrently and leave through the seller's rate gate in arrival order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Protocol, TypeVar

from catalog_sync.runtime.events import item_key
from catalog_sync.runtime.sync_modes import recorded_endpoint
from catalog_sync.submitter.accounts import Account, Accounts
from catalog_sync.submitter.classification import Answer, Decision, RetryPolicy, classify, first_error
from catalog_sync.submitter.endpoints import Endpoints, UnknownMarketplace
from catalog_sync.submitter.families import ParentOutcomes
from catalog_sync.submitter.listing_requests import InvalidReadyEvent, ListingCall, NotSent, build_call
from catalog_sync.submitter.outcomes import SubmissionResult, parse_issues
from catalog_sync.submitter.rate import RateLimiter


class LoginFailed(Exception):
    """Login with Amazon refused or failed. `retryable` for 5xx and network trouble."""

    def __init__(self, status: int | None, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable


class SpApiTransport(Protocol):
    async def prepare(self, account: Account) -> None:
        """Have a valid access token for the account (log in if needed). Raises LoginFailed."""

    def connection(self, base_url: str) -> AbstractAsyncContextManager:
        """Check out an HTTP connection to `base_url` for one attempt."""

    async def send(self, connection, account: Account, base_url: str, call: ListingCall) -> Answer:
        """One HTTP attempt on a checked-out connection with the cached access token."""

    async def refresh_token(self, account: Account, generation: int | None) -> None:
        """After a 403: drop the account's cached access token if it is still the one that
        `generation` names (concurrent 403s of one seller cause one login, not many)."""


class BulkRoute(Protocol):
    def route(self, account: Account, base_url: str, ready: dict, call: ListingCall,
              position: tuple[int, int] | None) -> Awaitable[SubmissionResult] | None:
        """The item's result by feed, or None to send it item by item (feeds.BulkLane)."""

    def left_item_lane(self, seller_id: str) -> None:
        """An item `route` sent item by item has its answer."""


class AcceptedHashes(Protocol):
    def get(self, key: str) -> str | None: ...

    def put(self, key: str, content_hash: str | None) -> None: ...


class SubmissionObserver(Protocol):
    def request(self, operation: str, status: str, seconds: float) -> None: ...
    def throttled(self) -> None: ...
    def retried(self) -> None: ...
    def quota_waited(self, seconds: float) -> None: ...
    def in_flight(self, delta: int) -> None: ...


class _NoMetrics:
    def request(self, operation, status, seconds): pass
    def throttled(self): pass
    def retried(self): pass
    def quota_waited(self, seconds): pass
    def in_flight(self, delta): pass


class SpApiPorts:
    """What the submitter's callers of SP-API (Submitter, Reconciler) work through: the sellers'
    credentials, the transport, the hosts, the usage plans, metrics, and time, sleep and randomness
    (injected, so tests run on a fake clock). Without a limiter, one of its own on the same clock."""

    def __init__(
        self,
        *,
        accounts: Accounts,
        transport: SpApiTransport,
        endpoints: Endpoints,
        limiter: RateLimiter | None = None,
        observer: SubmissionObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.accounts = accounts
        self.transport = transport
        self.endpoints = endpoints
        self.limiter = limiter or RateLimiter(overrides=accounts.rate_overrides(), clock=clock, sleep=sleep)
        self.observer = observer or _NoMetrics()
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()


class MemoryHashes:
    """The accepted-hash table in memory (tests; the Kafka-backed table extends it)."""

    def __init__(self) -> None:
        self.hashes: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.hashes.get(key)

    def put(self, key: str, content_hash: str | None) -> None:
        if content_hash is None:
            self.hashes.pop(key, None)
        else:
            self.hashes[key] = content_hash


@dataclass
class Submitted:
    """What the worker must publish: the outcome, and the change of the accepted-hash table
    (key, hash or None for a deleted listing) when there is one."""

    ready: dict
    endpoint: str
    result: SubmissionResult
    hash_change: tuple[str, str | None] | None = None


T = TypeVar("T")


class _Sequencer:
    """Per-key order: `turn(keys)` waits for earlier holders of any of `keys` to finish."""

    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Future] = {}

    async def run(self, own: str, after: list[str], work: Callable[[], Awaitable]):
        loop = asyncio.get_running_loop()
        waits = [self._tails[k] for k in {own, *after} if k in self._tails]
        mine = loop.create_future()
        self._tails[own] = mine
        try:
            for fut in waits:
                await asyncio.shield(fut)
            return await work()
        finally:
            mine.set_result(None)
            if self._tails.get(own) is mine:
                del self._tails[own]


class Submitter:
    def __init__(self, ports: SpApiPorts, *, hashes: AcceptedHashes | None = None,
                 policy: RetryPolicy | None = None, bulk: BulkRoute | None = None) -> None:
        self.ports = ports
        self.hashes = hashes if hashes is not None else MemoryHashes()
        self.policy = policy or RetryPolicy()
        self._sequencer = _Sequencer()
        self._parents = ParentOutcomes()
        self.bulk = bulk  # the bulk lane (feeds.py), when the worker runs it

    async def submit(self, ready: dict) -> Submitted:
        """The final outcome of one ListingReady event. Never raises for Amazon's or the
        network's behaviour: every way it can end is an outcome."""
        return await self.in_turn(ready, lambda: self.submit_now(ready))

    async def in_turn(self, ready: dict, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` for this item once earlier messages of the same item, and of its parent,
        are done: Amazon must see an item's changes in order, and a child after its parent."""
        if ready["item_type"] == "category":  # never sent: no order to keep
            return await work()
        seller, marketplace = ready["seller_id"], ready["marketplace_id"]
        own = item_key(seller, marketplace, ready["reference"])
        after = [item_key(seller, marketplace, ready["parent_reference"])] if ready.get("parent_reference") else []
        return await self._sequencer.run(own, after, work)

    async def submit_now(self, ready: dict, position: tuple[int, int] | None = None) -> Submitted:
        """`submit` without waiting for the item's turn (the caller holds it: `in_turn`).
        `position` (partition, offset of the ready event) lets the bulk lane name the item."""
        endpoint = recorded_endpoint(ready["mode"])
        if ready["item_type"] == "category":
            return Submitted(ready, endpoint, SubmissionResult("not_sent"))
        family = ready["operation"] == "upsert"  # deletes: children go first, nothing to hold back
        if family and ready["item_type"] == "variant" and (refused := self._parents.refusal(ready)):
            return Submitted(ready, endpoint, refused)
        key = item_key(ready["seller_id"], ready["marketplace_id"], ready["reference"])
        submitted = await self._submit(ready, endpoint, key, position)
        if family and ready["item_type"] == "product":
            self._parents.record(ready, submitted.result)
        return submitted

    async def _submit(self, ready: dict, endpoint: str, key: str, position: tuple[int, int] | None) -> Submitted:
        account = self.ports.accounts.get(ready["seller_id"])
        if account is None:
            return Submitted(ready, endpoint, SubmissionResult(
                "failed", error_code="no_credentials",
                error_message=f"no SP-API credentials for seller {ready['seller_id']} "
                              "(SELLER_ID/LWA_* or SPAPI_ACCOUNTS_FILE)"))
        try:
            call = build_call(ready)
            if isinstance(call, NotSent):
                return Submitted(ready, endpoint, SubmissionResult(call.outcome))
            base_url = self.ports.endpoints.base_url(ready["marketplace_id"], sandbox=call.sandbox)
        except (InvalidReadyEvent, UnknownMarketplace, ValueError) as exc:
            return Submitted(ready, endpoint, SubmissionResult("failed", error_code="invalid_request",
                                                               error_message=str(exc)))
        # Only production ACCEPTED answers change what is live on Amazon; the sandbox and
        # VALIDATION_PREVIEW persist nothing, so they neither set nor consult the table.
        production = call.mode == "production"
        content_hash = ready.get("content_hash")
        if production and call.method == "PUT" and content_hash and self.hashes.get(key) == content_hash:
            return Submitted(ready, endpoint, SubmissionResult("unchanged"))
        by_feed = self.bulk.route(account, base_url, ready, call, position) if self.bulk is not None else None
        if by_feed is not None:
            started = self.ports.clock()
            result = await by_feed
            result.latency_ms = (self.ports.clock() - started) * 1000.0
        else:
            try:
                result = await self._attempts(account, base_url, call)
            finally:
                if self.bulk is not None:
                    self.bulk.left_item_lane(account.seller_id)
        change = None
        if production and result.amazon_status == "ACCEPTED":
            change = (key, content_hash if call.method == "PUT" else None)
            self.hashes.put(*change)
        return Submitted(ready, endpoint, result, change)

    async def _attempts(self, account: Account, base_url: str, call: ListingCall) -> SubmissionResult:
        lane = self.ports.limiter.lane(account.seller_id, call.lane)
        request_ids: list[str] = []
        attempts = 0
        refreshed = False
        interrupted = False
        first_sent: float | None = None
        while True:
            counted = False
            try:
                await self.ports.transport.prepare(account)
                async with AsyncExitStack() as stack:
                    waited, connection = await lane.acquire(
                        lambda: stack.enter_async_context(self.ports.transport.connection(base_url)))
                    self.ports.observer.quota_waited(waited)
                    sent = self.ports.clock()
                    if first_sent is None:
                        first_sent = sent
                    attempts += 1
                    counted = True
                    self.ports.observer.in_flight(1)
                    try:
                        answer, interrupted = await _finish_on_the_wire(
                            self.ports.transport.send(connection, account, base_url, call))
                    finally:
                        self.ports.observer.in_flight(-1)
                        lane.answered()
            except LoginFailed as exc:
                # No Listings call went out; a refused login is final, a failing LWA is retried.
                sent = self.ports.clock()
                if first_sent is None:
                    first_sent = sent
                attempts += 0 if counted else 1
                answer = Answer(None, failure="login_failed", detail=f"Login with Amazon: {exc.message}",
                                body={"errors": [{"code": exc.code, "message": f"Login with Amazon: {exc.message}"}]})
                if not exc.retryable:
                    self.ports.observer.request(call.operation, "login_failed", 0.0)
                    result = self._final(call, answer, "rejected", request_ids, attempts, first_sent)
                    result.http_status = exc.status
                    return result
            now = self.ports.clock()
            self.ports.observer.request(call.operation, answer.label, now - sent)
            if answer.request_id:
                request_ids.append(answer.request_id)
            decision = classify(answer, token_refreshed=refreshed)
            if decision is Decision.DONE:
                self.ports.limiter.succeeded(account.seller_id, call.lane, answer.rate_limit)
                return self._done(call, answer, request_ids, attempts, first_sent)
            if decision is Decision.FINAL:
                if answer.rate_limit:
                    self.ports.limiter.succeeded(account.seller_id, call.lane, answer.rate_limit)
                return self._final(call, answer, "rejected", request_ids, attempts, first_sent)
            if interrupted:
                # Stopping: another attempt would be a new call; the message's next owner makes it.
                raise asyncio.CancelledError
            if decision is Decision.REFRESH_TOKEN:
                refreshed = True
                await self.ports.transport.refresh_token(account, answer.token_generation)
                if attempts < self.policy.max_attempts:
                    self.ports.observer.retried()
                    continue
                return self._final(call, answer, "rejected", request_ids, attempts, first_sent)
            if decision is Decision.THROTTLED:
                self.ports.observer.throttled()
                self.ports.limiter.throttled(account.seller_id, call.lane)
            delay = self.policy.delay(attempts, self.ports.rng)
            if not self.policy.allows(attempts, now - first_sent, delay):
                return self._final(call, answer, "failed", request_ids, attempts, first_sent, exhausted=True)
            self.ports.observer.retried()
            await self.ports.sleep(delay)

    def _done(self, call: ListingCall, answer: Answer, request_ids, attempts, first_sent) -> SubmissionResult:
        body = answer.body or {}
        status = body.get("status")
        issues = parse_issues(body.get("issues"))
        if status == "INVALID":
            errors = [i for i in issues if i["severity"] == "ERROR"] or issues
            code = errors[0]["code"] if errors else None
            message = errors[0]["message"] if errors else "Amazon answered INVALID without issues"
            outcome = "invalid"
        elif status in ("ACCEPTED", "VALID"):
            code = message = None
            outcome = "valid" if status == "VALID" else ("deleted" if call.method == "DELETE" else "accepted")
        else:
            code, message = "unexpected_response", f"HTTP 200 without a known status: {str(body)[:200]}"
            outcome = "failed"
        return SubmissionResult(
            outcome, http_status=200, amazon_status=status if isinstance(status, str) else None,
            request_ids=request_ids, submission_id=_text(body.get("submissionId")), issues=issues,
            error_code=code, error_message=message, attempts=attempts,
            latency_ms=(self.ports.clock() - first_sent) * 1000.0)

    def _final(self, call: ListingCall, answer: Answer, outcome: str, request_ids, attempts, first_sent,
               *, code: str | None = None, message: str | None = None, exhausted: bool = False) -> SubmissionResult:
        amazon_code, amazon_message = first_error(answer.body)
        code = code or amazon_code or answer.failure or (f"HTTP{answer.status}" if answer.status else "error")
        message = message or amazon_message or answer.detail or f"HTTP {answer.status}"
        if exhausted:
            message = f"gave up after {attempts} attempts: {message}"
        return SubmissionResult(
            outcome, http_status=answer.status, request_ids=request_ids, error_code=code,
            error_message=message, attempts=attempts, latency_ms=(self.ports.clock() - first_sent) * 1000.0)


async def _finish_on_the_wire(sending: Awaitable[Answer]) -> tuple[Answer, bool]:
    """The answer of a call already sent, and whether the task was cancelled meanwhile (a stop or
    a revoke). Amazon may act on a request whatever we do, so its answer is awaited anyway (the
    transport's read timeout bounds the wait) and the outcome is recorded; abandoning it would
    leave the item to be submitted again by the next owner. A second cancel drops the call."""
    call = asyncio.ensure_future(sending)
    try:
        return await asyncio.shield(call), False
    except asyncio.CancelledError:
        if call.cancelled():
            raise
        if call.done():  # answered just as the cancel came
            return call.result(), True
    return await call, True  # a second cancel (the worker stopped waiting) drops the call


def _text(value) -> str | None:
    """A scalar of Amazon's answer as text (events carry strings); objects and lists are dropped."""
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)
