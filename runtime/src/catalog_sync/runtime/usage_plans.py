"""Amazon's SP-API usage plans: the rate and burst of each operation lane, per (selling partner,
application). The submitter never sends faster; the emulator enforces the same plans."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UsagePlan:
    rate: float  # requests per second
    burst: int


# Listings Items API 2021-08-01 (the model's "Usage Plan" tables); VALIDATION_PREVIEW has its own,
# much lower plan.
LISTINGS_ITEMS_PLANS: dict[str, UsagePlan] = {
    "put": UsagePlan(5.0, 10),
    "patch": UsagePlan(5.0, 5),
    "delete": UsagePlan(5.0, 5),
    "get": UsagePlan(5.0, 10),
    "preview": UsagePlan(1.0, 1),
}

# Feeds API 2021-06-30 (the bulk lane), one lane per operation. createFeed: five submissions per five
# minutes and region since May 2025 (the model's table still says 0.0083/s, burst 15).
FEEDS_PLANS: dict[str, UsagePlan] = {
    "createFeedDocument": UsagePlan(0.5, 15),
    "createFeed": UsagePlan(5 / 300, 5),
    "getFeed": UsagePlan(2.0, 15),
    "getFeeds": UsagePlan(0.0222, 10),
    "cancelFeed": UsagePlan(2.0, 15),
    "getFeedDocument": UsagePlan(0.0222, 10),
}

AMAZON_PLANS: dict[str, UsagePlan] = {**LISTINGS_ITEMS_PLANS, **FEEDS_PLANS}
