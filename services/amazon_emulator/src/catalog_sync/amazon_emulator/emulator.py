"""The emulator's request pipeline, independent of any HTTP server: LWA token endpoint, then for
Listings Items calls access token and seller check (403) -> usage plan (429) -> scripted and
random faults (5xx, latency) -> the Listings behaviour: production's (listings.py), or on /sandbox
Amazon's static examples (sandbox.py). Every request lands in a log tests can assert on."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

import orjson

from catalog_sync.amazon_emulator.feeds import (
    DOCUMENTS_PATH,
    FEEDS_PREFIX,
    FeedCall,
    FeedsBehaviour,
    operation_of,
)
from catalog_sync.amazon_emulator.listings import (
    CANNOT_PARSE,
    OPERATIONS,
    Answer,
    ListingRequest,
    ListingsBehaviour,
    check_request,
    errors,
    lane_of,
)
from catalog_sync.amazon_emulator.post_acceptance import fate_from_json
from catalog_sync.amazon_emulator.product_types import KNOWN_PRODUCT_TYPES
from catalog_sync.amazon_emulator.quota import DEFAULT_PLANS, Quotas, ScaledClock, UsagePlan
from catalog_sync.amazon_emulator.sandbox import static_answer
from catalog_sync.amazon_emulator.tokens import LwaAccounts, TokenIssuer
from catalog_sync.runtime.events import new_event_id  # ids like Amazon's, without a syscall each

LISTINGS_PREFIX = "/listings/2021-08-01/items/"
FEED_CHUNK = 200  # feed messages judged per turn of the background processor
RATE_LIMIT_STATUSES = frozenset({200, 400, 404})
SANDBOX_PREFIX = "/sandbox"  # point SPAPI_SANDBOX_ENDPOINT at <emulator>/sandbox to tell the hosts apart
TOKEN_PATH = "/auth/o2/token"
FAULT_ERRORS = {
    400: ("InvalidInput", CANNOT_PARSE),
    403: ("Unauthorized", "Access to requested resource is denied."),
    413: ("RequestEntityTooLarge", "The request size exceeded the maximum accepted size."),
    415: ("UnsupportedMediaType", "The request payload is in an unsupported format."),
    429: ("QuotaExceeded", "You exceeded your quota for the requested resource."),
    500: ("InternalFailure", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Service temporarily unavailable. Please try again."),
}


@dataclass
class EmulatorConfig:
    throttled: bool = True
    plans: dict[str, UsagePlan] = field(default_factory=lambda: dict(DEFAULT_PLANS))
    token_ttl_seconds: float = 3600.0
    fault_5xx_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    rate_limit_header: bool = True  # x-amzn-RateLimit-Limit where the model declares it (200, 400, 404)
    # Who may log in and for which sellers; the default knows nobody (see tokens.py).
    accounts: LwaAccounts = field(default_factory=LwaAccounts)
    # False: /sandbox is Amazon's static sandbox (the model's examples). True: it validates and
    # stores like production, on its own listings (demos that want to see INVALID in a test run).
    validating_sandbox: bool = False
    product_types: frozenset[str] = KNOWN_PRODUCT_TYPES
    required: dict[str, tuple[str, ...]] = field(default_factory=dict)
    product_type_required: dict[str, tuple[str, ...]] = field(default_factory=dict)
    log_limit: int = 1_000_000
    seed: int | None = None
    # Amazon seconds per real second for usage plans and feed processing (tests run an hour of
    # quota in seconds with the same ratios); feed_processing_s is in Amazon seconds.
    time_scale: float = 1.0
    feed_processing_s: float = 30.0


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    delay_s: float = 0.0


@dataclass
class _Script:
    status: int
    remaining: int
    seller_id: str | None
    sku: str | None
    method: str | None
    delay_ms: float
    code: str | None
    message: str | None
    operation: str | None = None  # a Feeds operation (createFeed, ...): only those calls match


class Emulator:
    """Thread-safe: the HTTP server calls `handle` from its loop, tests call the rest from theirs."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._lock = threading.Lock()
        self._random = random.Random(self.config.seed)
        self._log: deque[dict] = deque(maxlen=self.config.log_limit)
        self._seq = 0
        self._scripts: list[_Script] = []
        self.tokens = TokenIssuer(self.config.accounts, ttl_seconds=self.config.token_ttl_seconds)
        self.clock = ScaledClock(self.config.time_scale)
        self.quotas = Quotas(self.config.plans, enabled=self.config.throttled, clock=self.clock.now)
        self.listings = ListingsBehaviour()
        self.feeds = FeedsBehaviour(self.listings, clock=self.clock.now, wall=time.time)
        self._processor: threading.Thread | None = None
        self._apply()

    def _apply(self) -> None:
        """Hand the configuration to the parts that act on it. Every change goes through here, so
        a setting changed over /_emulator/config takes effect (the parts keep no stale copy)."""
        config = self.config
        self.tokens.accounts = config.accounts
        self.tokens.ttl_seconds = config.token_ttl_seconds
        self.quotas.enabled = config.throttled
        self.quotas.plans = dict(config.plans)
        if self.clock.scale != config.time_scale:
            self.clock.set_scale(config.time_scale)
        self.feeds.processing_s = config.feed_processing_s
        self.listings.configure(required=config.required, product_type_required=config.product_type_required,
                                product_types=config.product_types)

    # ---- in-process API for tests and benchmarks -------------------------------------------
    def requests(self, since: int = 0) -> list[dict]:
        """Logged requests with seq > since, oldest first."""
        with self._lock:
            return [dict(r) for r in self._log if r["seq"] > since]

    def script(self, status: int, *, times: int = 1, seller_id: str | None = None, sku: str | None = None,
               method: str | None = None, delay_ms: float = 0.0, code: str | None = None,
               message: str | None = None, operation: str | None = None) -> None:
        """The next `times` matching Listings requests answer `status` (after the token check).
        status 200 with delay_ms only delays a normal answer (a slow Amazon, client timeouts).
        With `operation` (a Feeds operation) it applies to those Feeds calls instead."""
        with self._lock:
            self._scripts.append(_Script(status, times, seller_id, sku, method, delay_ms, code, message, operation))

    def after_acceptance(self, sku: str, *, seller_id: str | None = None, live_after_s: float | None = None,
                         issues_after_s: float | None = None, issues: list[dict] | None = None) -> None:
        """Script what happens to `sku` (of `seller_id`, or of any seller) once a later PUT is
        ACCEPTED: no status for `live_after_s` seconds, then live; or `issues` (default: Amazon's
        8541 catalog conflict, severity ERROR) from `issues_after_s` seconds on (not live before,
        unless `live_after_s` says so)."""
        sku, seller, fate = fate_from_json({"sku": sku, "seller_id": seller_id, "live_after_s": live_after_s,
                                             "issues_after_s": issues_after_s, "issues": issues})
        with self._lock:
            self.listings.fates[seller, sku] = fate

    def configure(self, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                if not hasattr(self.config, name):
                    raise ValueError(f"unknown emulator setting {name!r}")
                if name == "plans":
                    value = {**DEFAULT_PLANS, **{k: v if isinstance(v, UsagePlan) else UsagePlan(float(v[0]), int(v[1]))
                                                 for k, v in value.items()}}
                elif name == "accounts":
                    value = LwaAccounts.from_json(value)  # the accounts file's JSON over HTTP
                elif name == "product_types":
                    value = frozenset(value)
                setattr(self.config, name, value)
            self._apply()

    def reset(self) -> None:
        """Forget requests, scripts, buckets and listings (tokens stay valid)."""
        with self._lock:
            self._log.clear()
            self._scripts.clear()
            self.quotas.reset()
            self.listings.reset()
            self.feeds.reset()

    def start_processing(self) -> None:
        """Judge feed messages in a background thread, a chunk per turn of the lock, as a served
        emulator does (feeds.py): other requests go on while a large feed is processed."""
        if self._processor is not None:
            return
        self.feeds.background = True
        self._processor_stop = threading.Event()
        self._processor = threading.Thread(target=self._process_feeds, name="feed-processor", daemon=True)
        self._processor.start()

    def stop_processing(self) -> None:
        if self._processor is not None:
            self._processor_stop.set()
            self._processor.join(10)
            self._processor = None

    def _process_feeds(self) -> None:
        stop = self._processor_stop
        while not stop.is_set():
            with self._lock:
                self.feeds.advance()
                busy = self.feeds.work(FEED_CHUNK)
            stop.wait(0.001 if busy else 0.05)  # a chunk, then the lock is free for other requests

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens.expire_all()

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            self.tokens.revoked.add(refresh_token)

    # ---- the pipeline -------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, query: str, headers: Mapping[str, str], body: bytes) -> Response:
        arrival_wall, arrival = time.time(), time.monotonic()
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "time": arrival_wall, "monotonic": arrival, "method": method,
                     "path": raw_path, "user_agent": headers.get("user-agent", "")}
            if raw_path == TOKEN_PATH and method == "POST":
                response = self._token(body, entry)
            else:
                sandbox = raw_path.startswith(SANDBOX_PREFIX + "/")
                path = raw_path[len(SANDBOX_PREFIX):] if sandbox else raw_path
                if path.startswith(LISTINGS_PREFIX) and method in OPERATIONS:
                    entry["endpoint"] = "sandbox" if sandbox else "production"
                    response = self._listings(method, path, query, headers, body, sandbox, entry)
                elif path.startswith(FEEDS_PREFIX) and operation_of(method, path[len(FEEDS_PREFIX):]):
                    entry["endpoint"] = "sandbox" if sandbox else "production"
                    response = self._feeds(method, path, query, headers, body, sandbox, entry)
                elif raw_path.startswith(DOCUMENTS_PATH) and method in ("PUT", "GET"):
                    entry["operation"] = "upload" if method == "PUT" else "download"
                    status, content, content_type = self.feeds.document(
                        method, raw_path[len(DOCUMENTS_PATH):], query, headers.get("content-type", ""), body)
                    response = Response(status, [("content-type", content_type)], content)
                else:
                    response = _json(404, errors(404, "NotFound", "Resource not found.").body, new_event_id())
                    entry["operation"] = None
            entry["status"] = response.status
            self._log.append(entry)
            return response

    def _token(self, body: bytes, entry: dict) -> Response:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        answer = self.tokens.issue(form)
        entry.update(operation="lwaToken", client_id=form.get("client_id"))
        return _json(answer.status, answer.body, None)

    def _listings(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes,
                  sandbox: bool, entry: dict) -> Response:
        request_id = new_event_id()
        parts = path[len(LISTINGS_PREFIX):].split("/")
        params = parse_qs(query, keep_blank_values=True)
        mode = params.get("mode", [None])[0]
        marketplaces = [m for v in params.get("marketplaceIds", []) for m in v.split(",") if m]
        included = [m for v in params["includedData"] for m in v.split(",") if m] if "includedData" in params else None
        seller_id = unquote(parts[0]) if parts else ""
        sku = unquote(parts[1]) if len(parts) == 2 else ""
        entry.update(operation=OPERATIONS[method], request_id=request_id, seller_id=seller_id, sku=sku,
                     sku_raw=parts[1] if len(parts) == 2 else "", marketplace_ids=marketplaces, mode=mode,
                     lane=lane_of(method, mode))
        if len(parts) != 2 or not seller_id or not sku:
            return self._error(400, "InvalidInput", CANNOT_PARSE, request_id, entry)
        grant, why = self.tokens.check(headers.get("x-amz-access-token"))
        if grant is None:
            return self._error(403, "Unauthorized", "Access to requested resource is denied.", request_id, entry,
                               details=why)
        if not self.tokens.seller_allowed(grant, seller_id):
            # The token is valid, but its refresh token was not granted by this selling partner.
            return self._error(403, "Unauthorized", "Access to requested resource is denied.", request_id, entry)
        if not self.quotas.take(seller_id, grant.client_id, entry["lane"]):
            return self._error(429, "QuotaExceeded", "You exceeded your quota for the requested resource.",
                               request_id, entry)
        delay = self._latency()
        script = self._matching_script(method, seller_id, sku)
        if script is not None:
            delay += script.delay_ms / 1000.0
            if script.status != 200:
                code, message = FAULT_ERRORS.get(script.status, ("InternalFailure", "Scripted failure."))
                response = self._error(script.status, script.code or code, script.message or message, request_id,
                                       entry)
                response.delay_s = delay
                return response
        elif self.config.fault_5xx_rate and self._random.random() < self.config.fault_5xx_rate:
            status = self._random.choice((500, 503))
            response = self._error(status, *FAULT_ERRORS[status], request_id, entry)
            response.delay_s = delay
            return response
        request = ListingRequest(
            method=method, seller_id=seller_id, sku=sku, marketplace_ids=marketplaces, mode=mode,
            included_data=included, content_type=headers.get("content-type", ""), body=body, sandbox=sandbox,
            issue_locale=params.get("issueLocale", [None])[0])
        answer: Answer = self._static(request) if sandbox and not self.config.validating_sandbox \
            else self.listings.handle(request)
        entry["amazon_status"] = answer.body.get("status")
        entry["submission_id"] = answer.body.get("submissionId")
        if answer.status != 200:
            entry["error_code"] = answer.body["errors"][0]["code"]
        response = _json(answer.status, answer.body, request_id, self._limit_header(entry["lane"], answer.status))
        response.delay_s = delay
        return response

    def _feeds(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, sandbox: bool,
               entry: dict) -> Response:
        """Feeds API 2021-06-30 (feeds.py): token (403) -> usage plan per operation (429) -> faults."""
        request_id = new_event_id()
        operation = operation_of(method, path[len(FEEDS_PREFIX):])
        entry.update(operation=operation, request_id=request_id, lane=operation)
        if operation is None:
            return self._error(404, "NotFound", "Resource not found.", request_id, entry)
        grant, why = self.tokens.check(headers.get("x-amz-access-token"))
        if grant is None:
            return self._error(403, "Unauthorized", "Access to requested resource is denied.", request_id, entry,
                               details=why)
        # Feeds act for the selling partner(s) behind the refresh token; buckets are per
        # authorisation and application, like Amazon's per selling partner and application.
        owner = grant.refresh_token
        self.feeds.owners[owner] = grant.sellers
        entry["seller_id"] = ",".join(sorted(grant.sellers)) if grant.sellers else None
        if not self.quotas.take(owner, grant.client_id, operation):
            return self._error(429, "QuotaExceeded", "You exceeded your quota for the requested resource.",
                               request_id, entry)
        delay = self._latency()
        script = self._matching_script(method, None, None, operation)
        if script is not None and script.status != 200:
            code, message = FAULT_ERRORS.get(script.status, ("InternalFailure", "Scripted failure."))
            response = self._error(script.status, script.code or code, script.message or message, request_id, entry)
            response.delay_s = delay + script.delay_ms / 1000.0
            return response
        host = headers.get("host", "127.0.0.1")
        call = FeedCall(operation=operation, method=method, path=path[len(FEEDS_PREFIX):], query=query,
                        content_type=headers.get("content-type", ""), body=body, owner=owner, sandbox=sandbox,
                        base_url=f"http://{host}")
        answer = self.feeds.handle(call)
        if answer.status >= 400:
            entry["error_code"] = answer.body["errors"][0]["code"]
        entry["feed_id"] = answer.body.get("feedId")
        entry["feed_status"] = answer.body.get("processingStatus")
        response = _json(answer.status, answer.body, request_id,
                         self._limit_header(operation, 200 if answer.status in (201, 202) else answer.status))
        response.delay_s = delay
        return response

    @staticmethod
    def _static(request: ListingRequest) -> Answer:
        """Amazon's sandbox: the model's checks of the request, then its static examples."""
        problem, body = check_request(request)
        if problem is not None:
            return problem
        return static_answer(request.operation, {
            "sellerId": request.seller_id, "sku": request.sku, "marketplaceIds": request.marketplace_ids,
            "includedData": request.included_data, "mode": request.mode, "issueLocale": request.issue_locale,
            "body": body})

    def _error(self, status: int, code: str, message: str, request_id: str, entry: dict, details: str = "") -> Response:
        entry["error_code"] = code
        return _json(status, errors(status, code, message, details).body, request_id,
                     self._limit_header(entry.get("lane"), status))

    def _limit_header(self, lane: str | None, status: int) -> str | None:
        # The model declares x-amzn-RateLimit-Limit on the 200, 400 and 404 answers of the
        # Listings operations, not on 403/413/415/429/5xx: sent exactly there.
        if not self.config.rate_limit_header or lane is None or status not in RATE_LIMIT_STATUSES:
            return None
        return f"{self.quotas.plans[lane].rate:.1f}"

    def _latency(self) -> float:
        base = self.config.latency_ms
        if self.config.latency_jitter_ms:
            base += self._random.uniform(0, self.config.latency_jitter_ms)
        return base / 1000.0

    def _matching_script(self, method: str, seller_id: str | None, sku: str | None,
                         operation: str | None = None) -> _Script | None:
        for script in self._scripts:
            if script.operation != operation:
                continue
            if (script.seller_id in (None, seller_id) and script.sku in (None, sku)
                    and script.method in (None, method)):
                script.remaining -= 1
                if script.remaining <= 0:
                    self._scripts.remove(script)
                return script
        return None


def _json(status: int, body: dict, request_id: str | None, rate_limit: str | None = None) -> Response:
    headers = [("content-type", "application/json")]
    if request_id:
        headers.append(("x-amzn-requestid", request_id))
    if rate_limit:
        headers.append(("x-amzn-ratelimit-limit", rate_limit))
    return Response(status, headers, orjson.dumps(body))
