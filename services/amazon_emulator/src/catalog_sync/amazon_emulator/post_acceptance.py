"""What happens to a listing after Amazon ACCEPTED it, scripted per SKU.

Amazon's ACCEPTED only queues a submission: for a while getListingsItem shows the listing with no
status (neither BUYABLE nor DISCOVERABLE), and issues can appear later (spapi-facts.md). By default
the emulator's listings are processed at once; a fate makes one SKU take `live_after_s` seconds to
go live, or develop `issues` `issues_after_s` seconds after acceptance (an ERROR issue suppresses
the listing: no status; until then it has none either, unless `live_after_s` says it goes live
first). Set through `Emulator.after_acceptance` or POST /_emulator/after-acceptance."""

from __future__ import annotations

from dataclasses import dataclass

# Amazon's words for a listing its catalog team turns down after accepting it (issue 8541,
# spapi-facts.md "Issue codes seen in the wild").
CATALOG_CONFLICT = {
    "code": "8541",
    "message": "The product data you provided conflicts with the Amazon catalog. Review the listing and "
               "correct the attributes that differ.",
    "severity": "ERROR",
    "attributeNames": [],
    "categories": [],
    "enforcements": {"actions": [{"action": "LISTING_SUPPRESSED"}], "exemption": {"status": "NOT_EXEMPT"}},
}


@dataclass(frozen=True, slots=True)
class Fate:
    live_after_s: float = 0.0              # no status before this many seconds after acceptance
    issues_after_s: float | None = None    # issues appear this many seconds after acceptance
    issues: tuple = (CATALOG_CONFLICT,)

    def view(self, accepted_at: float, now: float, status: list[str]) -> tuple[list[str], tuple]:
        """(summaries status, issues) of a listing accepted at `accepted_at` and read at `now`."""
        elapsed = now - accepted_at
        if self.issues_after_s is not None and elapsed >= self.issues_after_s:
            errors = any(i.get("severity") == "ERROR" for i in self.issues)
            return ([] if errors else status), self.issues
        if elapsed < self.live_after_s:
            return [], ()
        return status, ()


def fate_from_json(args: dict) -> tuple[str, str | None, Fate]:
    """(sku, seller_id, fate) from the control endpoint's JSON."""
    sku = args.get("sku")
    if not isinstance(sku, str) or not sku:
        raise ValueError("after-acceptance needs a sku")
    issues = args.get("issues")
    if issues is not None and not (isinstance(issues, list) and all(isinstance(i, dict) for i in issues)):
        raise ValueError("issues must be a list of Amazon issue objects")
    after = args.get("issues_after_s")
    live = args.get("live_after_s")
    if live is None:  # a listing heading for issues is still being processed until they show
        live = 0.0 if after is None else float("inf")
    fate = Fate(live_after_s=float(live),
                issues_after_s=float(after) if after is not None else None,
                issues=tuple(issues) if issues else (CATALOG_CONFLICT,))
    return sku, args.get("seller_id"), fate
