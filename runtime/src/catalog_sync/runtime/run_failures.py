"""Why an item failed in a run, remembered per (run, seller, marketplace, reference) up to a bound:
the validator and the submitter hold back the variants of a parent that failed in the same run."""

from __future__ import annotations

from collections import OrderedDict


class RunFailures:
    """Failure reasons keyed (run_id, seller_id, marketplace_id, reference); oldest forgotten first."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._reasons: OrderedDict[tuple, str] = OrderedDict()

    def record(self, key: tuple, reason: str | None) -> None:
        """Remember why the item failed, or (reason None) forget an earlier failure."""
        if reason is None:
            self._reasons.pop(key, None)
            return
        self._reasons[key] = reason
        self._reasons.move_to_end(key)
        if len(self._reasons) > self._limit:
            self._reasons.popitem(last=False)

    def reason(self, key: tuple) -> str | None:
        return self._reasons.get(key)
