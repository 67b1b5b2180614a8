"""What one SP-API answer means for the submission, and how long to wait before trying again.

Amazon's rules (spapi-facts.md): a 200 is final whatever its body says (ACCEPTED, VALID or
INVALID); 429, 500, 502, 503, 504, timeouts and connection errors are worth retrying with
exponential backoff and jitter; 400, 404, 413, 415 are final as they are; a 403 deserves one
token refresh, then is final."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Answer:
    """One attempt as the transport saw it. `status` None: no HTTP answer (`failure` says why:
    timeout | connection_error | undecodable_response)."""

    status: int | None
    request_id: str | None = None
    body: dict | None = None
    rate_limit: str | None = None
    failure: str | None = None
    detail: str = ""
    token_generation: int | None = None  # which cached access token the attempt carried

    @property
    def label(self) -> str:
        """Metric label: the HTTP status, or the kind of failure."""
        return str(self.status) if self.status is not None else (self.failure or "error")


class Decision(Enum):
    DONE = "done"  # HTTP 200: Amazon decided (ACCEPTED / VALID / INVALID)
    RETRY = "retry"
    THROTTLED = "throttled"  # 429: slow the seller's lane down, then retry
    REFRESH_TOKEN = "refresh_token"  # first 403: new access token, then retry once
    FINAL = "final"  # an HTTP error retrying cannot fix


def classify(answer: Answer, *, token_refreshed: bool) -> Decision:
    status = answer.status
    if status is None:
        return Decision.RETRY
    if status == 200:
        return Decision.DONE
    if status == 429:
        return Decision.THROTTLED
    if status in RETRYABLE_STATUSES:
        return Decision.RETRY
    if status == 403 and not token_refreshed:
        return Decision.REFRESH_TOKEN
    return Decision.FINAL


def first_error(body: dict | None) -> tuple[str | None, str | None]:
    """Amazon's `{"errors": [{"code", "message", "details"}]}` -> (code, message), leniently."""
    errors = (body or {}).get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        error = errors[0]
        message = error.get("message")
        details = error.get("details")
        if details and details != message:
            message = f"{message} ({details})" if message else details
        return (str(error["code"]) if error.get("code") is not None else None), (str(message) if message else None)
    return None, None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded in attempts AND in total time; exponential backoff with "equal jitter" (half fixed,
    half random: a real pause after each failure, yet
    the retries of many items do not come back in one storm)."""

    max_attempts: int = 6
    max_elapsed_s: float = 120.0
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Wait before attempt `attempt + 1`, after `attempt` attempts failed (attempt >= 1)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return rng.uniform(ceiling / 2, ceiling)

    def allows(self, attempts_made: int, elapsed_s: float, next_delay_s: float) -> bool:
        return attempts_made < self.max_attempts and elapsed_s + next_delay_s <= self.max_elapsed_s
