"""What each sync mode may send to Amazon, and where: the one table every component reads.

interfaces.md §2 names the modes; this table decides, for every (mode, SP-API operation), which
host is called and with which `mode` query parameter, or that nothing is called at all. The
submitter builds its requests from it, its HTTP client refuses any request that disagrees with it
(`check_request`), the recorder words outcomes and decides what Amazon holds from it, and
`publish --changed-only` compares against the endpoint it names.

Amazon has no preview of deleteListingsItem, so a preview run never sends a delete: a preview must
never change a live listing. A test run talks only to the sandbox, whatever the operation.

The Feeds API operations of the bulk lane (JSON_LISTINGS_FEED) follow the same table: production
runs call the production host, test runs the sandbox, and preview runs never use a feed (a feed
has no VALIDATION_PREVIEW: it would change live listings), so their items go one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from .contract import MODES, OPERATIONS

__all__ = ["FEED_OPERATIONS", "MODES", "OPERATIONS", "ModeViolation", "Route", "check_feed_request",
           "check_request", "feeds_allowed", "not_sent_message", "persists", "recorded_endpoint", "route",
           "route_of_change"]

PRODUCTION, SANDBOX = "production", "sandbox"  # SP-API hosts
VALIDATION_PREVIEW = "VALIDATION_PREVIEW"

# The catalog operation -> the Listings Items operation that carries it, and its HTTP method.
SPAPI_OPERATION = {"upsert": "putListingsItem", "delete": "deleteListingsItem"}
METHODS = {"putListingsItem": "PUT", "patchListingsItem": "PATCH", "deleteListingsItem": "DELETE",
           "getListingsItem": "GET"}

# Feeds API 2021-06-30 operations (the bulk lane) and their HTTP methods.
FEED_OPERATIONS = {"createFeedDocument": "POST", "createFeed": "POST", "getFeed": "GET", "getFeeds": "GET",
                   "getFeedDocument": "GET", "cancelFeed": "DELETE"}

PREVIEW_NOT_SENT = "preview_not_sent"  # outcome of a change a preview cannot show without doing it


@dataclass(frozen=True)
class Route:
    """Where one SP-API operation of a run in `mode` goes. `host` None: never sent; `why` says so."""

    mode: str
    operation: str            # SP-API operation: putListingsItem | patchListingsItem | ...
    host: str | None          # PRODUCTION | SANDBOX | None
    amazon_mode: str | None   # value of the `mode` query parameter, or None for no parameter
    why: str = ""

    @property
    def sent(self) -> bool:
        return self.host is not None

    @property
    def method(self) -> str:
        return METHODS.get(self.operation) or FEED_OPERATIONS[self.operation]


def _routes() -> dict[tuple[str, str], Route]:
    table: dict[tuple[str, str], Route] = {}
    for operation in METHODS:
        table["production", operation] = Route("production", operation, PRODUCTION, None)
        table["test", operation] = Route("test", operation, SANDBOX, None)
    table["preview", "putListingsItem"] = Route("preview", "putListingsItem", PRODUCTION, VALIDATION_PREVIEW)
    table["preview", "patchListingsItem"] = Route("preview", "patchListingsItem", PRODUCTION, VALIDATION_PREVIEW)
    table["preview", "getListingsItem"] = Route("preview", "getListingsItem", PRODUCTION, None)  # reads only
    table["preview", "deleteListingsItem"] = Route(
        "preview", "deleteListingsItem", None, None,
        "deletes cannot be previewed: Amazon has no preview for deleteListingsItem; nothing was changed")
    for operation in FEED_OPERATIONS:
        table["production", operation] = Route("production", operation, PRODUCTION, None)
        table["test", operation] = Route("test", operation, SANDBOX, None)
        table["preview", operation] = Route(
            "preview", operation, None, None,
            "a feed has no preview (VALIDATION_PREVIEW is a Listings Items parameter): preview runs go item by item")
    return table


ROUTES: dict[tuple[str, str], Route] = _routes()


class UnknownMode(ValueError):
    pass


def route(mode: str, operation: str) -> Route:
    """The route of an SP-API operation (putListingsItem, ...) in a run of `mode`."""
    found = ROUTES.get((mode, operation))
    if found is None:
        if mode not in MODES:
            raise UnknownMode(f"unknown sync mode {mode!r} (expected one of {', '.join(MODES)})")
        raise ValueError(f"unknown SP-API operation {operation!r}")
    return found


def route_of_change(mode: str, catalog_operation: str) -> Route:
    """The route of a catalog change's operation (upsert | delete) in a run of `mode`."""
    if catalog_operation not in SPAPI_OPERATION:
        raise ValueError(f"unknown operation {catalog_operation!r} (expected one of {', '.join(OPERATIONS)})")
    return route(mode, SPAPI_OPERATION[catalog_operation])


