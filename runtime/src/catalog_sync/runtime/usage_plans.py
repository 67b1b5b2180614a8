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
