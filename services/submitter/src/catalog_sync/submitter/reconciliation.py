"""After ACCEPTED: looking again until Amazon shows the listing live or in error (issue 18, item 5).

Amazon's ACCEPTED only queues a submission; issues can appear later. For each accepted upsert of a
run that persists (test: the sandbox; production; never preview, which persists nothing:
catalog_sync.runtime.sync_modes), `Reconciler.observe` calls getListingsItem (includedData=summaries,issues)
until the answer decides, or the time limit passes:

- live: summaries[].status of the marketplace has BUYABLE or DISCOVERABLE;
- error: an issue of severity ERROR (for the marketplace); the item becomes an `amazon_response`
  error with the x-amzn-RequestId of the GET that found it, and its accepted content hash is
  dropped so the next run sends it again;
- awaiting: neither by the time limit (counted from the acceptance; an acceptance already older
  than the limit is not looked at), or the sandbox answered its static example, not this listing.

The GETs of a seller go through the seller's own `get` lane of a RateLimiter (5 req/s, burst 10
per seller and application; 429s and x-amzn-RateLimit-Limit slow it down), in arrival order, so a
seller's reconciliations are batched behind one gate whatever their number. Looks back off from
`first_look_s`, doubling with jitter up to `max_interval_s`. A notification from Amazon about the
listing (`notified`) makes the next look happen at once. A newer submission of the same listing
ends an older observation without an event (`supersede`): it would describe older content.

Pure orchestration over ports, like submission.py: time, sleep and randomness are injected.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from catalog_sync.runtime.contract import AWAITING, LISTING_ERROR, LIVE, status_of_listing_state
from catalog_sync.runtime.events import item_key, new_header
from catalog_sync.runtime.sync_modes import SANDBOX, persists, route
from catalog_sync.submitter.classification import Answer
from catalog_sync.submitter.endpoints import UnknownMarketplace
from catalog_sync.submitter.listing_requests import API_PATH, ListingCall, encode_path_segment
from catalog_sync.submitter.outcomes import parse_issues
from catalog_sync.submitter.submission import LoginFailed, SpApiPorts

GET = "getListingsItem"
EARLY_NOTIFICATIONS = 10_000  # notifications remembered until their acceptance arrives
LIVE_STATUSES = frozenset({"BUYABLE", "DISCOVERABLE"})


@dataclass(frozen=True)
class ReconcilePolicy:
    first_look_s: float = 5.0       # first look this long after the acceptance
    max_interval_s: float = 60.0    # back-off ceiling between looks
    time_limit_s: float = 900.0     # after this long from the acceptance, the item stays "awaiting"


@dataclass
class Observation:
    state: str                      # awaiting | live | error (contract.LISTING_STATES)
    ended_by: str                   # poll | notification | time_limit | sandbox | no_credentials | refused
    looks: int = 0
    request_id: str | None = None   # of the GET whose answer decided, else of the last GET
    amazon_statuses: list[str] = field(default_factory=list)
    issues: list[dict] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    note: str | None = None

    @property
    def status(self) -> str:
        return status_of_listing_state(self.state)


def wants(completed: dict) -> bool:
    """Whether a SubmissionCompleted is an acceptance worth looking at again."""
    return (completed.get("outcome") == "accepted" and completed.get("operation") == "upsert"
            and completed.get("item_type") in ("product", "variant") and persists(completed.get("mode")))


def get_call(completed: dict) -> ListingCall:
    """getListingsItem of the accepted listing, routed by the run's mode (the sandbox in test mode)."""
    chosen = route(completed["mode"], GET)
    path = f"{API_PATH}/{encode_path_segment(completed['seller_id'])}/{encode_path_segment(completed['reference'])}"
    params = (("marketplaceIds", completed["marketplace_id"]), ("includedData", "summaries,issues"),
              ("issueLocale", "en_US"))
    return ListingCall(GET, chosen.method, path, params, None, "get", completed["mode"], chosen.host == SANDBOX)


def judge(body: dict | None, sku: str, marketplace_id: str) -> tuple[str | None, list[str], list[dict]] | None:
    """(state or None while undecided, statuses, issues) of a 200 answer; None when the answer is
    about another SKU (the static sandbox answers its example whatever was asked)."""
    body = body if isinstance(body, dict) else {}
    if body.get("sku") != sku:
        return None
    raw_issues = [i for i in body.get("issues") or [] if isinstance(i, dict)
                  and marketplace_id in (i.get("marketplaceIds") or [marketplace_id])]
    issues = parse_issues(raw_issues)
    statuses = sorted({str(s) for summary in body.get("summaries") or [] if isinstance(summary, dict)
                       and summary.get("marketplaceId") in (None, marketplace_id)
                       for s in (summary.get("status") or []) if isinstance(s, str)})
    if any(i["severity"] == "ERROR" for i in issues):
        return LISTING_ERROR, statuses, issues
    if LIVE_STATUSES & set(statuses):
        return LIVE, statuses, issues
    return None, statuses, issues


