"""Client-side usage plans: one token bucket per (seller, lane) that never sends faster than
Amazon's plan, slows down on 429 and follows `x-amzn-RateLimit-Limit`.

Pure: time comes from an injected clock and waiting from an injected sleep, so tests drive it
with a fake clock. Each (seller, lane) has its own FIFO gate, so a throttled seller only ever
delays its own requests.

Why the client keeps tokens of Amazon's burst in reserve (JITTER_RESERVE_TOKENS): Amazon's
bucket starts full when our first request arrives, and jitter can make a request arrive a
little earlier than its token exists on Amazon's side. Each reserved token gives every request
one refill interval (200 ms at 5/s) of tolerance at the full steady rate. Lanes with a burst of 1
cannot spare a token, so they run 2 % under the plan instead.

Why a lane's bucket refills only once its opening burst is answered: requests leave together
at the start, when this process (and Amazon's edge) is busiest, and can reach Amazon up to a
second apart. Amazon counts from their arrival; refilling from their departure would let the
following requests overtake that late arrival and go over plan (docs/performance.md). Until
every opening request has an answer, the bucket does not refill: the next request leaves one
interval after the burst is known to have arrived.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

from catalog_sync.runtime.usage_plans import AMAZON_PLANS, UsagePlan

# Amazon's plans, the client's ceilings unless a seller's account overrides them.
DEFAULT_PLANS: dict[str, UsagePlan] = AMAZON_PLANS
LANES = tuple(DEFAULT_PLANS)

SLOWDOWN_FACTOR = 0.5  # multiplicative decrease on 429
MIN_RATE_FRACTION = 0.05  # never below 5 % of the plan (0.25 req/s for put)
RECOVERY_FRACTION = 0.05  # each success gives back 5 % of the ceiling
THROTTLE_COOLDOWN_S = 1.0  # no recovery for a second after a 429
SINGLE_TOKEN_RATE_MARGIN = 0.98
# Tokens of Amazon's burst the client never uses: each gives one refill interval (200 ms at 5/s)
# of tolerance for requests that reach Amazon bunched (scheduling, network). Costs only the start
# of a backlog (8 immediate calls instead of 10), never the steady rate.
JITTER_RESERVE_TOKENS = 2
# ... at most what covers this much jitter: a lane refilling once a minute (createFeed) needs a
# sliver of a token for 400 ms, not two of its five feeds.
JITTER_TOLERANCE_S = 0.4


class TokenBucket:
    """A classic token bucket over an injected notion of time (all methods take `now`)."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def try_take(self, now: float) -> float:
        """Take a token and return 0.0, or return the seconds until one will be there."""
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:  # float dust must not turn into an endless wait of 1e-17 s
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def wait_time(self, now: float) -> float:
        """Seconds until a token is there (0.0: now), without taking it."""
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)  # tokens earned so far were earned at the old rate
        self.rate = rate

    def drain(self, now: float) -> None:
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)

    def hold(self, now: float) -> None:
        """Earn nothing for the time up to `now`."""
        self.stamp = max(self.stamp, now)


class AdaptiveRate:
    """The bucket of one (seller, lane) plus its AIMD policy: halve on 429, give back a little
    on each success, never above the ceiling (the plan, or what Amazon's header says)."""

    def __init__(self, plan: UsagePlan, now: float) -> None:
        self.plan = plan
        self.ceiling = plan.rate
        self._quiet_until = now
        self.bucket = TokenBucket(self._client_rate(plan.rate), self._capacity(plan.burst, plan.rate), now)

    @staticmethod
    def _capacity(burst: int, rate: float) -> float:
        reserve = min(float(JITTER_RESERVE_TOKENS), JITTER_TOLERANCE_S * rate)
        return max(1.0, burst - reserve) if burst >= 2 else 1.0

    def _client_rate(self, rate: float) -> float:
        return rate * SINGLE_TOKEN_RATE_MARGIN if self.plan.burst < 2 else rate

    @property
    def rate(self) -> float:
        return self.bucket.rate

    def on_throttled(self, now: float) -> None:
        floor = self._client_rate(self.ceiling * MIN_RATE_FRACTION)
        self.bucket.set_rate(max(floor, self.bucket.rate * SLOWDOWN_FACTOR), now)
        self.bucket.drain(now)  # Amazon's bucket is empty: so is ours
        self._quiet_until = now + THROTTLE_COOLDOWN_S

    def on_success(self, now: float) -> None:
        target = self._client_rate(self.ceiling)
        if self.bucket.rate < target and now >= self._quiet_until:
            self.bucket.set_rate(min(target, self.bucket.rate + self.ceiling * RECOVERY_FRACTION), now)

    def on_limit_header(self, limit: float, now: float) -> None:
        """`x-amzn-RateLimit-Limit`: the rate Amazon applied to this call."""
        if limit <= 0 or abs(limit - self.ceiling) < 1e-9:
            return
        at_ceiling = self.bucket.rate >= self._client_rate(self.ceiling) - 1e-9
        self.ceiling = limit
        if at_ceiling or self.bucket.rate > self._client_rate(limit):
            self.bucket.set_rate(self._client_rate(limit), now)


