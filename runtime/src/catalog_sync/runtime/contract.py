"""The product contract in one place: its vocabulary and the catalog change (interfaces.md §1-2).

- Vocabulary: sync modes, item types, operations, requirements, submission outcomes and statuses,
  read from the Avro schemas (schemas/src/catalog_sync/schemas/*.avsc) where the wire defines them, and the status rules:
  which outcome finishes an item, and when an item is pending.
- The catalog change: one JSON object per item and marketplace, checked by `catalog-sync publish`
  (every line before publishing) and by the validator (with the schema errors); its content hash.

Where a sync mode sends what is the mode table's (catalog_sync.runtime.sync_modes); marketplaces and
Amazon's hosts are catalog_sync.runtime.marketplaces.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import orjson


def _wire_symbols(enum_name: str) -> tuple[str, ...]:
    """The symbols of an Avro enum in the newest schema file that defines it: the wire's own list."""
    found: dict[int, tuple[str, ...]] = {}

    def walk(node, version: int) -> None:
        if isinstance(node, dict):
            if node.get("type") == "enum" and node.get("name") == enum_name:
                found[version] = tuple(node["symbols"])
            for child in node.values():
                walk(child, version)
        elif isinstance(node, list):
            for child in node:
                walk(child, version)

    for entry in resources.files("catalog_sync.schemas").iterdir():
        if entry.name.endswith(".avsc"):
            version = int(entry.name.rsplit(".v", 1)[1].split(".")[0])
            walk(json.loads(entry.read_text(encoding="utf-8")), version)
    if not found:
        raise LookupError(f"no Avro enum {enum_name} in schemas/")
    return found[max(found)]


MODES = _wire_symbols("SyncMode")              # test | preview | production
ITEM_TYPES = _wire_symbols("ItemType")         # category | product | variant
OPERATIONS = _wire_symbols("Operation")        # upsert | delete
REQUIREMENTS = _wire_symbols("Requirements")   # LISTING | LISTING_PRODUCT_ONLY | LISTING_OFFER_ONLY
OUTCOMES = _wire_symbols("SubmissionOutcome")  # how a submission ended
LISTING_STATES = _wire_symbols("ListingState")  # awaiting | live | error: Amazon's view after ACCEPTED
AWAITING, LIVE, LISTING_ERROR = LISTING_STATES

PENDING, ERROR, FINISHED = "pending", "error", "finished"
ITEM_STATUSES = (PENDING, ERROR, FINISHED)     # the wire carries the final two (ItemStatus)
RUN_STATUSES = ("in_progress", "finished", "finished_with_errors", "interrupted")
# Outcomes that finish an item (interfaces.md §2); every other outcome is an error.
FINISHED_OUTCOMES = frozenset({"accepted", "valid", "deleted", "not_sent", "unchanged", "preview_not_sent"})


def status_of_outcome(outcome: str) -> str:
    return FINISHED if outcome in FINISHED_OUTCOMES else ERROR


def status_of_listing_state(state: str) -> str:
    """An item Amazon accepted stays finished while awaiting Amazon and once live; an issue of
    severity ERROR found after acceptance makes it an error (issue 18)."""
    return ERROR if state == LISTING_ERROR else FINISHED


def item_status(change_time: int | None, final_time: int | None, final_status: str | None) -> str:
    """An item is pending until a final event arrives, and again once a newer change arrives."""
    if final_time is None or (change_time is not None and change_time > final_time):
        return PENDING
    assert final_status is not None  # a final event always carries its status
    return final_status


FIELDS = (
    "reference", "item_type", "operation", "seller_id", "marketplace_id", "product_type",
    "requirements", "parent_reference", "attributes", "changed_at",
)
# Amazon attribute JSON nests a handful of levels; far deeper input is garbage that would
# exhaust recursion in JSON encoders and schema validators downstream.
MAX_ATTRIBUTE_DEPTH = 64


@dataclass(frozen=True, slots=True)
class ContractError:
    code: str
    message: str
    path: str

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "path": self.path}


def _optional_str(obj: dict, name: str, errors: list[ContractError]) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        errors.append(ContractError("contract.type", f"'{name}' must be a non-empty string, got {value!r}"[:300], f"/{name}"))
        return None
    if not _is_utf8(value):
        errors.append(_not_unicode(name))
        return None
    return value


def _is_utf8(text: str) -> bool:
    # json.loads turns "\ud800" escapes into lone surrogates, which no UTF-8 event can carry.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_unicode(name: str) -> ContractError:
    return ContractError("contract.encoding", f"'{name}' contains an unpaired surrogate (not valid Unicode text)", f"/{name}")


