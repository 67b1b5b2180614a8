"""Rules a product type schema cannot express, checked on every item.

Each function returns the issues it finds (empty when the item passes), so the validator reports
all of them together with the schema's.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from .identifiers import identifier_problem
from .issues import ValidationIssue, attribute_pointer, location, pointer, quote

# Amazon's seller SKU limit (putListingsItem path parameter).
SKU_MAX_CHARS = 40
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
IDENTIFIER_ATTRIBUTE = "externally_assigned_product_identifier"

# Variation theme tokens whose attribute name is not the token itself in lower case
# (SIZE_NAME → size is found by dropping the suffix; these are not).
_THEME_ALIASES = {"MODEL": ("model_number", "model_name"), "MODEL_NUMBER": ("model_number",),
                  "COLOR_NAME": ("color",), "NUMBER_OF_ITEMS": ("number_of_items",)}


def reference_issues(reference: str, item_type: str) -> list[ValidationIssue]:
    issues = []
    control = _CONTROL.search(reference)
    if control:
        issues.append(ValidationIssue(
            "sku.control_character",
            f"reference {quote(reference)} contains the control character U+{ord(control.group()):04X} "
            f"at position {control.start() + 1}",
            "/reference",
        ))
    if item_type != "category" and len(reference) > SKU_MAX_CHARS:
        issues.append(ValidationIssue(
            "sku.too_long",
            f"SKU {quote(reference)} is {len(reference)} characters long; Amazon allows at most {SKU_MAX_CHARS}",
            "/reference",
        ))
    return issues


def marketplace_issues(attributes: dict, marketplace_id: str, text: str | None = None) -> list[ValidationIssue]:
    """putListingsItem takes one marketplace: a value addressed to another one would be dropped
    or misapplied, so every `marketplace_id` inside the attributes must be the event's.

    `text`: the JSON the attributes were parsed from, if any."""
    # Nearly every item passes: a scan first, paths built only when something differs.
    if text is not None and _compact_text_agrees(text, marketplace_id):
        return []
    if _all_marketplaces_are(attributes, marketplace_id):
        return []
    return [
        ValidationIssue(
            "marketplace.mismatch",
            f"{location(tokens[:-1])} is for marketplace {quote(value)}, but this change is for {marketplace_id}",
            attribute_pointer(tokens),
        )
        for tokens, value in _marketplace_ids(attributes, ())
        if value != marketplace_id
    ]


def _compact_text_agrees(text: str, marketplace_id: str) -> bool:
    """True when every `"marketplace_id"` in the JSON text is followed by `:"<this marketplace>"`:
    two substring counts at C speed instead of a walk of the parsed attributes.

    Sound because every real key appears literally (its letters can only be escaped as \\u, which
    sends the item to the walk), and a match of the longer pattern is also one of the shorter:
    equal counts leave no key with another value, another type or other spacing. Text that is
    not compact, or any other difference, counts unequal and the walk decides."""
    if ("\\" in text and "\\u" in text) or '"' in marketplace_id or "\\" in marketplace_id:
        return False
    return text.count('"marketplace_id"') == text.count(f'"marketplace_id":"{marketplace_id}"')


def _all_marketplaces_are(node: dict | list, marketplace_id: str) -> bool:
    # Attribute values are lists of flat dicts: those are checked inline, recursion only for the
    # few nested structures (purchasable_offer, dimensions): this runs for every item.
    if type(node) is dict:
        if node.get("marketplace_id", marketplace_id) != marketplace_id:
            return False
        values: Iterable[Any] = node.values()
    else:
        values = node
    for value in values:
        kind = type(value)
        if kind is dict:
            if not _all_marketplaces_are(value, marketplace_id):
                return False
        elif kind is list:
            for entry in value:
                if type(entry) is dict:
                    if entry.get("marketplace_id", marketplace_id) != marketplace_id:
                        return False
                    for inner in entry.values():
                        if (type(inner) is dict or type(inner) is list) and not _all_marketplaces_are(inner, marketplace_id):
                            return False
                elif type(entry) is list and not _all_marketplaces_are(entry, marketplace_id):
                    return False
    return True


def _marketplace_ids(node: object, tokens: tuple) -> Iterator[tuple[tuple, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "marketplace_id" and not isinstance(value, dict | list):
                yield (*tokens, key), value
            elif isinstance(value, dict | list):
                yield from _marketplace_ids(value, (*tokens, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, dict | list):
                yield from _marketplace_ids(value, (*tokens, i))


def identifier_issues(attributes: dict) -> list[ValidationIssue]:
    """Check digits and lengths of the EAN/UPC/GTIN barcodes in the product identifier."""
    issues: list[ValidationIssue] = []
    entries = attributes.get(IDENTIFIER_ATTRIBUTE)
    if not isinstance(entries, list):
        return issues
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        kind, value = entry.get("type"), entry.get("value")
        if not isinstance(kind, str) or not isinstance(value, str):
            continue  # the schema reports the missing or mistyped part
        problem = identifier_problem(kind, value)
        if problem:
            code, reason = problem
            issues.append(ValidationIssue(
                code,
                f"{location((IDENTIFIER_ATTRIBUTE, i))} {kind.upper()} {quote(value)} {reason}",
                attribute_pointer((IDENTIFIER_ATTRIBUTE, i, "value")),
            ))
    return issues


def variant_issues(reference: str, parent_reference: str | None, attributes: dict,
                   known_attributes: Collection[str], reported: Collection[str]) -> list[ValidationIssue]:
    """A variant names its parent and carries the relationship attributes Amazon links it by:
    parentage_level 'child', child_parent_sku_relationship naming the same parent SKU, the family's
    variation_theme and a value for each attribute of that theme.

    Only attributes the product type defines are demanded (`known_attributes`); a missing attribute
    the schema already reported as required (`reported` pointers) is not reported twice.
    """
    issues: list[ValidationIssue] = []

    def missing(name: str, code: str, message: str) -> None:
        path = attribute_pointer((name,))
        if path not in reported:
            issues.append(ValidationIssue(code, message, path))

    if not parent_reference:
        issues.append(ValidationIssue(
            "variant.parent_reference", "a variant must name its parent product's SKU in parent_reference",
            "/parent_reference"))
    elif parent_reference == reference:
        issues.append(ValidationIssue(
            "variant.parent_reference", f"variant {quote(reference)} names itself as its parent", "/parent_reference"))

    if "parentage_level" in known_attributes:
        levels = _values(attributes.get("parentage_level"), "value")
        if not levels:
            missing("parentage_level", "variant.parentage_level", "a variant must carry parentage_level 'child'")
        elif "child" not in levels:
            issues.append(ValidationIssue(
                "variant.parentage_level",
                f"parentage_level is {quote(levels[0])}; a variant must be 'child'",
                attribute_pointer(("parentage_level", 0, "value")),
            ))

    if "child_parent_sku_relationship" in known_attributes:
        entries = attributes.get("child_parent_sku_relationship")
        expected = f"parent {quote(parent_reference)}" if parent_reference else "its parent"
        if not isinstance(entries, list) or not entries:
            missing("child_parent_sku_relationship", "variant.relationship",
                    f"a variant must carry child_parent_sku_relationship naming {expected}")
        elif parent_reference:
            issues.extend(_parent_sku_issues(entries, parent_reference, reported))

    if "variation_theme" in known_attributes:
        themes = _values(attributes.get("variation_theme"), "name")
        if not themes:
            missing("variation_theme", "variant.variation_theme",
                    "a variant must carry the variation_theme of its family (e.g. SIZE/COLOR)")
        for theme in themes:
            for name in _theme_attributes(theme, known_attributes):
                if not attributes.get(name):
                    missing(name, "variant.theme_attribute",
                            f"variation theme {theme} needs a value for '{name}' on every variant")
    return issues


def _parent_sku_issues(entries: list, parent_reference: str, reported: Collection[str]) -> list[ValidationIssue]:
    named = [(i, e.get("parent_sku")) for i, e in enumerate(entries) if isinstance(e, dict)]
    if any(sku == parent_reference for _, sku in named):
        return []
    issues = []
    for i, sku in named:
        path = attribute_pointer(("child_parent_sku_relationship", i, "parent_sku"))
        if sku is None:
            if path not in reported:
                issues.append(ValidationIssue(
                    "variant.relationship",
                    f"child_parent_sku_relationship[{i}] must name the parent SKU {quote(parent_reference)} in parent_sku",
                    path))
        elif isinstance(sku, str):
            issues.append(ValidationIssue(
                "variant.relationship",
                f"child_parent_sku_relationship[{i}].parent_sku is {quote(sku)}, but parent_reference is "
                f"{quote(parent_reference)}",
                path))
    return issues


def _values(entries: object, key: str) -> list:
    if not isinstance(entries, list):
        return []
    return [e[key] for e in entries if isinstance(e, dict) and key in e]


def _theme_attributes(theme: object, known: Collection[str]) -> list[str]:
    """SIZE_NAME/COLOR_NAME → ['size', 'color'] when the product type defines them."""
    if not isinstance(theme, str):
        return []
    found = []
    for token in theme.upper().split("/"):
        lower = token.lower()
        candidates = (*_THEME_ALIASES.get(token, ()), lower, lower.removesuffix("_name"), lower.removesuffix("_type"))
        name = next((c for c in candidates if c in known), None)
        if name and name not in found:
            found.append(name)
    return found


def seller_issue() -> ValidationIssue:
    return ValidationIssue(
        "seller.missing",
        "no seller: the change has no seller_id and no default seller is configured (SELLER_ID)",
        pointer("seller_id"),
    )