def recorded_endpoint(mode: str) -> str:
    """interfaces.md §2: the endpoint a run's outcomes are recorded under: "test" for the
    sandbox, "production" for preview and production runs."""
    if mode not in MODES:
        raise UnknownMode(f"unknown sync mode {mode!r} (expected one of {', '.join(MODES)})")
    return "test" if mode == "test" else "production"


def persists(mode: str | None) -> bool:
    """Whether an accepted submission of a run in `mode` changes what its endpoint holds (and so
    counts for `publish --changed-only`): not in preview, which validates only."""
    return mode != "preview"


def not_sent_message(outcome: str | None) -> str | None:
    """Why nothing was sent, for an outcome that says so (the recorder shows it)."""
    if outcome == PREVIEW_NOT_SENT:
        return ROUTES["preview", "deleteListingsItem"].why
    return None


def feeds_allowed(mode: str) -> bool:
    """Whether a run of `mode` may send its items in a JSON_LISTINGS_FEED (not a preview run)."""
    return route(mode, "createFeed").sent


class ModeViolation(Exception):
    """A request about to leave for Amazon that the table does not allow for its run's mode."""

    dead_letter_reason = "mode_violation"


def _sent_route(mode: str, what: str, host: str, operation: str | None, api: str) -> Route:
    """The route of a request (`what`: its method or operation, as the refusal names it) that a
    run of `mode` sends to `host`; ModeViolation for an unknown mode, an operation such a run does
    not send (`operation` None: not one of `api`'s), or the other host."""
    if mode not in MODES:
        raise ModeViolation(f"refused {what} to the {host} host: unknown sync mode {mode!r}")
    allowed = ROUTES.get((mode, operation)) if operation else None
    if allowed is None or not allowed.sent:
        why = allowed.why if allowed is not None else f"{what} is not a {api} operation"
        raise ModeViolation(f"refused {what} to the {host} host in a {mode!r} run: {why}")
    if host != allowed.host:
        raise ModeViolation(f"refused {what} to the {host} host in a {mode!r} run: "
                            f"{allowed.operation} of a {mode} run goes to the {allowed.host} host only")
    return allowed


def check_request(mode: str, method: str, host: str, query: str) -> None:
    """Refuse (ModeViolation) a Listings request whose method, host or `mode` parameter does not
    match what a run of `mode` may send: the last line of defence, at the wire."""
    operation = next((op for op, m in METHODS.items() if m == method), None)
    allowed = _sent_route(mode, method, host, operation, "Listings Items")
    amazon_mode = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "mode"]
    if amazon_mode != ([allowed.amazon_mode] if allowed.amazon_mode else []):
        raise ModeViolation(f"refused {method} with mode={','.join(amazon_mode) or '(none)'} in a {mode!r} run: "
                            f"{allowed.operation} of a {mode} run needs mode={allowed.amazon_mode or '(none)'}")


def check_feed_request(mode: str, operation: str, host: str) -> None:
    """Refuse (ModeViolation) a Feeds API call that a run of `mode` may not make, or that goes to
    the other host: the bulk lane's last line of defence, at the wire."""
    _sent_route(mode, operation, host, operation if operation in FEED_OPERATIONS else None, "Feeds API")
