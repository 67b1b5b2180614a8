"""Amazon's usage plans as the emulator enforces them: one token bucket per
(selling partner, application, operation lane), answering 429 QuotaExceeded when empty."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from catalog_sync.runtime.amazon_time import ScaledClock
from catalog_sync.runtime.usage_plans import AMAZON_PLANS, UsagePlan

__all__ = ["DEFAULT_PLANS", "Quotas", "ScaledClock", "UsagePlan", "admitted_by_plan", "parse_plan"]

# The plans the emulator enforces unless told otherwise (--plan).
DEFAULT_PLANS: dict[str, UsagePlan] = AMAZON_PLANS


def parse_plan(text: str) -> tuple[str, UsagePlan]:
    """`put=5:10` -> ("put", UsagePlan(5.0, 10)); the form of the --plan flag (a Feeds operation
    is its own lane: `createFeed=0.0167:5`)."""
    try:
        lane, values = text.split("=", 1)
        rate, _, burst = values.partition(":")
        plan = UsagePlan(float(rate), int(burst) if burst else max(1, int(float(rate))))
    except ValueError as exc:
        raise ValueError(f"bad usage plan {text!r}: expected LANE=RATE[:BURST], e.g. put=5:10") from exc
    if lane not in DEFAULT_PLANS:
        raise ValueError(f"bad usage plan {text!r}: lane must be one of {', '.join(DEFAULT_PLANS)}")
    if plan.rate <= 0 or plan.burst < 1:
        raise ValueError(f"bad usage plan {text!r}: rate must be > 0 and burst >= 1")
    return lane, plan


def admitted_by_plan(arrivals: list[float], plan: UsagePlan) -> bool:
    """Would a full bucket of `plan` (Amazon's) have admitted requests arriving at these times?
    How tests and benchmarks check a client against the plan from the emulator's request log."""
    tokens, last = float(plan.burst), None
    for t in sorted(arrivals):
        if last is not None:
            tokens = min(plan.burst, tokens + (t - last) * plan.rate)
        last = t
        if tokens < 1.0 - 1e-6:
            return False
        tokens -= 1.0
    return True


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class Quotas:
    def __init__(
        self,
        plans: Mapping[str, UsagePlan] | None = None,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plans = {**DEFAULT_PLANS, **(plans or {})}
        self.enabled = enabled
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def take(self, seller_id: str, application: str, lane: str) -> bool:
        """Spend one request of the plan; False means answer 429."""
        if not self.enabled:
            return True
        plan = self.plans[lane]
        now = self._clock()
        key = (seller_id, application, lane)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(plan.burst), now)
        else:
            bucket.tokens = min(float(plan.burst), bucket.tokens + (now - bucket.stamp) * plan.rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0 - 1e-9:  # float dust is not a reason to throttle
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return True
        return False

    def reset(self) -> None:
        self._buckets.clear()
