"""From a ListingReady event to the exact SP-API call: operation, method, path (SKU
percent-encoded once, as UTF-8), query, body, and the usage-plan lane it draws on; or, where the
run's mode may not send the change (catalog_sync.runtime.sync_modes), why nothing is sent."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import orjson

from catalog_sync.runtime.sync_modes import PREVIEW_NOT_SENT, SANDBOX, VALIDATION_PREVIEW, route_of_change

API_PATH = "/listings/2021-08-01/items"


@dataclass(frozen=True)
class ListingCall:
    operation: str  # putListingsItem | deleteListingsItem
    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    body: bytes | None
    lane: str
    mode: str  # sync mode of the run: test | preview | production
    sandbox: bool  # the route's host: the sandbox, or production

    @property
    def path_and_query(self) -> str:
        """Encoded once here, so the HTTP client does not re-parse and re-encode parameters."""
        return f"{self.path}?{urlencode(self.params)}"


@dataclass(frozen=True)
class NotSent:
    """The run's mode forbids this change at Amazon: it ends with `outcome`, nothing is called."""

    outcome: str
    message: str


class InvalidReadyEvent(ValueError):
    pass


def encode_path_segment(value: str) -> str:
    # safe="" so '/', '?', '#', '%' and spaces inside a SKU are encoded; UTF-8 by default.
    return quote(value, safe="")


def build_call(event: dict) -> ListingCall | NotSent:
    mode = event["mode"]
    route = route_of_change(mode, event["operation"])
    if not route.sent:
        return NotSent(PREVIEW_NOT_SENT, route.why)
    sandbox = route.host == SANDBOX
    path = f"{API_PATH}/{encode_path_segment(event['seller_id'])}/{encode_path_segment(event['reference'])}"
    params: list[tuple[str, str]] = [("marketplaceIds", event["marketplace_id"])]
    if route.method == "DELETE":
        return ListingCall(route.operation, "DELETE", path, tuple(params), None, "delete", mode, sandbox)
    if not event.get("product_type"):
        raise InvalidReadyEvent("product_type is required to submit a listing")
    try:
        attributes = orjson.loads(event.get("attributes_json") or "{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidReadyEvent(f"attributes_json is not JSON: {exc}") from None
    if not isinstance(attributes, dict):
        raise InvalidReadyEvent("attributes_json must hold a JSON object")
    lane = "put"
    if route.amazon_mode == VALIDATION_PREVIEW:
        params += [("mode", VALIDATION_PREVIEW), ("includedData", "issues,identifiers")]
        lane = "preview"
    else:
        params.append(("includedData", "issues"))
    params.append(("issueLocale", "en_US"))
    body = {"productType": event["product_type"], "requirements": event["requirements"],
            "attributes": attributes}
    return ListingCall(route.operation, route.method, path, tuple(params), orjson.dumps(body), lane, mode, sandbox)
