"""Variation families within a run: a variant whose parent product failed validation in the same
run fails too, naming the parent and why, instead of reaching Amazon under a parent Amazon never
got. Catalog changes are keyed by family (runtime.events.family_key) and published parents first,
so the validator that owns a family sees the parent just before its variants."""

from __future__ import annotations

from catalog_sync.runtime.run_failures import RunFailures

from .issues import ValidationIssue


class FailedParents:
    """Products that failed validation, per run (bounded: runtime.run_failures)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._failed = RunFailures(limit)

    def record(self, event: dict, seller_id: str | None, issues: list[ValidationIssue]) -> None:
        """After validating a product's upsert: remember why it failed, or forget an earlier failure."""
        reason = None
        if issues:
            more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
            reason = f"{issues[0].code}: {issues[0].message}{more}"
        self._failed.record((event.get("run_id"), seller_id, event["marketplace_id"], event["reference"]), reason)

    def issue_for(self, event: dict, seller_id: str | None) -> ValidationIssue | None:
        """The issue of a variant upsert whose parent failed in this run, else None."""
        parent = event.get("parent_reference")
        reason = parent and self._failed.reason((event.get("run_id"), seller_id, event["marketplace_id"], parent))
        if not reason:
            return None
        return ValidationIssue("variant.parent_failed", f"not sent: its parent {parent} failed validation in "
                               f"this run ({reason}); fix the parent and publish both again", "/parent_reference")
