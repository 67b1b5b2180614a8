"""A variant whose parent failed validation in the same run fails too, naming the parent."""

from catalog_sync.validator.families import FailedParents
from catalog_sync.validator.issues import ValidationIssue


def event(reference, run="run-1", parent=None):
    return {"run_id": run, "marketplace_id": "M", "reference": reference, "parent_reference": parent}


def test_a_failed_parent_fails_its_variants_in_its_run_only_until_it_passes():
    parents = FailedParents(limit=2)
    parents.record(event("P-1"), "S", [ValidationIssue("schema.required", "'brand' is required", "/attributes/brand")])
    issue = parents.issue_for(event("P-1-A", parent="P-1"), "S")
    assert issue.code == "variant.parent_failed" and "P-1" in issue.message and "'brand' is required" in issue.message
    assert parents.issue_for(event("P-1-A", run="run-2", parent="P-1"), "S") is None
    assert parents.issue_for(event("P-1-A", parent="P-1"), "OTHER-SELLER") is None
    parents.record(event("P-1"), "S", [])
    assert parents.issue_for(event("P-1-A", parent="P-1"), "S") is None


def test_memory_is_bounded():
    parents = FailedParents(limit=2)
    for n in range(3):
        parents.record(event(f"P-{n}"), "S", [ValidationIssue("x", "bad", "/x")])
    assert parents.issue_for(event("A", parent="P-0"), "S") is None
    assert parents.issue_for(event("A", parent="P-2"), "S") is not None