class _Watch:
    __slots__ = ("wake", "notified", "superseded", "since")

    def __init__(self, since: int) -> None:
        self.wake = asyncio.Event()
        self.notified = False
        self.superseded = False
        self.since = since  # event_time of the submission observed


class Reconciler:
    def __init__(self, ports: SpApiPorts, *, policy: ReconcilePolicy | None = None,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.ports = ports
        self.policy = policy or ReconcilePolicy()
        self._wall_ms = wall_ms
        self._watches: dict[str, list[_Watch]] = {}
        # (seller, sku) -> (marketplace or None, when received): notifications that found no watch
        self._early: OrderedDict[tuple[str, str], tuple[str | None, int]] = OrderedDict()

    # -- inputs besides the acceptances -----------------------------------------------------
    def notified(self, seller_id: str, marketplace_id: str | None, sku: str) -> int:
        """Amazon says the listing changed: look at once. Returns how many observations woke.

        The notification and the acceptance come on different topics, in any order: one that finds
        no watch is remembered (bounded), and a watch of an acceptance older than it starts with a
        look at once."""
        woken = 0
        for key, watches in self._watches.items():
            seller, marketplace, reference = key.split("|", 2)
            if seller == seller_id and reference == sku and marketplace_id in (None, marketplace):
                for watch in watches:
                    watch.notified = True
                    watch.wake.set()
                    woken += 1
        if not woken:
            self._early[seller_id, sku] = (marketplace_id, self._wall_ms())
            self._early.move_to_end((seller_id, sku))
            while len(self._early) > EARLY_NOTIFICATIONS:
                self._early.popitem(last=False)
        return woken

    def supersede(self, completed: dict) -> None:
        """A newer submission of a listing ends the observations of older ones (no event)."""
        since = _ms(completed.get("event_time"))
        for watch in self._watches.get(_key(completed), []):
            if watch.since < since:
                watch.superseded = True
                watch.wake.set()

    @property
    def watching(self) -> int:
        return sum(len(w) for w in self._watches.values())

    # -- the looking --------------------------------------------------------------------------
    async def observe(self, completed: dict) -> Observation | None:
        """Look until Amazon decides or the time limit passes. None (no event): superseded by a
        newer submission, or accepted longer ago than the time limit (history being re-read)."""
        key = _key(completed)
        watch = _Watch(_ms(completed.get("event_time")))
        early = self._early.pop((completed["seller_id"], completed["reference"]), None)
        if early is not None and early[0] in (None, completed["marketplace_id"]) and early[1] >= watch.since:
            watch.notified = True
            watch.wake.set()
        self._watches.setdefault(key, []).append(watch)
        try:
            return await self._observe(completed, watch)
        finally:
            watches = self._watches.get(key, [])
            if watch in watches:
                watches.remove(watch)
            if not watches:
                self._watches.pop(key, None)

    async def _observe(self, completed: dict, watch: _Watch) -> Observation | None:
        policy = self.policy
        account = self.ports.accounts.get(completed["seller_id"])
        if account is None:
            return Observation(AWAITING, "no_credentials", note=f"not checked: no SP-API credentials for seller "
                                                                  f"{completed['seller_id']}")
        call = get_call(completed)
        try:
            base_url = self.ports.endpoints.base_url(completed["marketplace_id"], sandbox=call.sandbox)
        except (UnknownMarketplace, ValueError) as exc:
            return Observation(AWAITING, "refused", note=f"not checked: {exc}")
        # Counted from the acceptance: a backlog of observations must not look forever, and a new
        # consumer group reading old acceptances (the first start) must not look at all of them.
        accepted_ago = max(0.0, (self._wall_ms() - _ms(completed.get("event_time"))) / 1000.0)
        if accepted_ago >= policy.time_limit_s:
            return None
        start = self.ports.clock()
        deadline = start - accepted_ago + policy.time_limit_s
        next_look = start - accepted_ago + policy.first_look_s
        interval = policy.first_look_s
        looks, last_request_id, refreshed = 0, None, False
        while True:
            wait = min(next_look, deadline) - self.ports.clock()
            if wait > 0 and not watch.wake.is_set():
                await self._wait(watch, wait)
            if watch.superseded:
                return None
            by_notification = watch.notified
            watch.notified = False
            watch.wake.clear()
            if looks and self.ports.clock() >= deadline and not by_notification:
                return Observation(
                    AWAITING, "time_limit", looks, last_request_id,
                    note=f"accepted, awaiting Amazon: neither live nor in error {policy.time_limit_s:g} s after "
                         f"acceptance ({looks} getListingsItem calls); Amazon may still decide: see Seller Central")
            answer = await self._look(account, base_url, call)
            looks += 1
            last_request_id = answer.request_id or last_request_id
            if answer.status == 200:
                self.ports.limiter.succeeded(account.seller_id, call.lane, answer.rate_limit)
                verdict = judge(answer.body, completed["reference"], completed["marketplace_id"])
                if verdict is None:
                    return Observation(
                        AWAITING, "sandbox", looks, answer.request_id,
                        note="not checked: the sandbox answered its static example, not this listing; a test run "
                             "cannot show whether Amazon lists an item (a production run can)")
                state, statuses, issues = verdict
                if state is not None:
                    errors = [i for i in issues if i["severity"] == "ERROR"]
                    return Observation(
                        state, "notification" if by_notification else "poll", looks, answer.request_id, statuses,
                        issues, error_code=errors[0]["code"] if errors else None,
                        error_message=errors[0]["message"] if errors else None)
            elif answer.status == 429:
                self.ports.observer.throttled()
                self.ports.limiter.throttled(account.seller_id, call.lane)
            elif answer.status == 403 and not refreshed:
                refreshed = True
                await self.ports.transport.refresh_token(account, answer.token_generation)
                next_look = self.ports.clock()
                continue
            elif answer.status in (400, 404) and answer.rate_limit:
                self.ports.limiter.succeeded(account.seller_id, call.lane, answer.rate_limit)
            # 404 (not visible yet), 429, 5xx, network trouble: look again later.
            next_look = self.ports.clock() + self.ports.rng.uniform(interval / 2, interval)
            interval = min(policy.max_interval_s, interval * 2)

    async def _wait(self, watch: _Watch, seconds: float) -> None:
        """Sleep `seconds`, or less if a notification (or a newer submission) wakes the watch."""
        sleeping = asyncio.ensure_future(self.ports.sleep(seconds))
        woken = asyncio.ensure_future(watch.wake.wait())
        try:
            await asyncio.wait((sleeping, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()

    async def _look(self, account, base_url: str, call: ListingCall) -> Answer:
        """One getListingsItem through the seller's get lane. Never raises for Amazon's or the
        network's behaviour (a failed login is an answer without status)."""
        lane = self.ports.limiter.lane(account.seller_id, call.lane)
        sent = self.ports.clock()
        try:
            await self.ports.transport.prepare(account)
            async with AsyncExitStack() as stack:
                waited, connection = await lane.acquire(
                    lambda: stack.enter_async_context(self.ports.transport.connection(base_url)))
                self.ports.observer.quota_waited(waited)
                sent = self.ports.clock()
                try:
                    answer = await self.ports.transport.send(connection, account, base_url, call)
                finally:
                    lane.answered()
        except LoginFailed as exc:
            answer = Answer(None, failure="login_failed", detail=exc.message)
        self.ports.observer.request(GET, answer.label, self.ports.clock() - sent)
        return answer


def observed_event(completed: dict, observation: Observation) -> dict:
    """The ListingObserved event (schemas/src/catalog_sync/schemas/listing_observed.v1.avsc) of an observation."""
    return {
        **new_header(completed.get("run_id")),
        "mode": completed["mode"],
        "endpoint": completed["endpoint"],
        "source_event_id": completed["event_id"],
        "submitted_at": completed["event_time"],
        "reference": completed["reference"],
        "item_type": completed["item_type"],
        "seller_id": completed["seller_id"],
        "marketplace_id": completed["marketplace_id"],
        "listing_state": observation.state,
        "status": observation.status,
        "amazon_statuses": list(observation.amazon_statuses),
        "request_id": observation.request_id,
        "submission_request_id": completed.get("request_id"),
        "submission_id": completed.get("submission_id"),
        "issues": observation.issues,
        "error_code": observation.error_code,
        "error_message": observation.error_message,
        "looks": observation.looks,
        "ended_by": observation.ended_by,
        "note": observation.note,
    }


def _key(completed: dict) -> str:
    return item_key(completed["seller_id"], completed["marketplace_id"], completed["reference"])


def _ms(value) -> int:
    """An event time (datetime from the codec, or epoch ms) as epoch milliseconds."""
    if value is None:
        return 0
    if isinstance(value, int | float):
        return int(value)
    return int(value.timestamp() * 1000)