def parse_rate_limit(value: str | None) -> float | None:
    """`x-amzn-RateLimit-Limit: 5.0` -> 5.0; absent or garbage -> None (it is best-effort)."""
    if not value:
        return None
    try:
        limit = float(value)
    except ValueError:
        return None
    return limit if limit > 0 else None


class Lane:
    """FIFO gate in front of one AdaptiveRate: requests leave in arrival order at the plan's pace.
    Callers report every request that left with `answered()` (see the module doc: the opening
    burst)."""

    def __init__(self, rate: AdaptiveRate, clock: Callable[[], float], sleep: Callable[[float], Awaitable]) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._gate = asyncio.Lock()  # asyncio.Lock wakes waiters in FIFO order
        self.waiting = 0
        self._opening = True  # no answer yet to every request that left
        self._opening_unanswered = 0

    async def acquire(self, before_take: Callable[[], Awaitable] | None = None) -> tuple[float, object]:
        """Wait for a token; returns (seconds waited, what `before_take` returned).

        `before_take` (e.g. checking out an HTTP connection) runs once a token is there and
        before it is spent: the token is spent when the request can really leave. Spending it
        earlier and then queueing for a connection would let requests bunch up and reach Amazon
        faster than the plan (its bucket does not keep the refills it got while full)."""
        started = self._clock()
        self.waiting += 1
        try:
            async with self._gate:
                resource = None
                fetched = before_take is None
                while True:
                    now = self._clock()
                    if self._opening:
                        self.rate.bucket.hold(now)
                    delay = self.rate.bucket.wait_time(now)
                    if delay <= 0.0:
                        if not fetched and before_take is not None:
                            resource = await before_take()
                            fetched = True
                            continue  # time passed; a 429 meanwhile may have emptied the bucket
                        self.rate.bucket.try_take(self._clock())
                        if self._opening:
                            self._opening_unanswered += 1
                        return self._clock() - started, resource
                    await self._sleep(delay)
        finally:
            self.waiting -= 1

    def answered(self) -> None:
        """A request that left through `acquire` has its answer (or failed for good)."""
        if self._opening and self._opening_unanswered > 0:
            self._opening_unanswered -= 1
            if self._opening_unanswered == 0:
                self._opening = False
                self.rate.bucket.hold(self._clock())  # refills count from the burst's last answer


class RateLimiter:
    """All (seller, lane) gates of one process. `overrides` maps seller -> lane -> plan (from the
    accounts file) for sellers whose usage plans differ from the defaults."""

    def __init__(
        self,
        plans: Mapping[str, UsagePlan] | None = None,
        overrides: Mapping[str, Mapping[str, UsagePlan]] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable] = asyncio.sleep,
    ) -> None:
        self.plans = {**DEFAULT_PLANS, **(plans or {})}
        self.overrides = {s: dict(p) for s, p in (overrides or {}).items()}
        self.clock = clock
        self._sleep = sleep
        self._lanes: dict[tuple[str, str], Lane] = {}

    def lane(self, seller_id: str, lane: str) -> Lane:
        key = (seller_id, lane)
        found = self._lanes.get(key)
        if found is None:
            plan = self.overrides.get(seller_id, {}).get(lane) or self.plans[lane]
            found = self._lanes[key] = Lane(AdaptiveRate(plan, self.clock()), self.clock, self._sleep)
        return found

    def throttled(self, seller_id: str, lane: str) -> None:
        self.lane(seller_id, lane).rate.on_throttled(self.clock())

    def succeeded(self, seller_id: str, lane: str, limit_header: str | None) -> None:
        rate = self.lane(seller_id, lane).rate
        now = self.clock()
        limit = parse_rate_limit(limit_header)
        if limit is not None:
            rate.on_limit_header(limit, now)
        rate.on_success(now)
