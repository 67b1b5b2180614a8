"""The validator's domain core: one catalog change in, every problem with it out.

Pure apart from the schema cache: no Kafka, no HTTP (an Amazon schema source is passed in by the
wiring through `ProductTypeSchemas`). The change is a CatalogItemChanged payload: the fields of
interfaces.md §1 with `attributes_json` holding the attributes as JSON text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from catalog_sync.runtime.contract import MAX_ATTRIBUTE_DEPTH, depth_exceeds

from .issues import ValidationIssue, finalize
from .rules import identifier_issues, marketplace_issues, reference_issues, seller_issue, variant_issues
from .schema_sources import ProductTypeSchemas, SchemaUnavailable


@dataclass(frozen=True, slots=True)
class Verdict:
    issues: list[ValidationIssue]
    attributes: dict  # parsed attributes ({} when they could not be read)

    @property
    def valid(self) -> bool:
        return not self.issues


class ItemValidator:
    def __init__(self, schemas: ProductTypeSchemas):
        self.schemas = schemas

    def validate(self, change: Mapping, *, seller_id: str | None) -> Verdict:
        """All issues of `change`, deterministic order. `seller_id` is the effective seller (the
        change's own or the configured default)."""
        reference = change.get("reference") or ""
        item_type = change["item_type"]
        operation = change["operation"]
        marketplace_id = change.get("marketplace_id") or ""
        issues = reference_issues(reference, item_type)
        if not seller_id:
            issues.append(seller_issue())
        attributes, unreadable = _parse_attributes(change.get("attributes_json"))
        if unreadable:
            issues.append(unreadable)
        # deleteListingsItem takes only the SKU and the marketplace: nothing else to check.
        if operation == "delete":
            return Verdict(finalize(issues), attributes)

        product_type = change.get("product_type")
        requirements = change["requirements"]
        if not product_type:
            what = "the Amazon product type it maps to" if item_type == "category" else "the Amazon product type"
            issues.append(ValidationIssue("product_type.required", f"product_type is required: {what}", "/product_type"))
            return Verdict(finalize(issues), attributes)
        try:
            resolved = self.schemas.get(product_type, marketplace_id, requirements)
        except SchemaUnavailable as exc:
            issues.append(exc.issue())
            resolved = None
        # A category never reaches Amazon: a known product type is all it needs.
        if item_type == "category":
            return Verdict(finalize(issues), attributes)

        known_attributes: frozenset[str] = frozenset()
        if resolved is not None and not unreadable:
            known_attributes = resolved.compiled.attribute_names
            issues.extend(resolved.compiled.validate(attributes, enforce_required=resolved.enforce_required))
        raw = change.get("attributes_json")
        issues.extend(marketplace_issues(attributes, marketplace_id, raw if type(raw) is str else None))
        issues.extend(identifier_issues(attributes))
        if item_type == "variant":
            # An offer-only update carries sales terms, not the relationship facts.
            relationship = known_attributes if requirements != "LISTING_OFFER_ONLY" else frozenset()
            reported = {i.path for i in issues if i.code == "schema.required"}
            issues.extend(variant_issues(reference, change.get("parent_reference"), attributes, relationship, reported))
        return Verdict(finalize(issues), attributes)


def _parse_attributes(raw: str | dict | None) -> tuple[dict, ValidationIssue | None]:
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, dict):
        attributes = raw
    else:
        try:
            attributes = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return {}, ValidationIssue("attributes.not_json", f"the attributes are not valid JSON: {exc}", "/attributes")
        if not isinstance(attributes, dict):
            return {}, ValidationIssue("attributes.not_object", "the attributes must be a JSON object of attribute names",
                                       "/attributes")
    # The schema validator and the encoders recurse: deep garbage must become an issue, not a crash.
    # Counting brackets (C speed) spares the walk for nearly every item.
    openers = raw.count("{") + raw.count("[") if isinstance(raw, str) else MAX_ATTRIBUTE_DEPTH + 1
    if openers > MAX_ATTRIBUTE_DEPTH and depth_exceeds(attributes, MAX_ATTRIBUTE_DEPTH):
        return {}, ValidationIssue("attributes.too_deep",
                                   f"the attributes nest more than {MAX_ATTRIBUTE_DEPTH} levels deep", "/attributes")
    return attributes, None
