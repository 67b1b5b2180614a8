"""Variation families within a run, at the submitter: a variant waits for its parent's submission
(Submitter.in_turn) and is not sent when Amazon did not accept that parent in the same run; the
variant's outcome names the parent and why. Ready events are keyed by seller and published
parents first, so the submitter owning a seller sees a parent before its variants."""

from __future__ import annotations

from collections import OrderedDict

from catalog_sync.submitter.outcomes import SubmissionResult


class ParentOutcomes:
    """Failed product submissions per run, remembered up to `limit` (oldest forgotten first)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._failed: OrderedDict[tuple, str] = OrderedDict()

    @staticmethod
    def _key(ready: dict, reference: str) -> tuple:
        return ready.get("run_id"), ready["seller_id"], ready["marketplace_id"], reference

    def record(self, ready: dict, result: SubmissionResult) -> None:
        """After a product's upsert: remember why Amazon did not take it, or forget an earlier failure."""
        key = self._key(ready, ready["reference"])
        if result.status != "error":
            self._failed.pop(key, None)
            return
        self._failed[key] = f"{result.error_code or result.outcome}: {result.error_message or 'no message'}"
        self._failed.move_to_end(key)
        if len(self._failed) > self._limit:
            self._failed.popitem(last=False)

    def refusal(self, ready: dict) -> SubmissionResult | None:
        """The outcome of a variant upsert whose parent Amazon did not accept in this run, else None."""
        parent = ready.get("parent_reference")
        reason = parent and self._failed.get(self._key(ready, parent))
        if not reason:
            return None
        return SubmissionResult("failed", error_code="parent_not_accepted",
                                error_message=f"not sent: its parent {parent} was not accepted by Amazon in this "
                                              f"run ({reason}); fix the parent and publish both again")