def depth_exceeds(value: dict | list, limit: int) -> bool:
    """True when dicts and lists nest more than `limit` levels deep. Iterative: no recursion."""
    stack: list[tuple[dict | list, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def _choice(obj: dict, name: str, choices: tuple[str, ...], default: str, errors: list[ContractError]) -> str:
    value = obj.get(name)
    if value is None:
        return default
    if value not in choices:
        errors.append(ContractError("contract.enum", f"'{name}' must be one of {', '.join(choices)}, got {value!r}"[:300], f"/{name}"))
        return default
    return value


_HASH_PIECE = 2000  # bytes; CPython's hashlib keeps the GIL below 2048


def content_hash(operation: str, product_type: str | None, requirements: str, attributes: dict) -> str:
    """SHA-256 of what putListingsItem / deleteListingsItem will send. Canonical JSON (sorted keys,
    no whitespace), so the same listing hashes the same whatever order the PIM wrote it in.

    The validator stamps it on ListingReady; `publish --changed-only` recomputes it to compare a
    file's items with what last finished at Amazon: one formula, or nothing would ever match."""
    if operation == "delete":
        sent: dict = {"operation": "delete"}
    else:
        sent = {"operation": operation, "product_type": product_type, "requirements": requirements,
                "attributes": attributes}
    canonical = orjson.dumps(sent, option=orjson.OPT_SORT_KEYS)
    # hashlib lets go of the GIL for inputs over 2 KB: in a worker whose Kafka threads wait for
    # it, a thread switch per item. Fed in smaller pieces, the digest is the same and the GIL stays.
    digest = hashlib.sha256()
    for start in range(0, len(canonical), _HASH_PIECE):
        digest.update(canonical[start:start + _HASH_PIECE])
    return digest.hexdigest()


def parse_time(value: str) -> datetime:
    """ISO-8601 with Z or offset; a naive time is taken as UTC. ValueError when it is none."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Contract errors after which the item can still be checked against its product type: the
# validator then reports them together with every schema and rule error (all errors at once).
_CHECKABLE_DESPITE = frozenset({"/parent_reference", "/changed_at", "/seller_id"})


def parse_change(obj: object, line_no: int | None = None) -> tuple[dict | None, list[ContractError]]:
    """Fields of a CatalogItemChanged event (without header and mode), or the contract errors.

    All contract errors are reported, not only the first. `line_no` only shapes messages.
    """
    fields, errors = change_to_check(obj, line_no)
    return (None, errors) if errors else (fields, errors)


def change_to_check(obj: object, line_no: int | None = None) -> tuple[dict | None, list[ContractError]]:
    """Like parse_change, but the fields also come with contract errors that leave the item
    checkable (a missing parent_reference, a bad changed_at, unknown fields): `catalog-sync
    validate` reports those and the product type's errors together."""
    fields, errors = _read_change(obj, line_no)
    blocking = [e for e in errors if e.path not in _CHECKABLE_DESPITE and e.code != "contract.unknown_field"]
    return (None if blocking or fields is None else fields), errors


def _read_change(obj: object, line_no: int | None) -> tuple[dict | None, list[ContractError]]:
    where = f" (line {line_no})" if line_no is not None else ""
    if not isinstance(obj, dict):
        return None, [ContractError("contract.not_object", f"an item must be a JSON object{where}", "")]
    errors: list[ContractError] = []
    for name in sorted(set(obj) - set(FIELDS)):
        errors.append(ContractError("contract.unknown_field", f"unknown field '{name}'{where}", f"/{name}"))

    reference = obj.get("reference")
    if not isinstance(reference, str) or not reference.strip():
        errors.append(ContractError("contract.required", f"'reference' is required (SKU or category code){where}", "/reference"))
    elif not _is_utf8(reference):
        errors.append(_not_unicode("reference"))
    marketplace_id = obj.get("marketplace_id")
    if not isinstance(marketplace_id, str) or not marketplace_id.strip():
        errors.append(ContractError("contract.required", f"'marketplace_id' is required{where}", "/marketplace_id"))
    elif not _is_utf8(marketplace_id):
        errors.append(_not_unicode("marketplace_id"))
    if "item_type" not in obj:
        errors.append(ContractError("contract.required", f"'item_type' is required (category, product or variant){where}", "/item_type"))
    item_type = _choice(obj, "item_type", ITEM_TYPES, "product", errors)
    operation = _choice(obj, "operation", OPERATIONS, "upsert", errors)
    requirements = _choice(obj, "requirements", REQUIREMENTS, "LISTING", errors)
    seller_id = _optional_str(obj, "seller_id", errors)
    product_type = _optional_str(obj, "product_type", errors)
    parent_reference = _optional_str(obj, "parent_reference", errors)

    if operation == "upsert" and item_type in ("product", "variant") and product_type is None and "product_type" not in obj:
        errors.append(ContractError("contract.required", f"'product_type' is required for a {item_type}{where}", "/product_type"))
    if item_type == "category" and product_type is None and "product_type" not in obj:
        errors.append(ContractError("contract.required", f"'product_type' is required for a category (the Amazon product type it maps to){where}", "/product_type"))
    if item_type == "variant" and operation == "upsert" and parent_reference is None and "parent_reference" not in obj:
        errors.append(ContractError("contract.required", f"'parent_reference' is required for a variant (the parent product's SKU){where}", "/parent_reference"))

    attributes = obj.get("attributes", {})
    if attributes is None:
        attributes = {}
    attributes_json = "{}"
    if not isinstance(attributes, dict):
        errors.append(ContractError("contract.type", f"'attributes' must be a JSON object{where}", "/attributes"))
    elif depth_exceeds(attributes, MAX_ATTRIBUTE_DEPTH):
        errors.append(ContractError("contract.too_deep", f"'attributes' nest more than {MAX_ATTRIBUTE_DEPTH} levels deep{where}", "/attributes"))
    else:
        attributes_json = json.dumps(attributes, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        if not _is_utf8(attributes_json):
            errors.append(_not_unicode("attributes"))

    changed_at = None
    raw_time = obj.get("changed_at")
    if raw_time is not None:
        try:
            if not isinstance(raw_time, str):
                raise ValueError
            changed_at = parse_time(raw_time)
            changed_at.astimezone(UTC)  # year 1 at +14:00 is before year 1 in UTC: no event can carry it
        except (ValueError, OverflowError):
            errors.append(ContractError("contract.time", f"'changed_at' must be an ISO-8601 time, got {raw_time!r}"[:300], "/changed_at"))
            changed_at = None

    return {
        "reference": reference,
        "item_type": item_type,
        "operation": operation,
        "seller_id": seller_id,
        "marketplace_id": marketplace_id,
        "product_type": product_type,
        "requirements": requirements,
        "parent_reference": parent_reference,
        "attributes_json": attributes_json,
        "changed_at": changed_at,
    }, errors
