"""Token buckets and per-(seller, lane) gates on a fake clock."""

import asyncio

import pytest
from submitter_fakes import FakeClock

from catalog_sync.amazon_emulator.quota import admitted_by_plan
from catalog_sync.runtime.usage_plans import UsagePlan
from catalog_sync.submitter.rate import (
    JITTER_RESERVE_TOKENS,
    AdaptiveRate,
    RateLimiter,
    TokenBucket,
    parse_rate_limit,
)


def test_bucket_allows_its_capacity_at_once_then_one_token_per_interval():
    bucket = TokenBucket(rate=5.0, capacity=9, now=0.0)
    assert [bucket.try_take(0.0) for _ in range(9)] == [0.0] * 9
    assert bucket.try_take(0.0) == pytest.approx(0.2)
    assert bucket.try_take(0.1) == pytest.approx(0.1)
    assert bucket.try_take(0.2) == 0.0


def test_bucket_never_holds_more_than_its_capacity():
    bucket = TokenBucket(rate=5.0, capacity=3, now=0.0)
    for _ in range(3):
        bucket.try_take(0.0)
    taken = sum(1 for _ in range(10) if bucket.try_take(100.0) == 0.0)
    assert taken == 3


def test_client_keeps_tokens_of_the_burst_in_reserve_and_runs_single_token_lanes_under_plan():
    put = AdaptiveRate(UsagePlan(5.0, 10), now=0.0)
    assert (put.bucket.capacity, put.rate) == (10 - JITTER_RESERVE_TOKENS, 5.0) == (8, 5.0)
    preview = AdaptiveRate(UsagePlan(1.0, 1), now=0.0)
    assert preview.bucket.capacity == 1 and preview.rate < 1.0


def test_throttle_halves_the_rate_empties_the_bucket_and_recovery_stops_at_the_plan():
    rate = AdaptiveRate(UsagePlan(5.0, 10), now=0.0)
    rate.on_throttled(0.0)
    assert rate.rate == pytest.approx(2.5)
    assert rate.bucket.try_take(0.0) == pytest.approx(0.4)  # nothing in reserve after a 429
    rate.on_success(0.5)  # within the cool-down: no recovery yet
    assert rate.rate == pytest.approx(2.5)
    for i in range(100):
        rate.on_success(2.0 + i)
    assert rate.rate == pytest.approx(5.0)


def test_repeated_throttles_do_not_stop_the_seller_entirely():
    rate = AdaptiveRate(UsagePlan(5.0, 10), now=0.0)
    for _ in range(50):
        rate.on_throttled(0.0)
    assert rate.rate == pytest.approx(0.25)


def test_rate_limit_header_lowers_and_raises_the_ceiling():
    rate = AdaptiveRate(UsagePlan(5.0, 10), now=0.0)
    rate.on_limit_header(2.0, 0.0)
    assert rate.rate == pytest.approx(2.0)
    rate.on_limit_header(10.0, 1.0)
    assert rate.rate == pytest.approx(10.0)
    assert parse_rate_limit("5.0") == 5.0
    assert parse_rate_limit("garbage") is None and parse_rate_limit(None) is None and parse_rate_limit("0") is None


def _drive(limiter: RateLimiter, clock: FakeClock, seller: str, lane: str, count: int) -> list[float]:
    sent = []

    async def one():
        await limiter.lane(seller, lane).acquire()
        limiter.lane(seller, lane).answered()  # answered at once
        sent.append(clock.now)

    async def main():
        await asyncio.gather(*(one() for _ in range(count)))

    asyncio.run(main())
    return sent


def test_a_lane_sends_at_the_plan_rate_in_arrival_order():
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    sent = _drive(limiter, clock, "S1", "put", 48)
    assert sent[:8] == [0.0] * 8
    assert sent[-1] == pytest.approx(8.0)  # 40 more at 5/s
    # Never more than the plan in any 1-second window after the burst.
    for i in range(8, len(sent) - 5):
        assert sent[i + 5] - sent[i] >= 1.0 - 1e-9


