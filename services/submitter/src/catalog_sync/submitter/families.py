"""Variation families within a run, at the submitter: a variant waits for its parent's submission
(Submitter.in_turn) and is not sent when Amazon did not accept that parent in the same run; the
variant's outcome names the parent and why. Ready events are keyed by seller and published
parents first, so the submitter owning a seller sees a parent before its variants."""

from __future__ import annotations

from catalog_sync.runtime.run_failures import RunFailures
from catalog_sync.submitter.outcomes import SubmissionResult


class ParentOutcomes:
    """Failed product submissions per run (bounded: runtime.run_failures)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._failed = RunFailures(limit)

    @staticmethod
    def _key(ready: dict, reference: str) -> tuple:
        return ready.get("run_id"), ready["seller_id"], ready["marketplace_id"], reference

    def record(self, ready: dict, result: SubmissionResult) -> None:
        """After a product's upsert: remember why Amazon did not take it, or forget an earlier failure."""
        reason = None
        if result.status == "error":
            reason = f"{result.error_code or result.outcome}: {result.error_message or 'no message'}"
        self._failed.record(self._key(ready, ready["reference"]), reason)

    def refusal(self, ready: dict) -> SubmissionResult | None:
        """The outcome of a variant upsert whose parent Amazon did not accept in this run, else None."""
        parent = ready.get("parent_reference")
        reason = parent and self._failed.reason(self._key(ready, parent))
        if not reason:
            return None
        return SubmissionResult("failed", error_code="parent_not_accepted",
                                error_message=f"not sent: its parent {parent} was not accepted by Amazon in this "
                                              f"run ({reason}); fix the parent and publish both again")