def test_lanes_and_sellers_have_separate_buckets():
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert _drive(limiter, clock, "S1", "put", 8) == [0.0] * 8
    assert _drive(limiter, clock, "S2", "put", 8) == [0.0] * 8
    assert _drive(limiter, clock, "S1", "delete", 3) == [0.0] * 3  # burst 5 less the reserve
    assert _drive(limiter, clock, "S1", "preview", 2)[1] == pytest.approx(1 / 0.98)


def test_accounts_file_overrides_a_sellers_plan():
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(overrides={"BIG": {"put": UsagePlan(20.0, 40)}}, clock=clock, sleep=clock.sleep)
    sent = _drive(limiter, clock, "BIG", "put", 78)
    assert sent[-1] == pytest.approx(2.0)  # 38 immediately, 40 more at 20/s


def test_tokens_are_spent_when_the_connection_is_in_hand_so_queueing_cannot_bunch_requests():
    # Requests that wait for a connection after the gate must still leave at the plan's pace:
    # Amazon's bucket does not keep refills while full, so bunched late requests would get 429.
    import random

    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    rng = random.Random(1)
    sent = []

    async def connection():
        await clock.sleep(rng.uniform(0.0, 0.6))  # a busy connection pool
        return "connection"

    async def one():
        _, conn = await limiter.lane("S1", "put").acquire(connection)
        assert conn == "connection"
        limiter.lane("S1", "put").answered()
        sent.append(clock.now)

    async def main():
        await asyncio.gather(*(one() for _ in range(40)))

    asyncio.run(main())
    assert admitted_by_plan(sent, UsagePlan(5.0, 10))  # Amazon's bucket: 5/s, burst 10


def test_refills_start_when_the_opening_burst_is_answered_so_a_late_burst_cannot_be_overtaken():
    # A congested start: the 8 opening requests leave at 0 s but are answered (so may reach
    # Amazon) only after 1.5 s. Refilling from 0 s would send requests 9-15 by 1.4 s, right
    # behind the burst's arrival: Amazon's bucket (10) would be empty.
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    lane = limiter.lane("S1", "put")
    sent, answered_at = [], []

    async def request():
        await lane.acquire()
        sent.append(clock.now)
        if len(sent) > 8:
            lane.answered()  # later requests are answered at once

    async def late_answers_to_the_burst():
        while len(sent) < 8 or clock.now < 1.5:
            await asyncio.sleep(0)  # the waiting lane moves the fake clock
        answered_at.append(clock.now)
        for _ in range(8):
            lane.answered()

    async def main():
        await asyncio.gather(late_answers_to_the_burst(), *(request() for _ in range(14)))

    asyncio.run(main())
    assert sent[:8] == [0.0] * 8
    burst_answered = answered_at[0]
    assert burst_answered >= 1.5
    assert sent[8] == pytest.approx(burst_answered + 0.2)  # one interval after the burst is known to be in
    assert sent[-1] == pytest.approx(sent[8] + 5 * 0.2)
    # Amazon's bucket, the burst arriving as late as its answers: never below one token.
    assert admitted_by_plan([burst_answered] * 8 + sent[8:], UsagePlan(5.0, 10))


def test_a_slow_lane_keeps_only_a_sliver_of_its_burst_in_reserve():
    from catalog_sync.submitter.rate import DEFAULT_PLANS, AdaptiveRate

    create_feed = AdaptiveRate(DEFAULT_PLANS["createFeed"], 0.0)  # five feeds per five minutes
    assert 4.99 < create_feed.bucket.capacity < 5.0  # four at once, the fifth 0.4 s later
    assert AdaptiveRate(DEFAULT_PLANS["put"], 0.0).bucket.capacity == 8  # 5/s: two tokens cover 400 ms
