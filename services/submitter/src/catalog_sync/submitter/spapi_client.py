"""The SP-API adapter on aiohttp: Login with Amazon token cache and one HTTP attempt per call.

Why aiohttp, and what each setting means: docs/operations.md, "The SP-API HTTP client".

- One access-token request per account per token lifetime (3600 s), shared by every concurrent
  call of that account; renewed a minute before expiry; dropped once after a 403.
- Connections, keep-alive, proxies, TLS and timeouts are aiohttp's. One session; at most
  SPAPI_MAX_CONNECTIONS connections per host. `connection` takes one of those per host before
  the rate gate spends its token (rate.py): a request leaves as soon as its token is spent. No
  free connection within the pool timeout: the call answers `timeout` without being sent.
- aiohttp has no write timeout: each call is bounded as a whole by connect + write + read
  seconds (its `total`), so a peer that stops reading the body cannot hold a call forever.
- Proxies: HTTPS_PROXY / HTTP_PROXY / NO_PROXY as the standard library reads them, looked up once
  per host (aiohttp's trust_env looks them up in a worker thread on every request).
- Every Listings call takes one path, `send`. Timeouts and connection errors become answers
  (`failure`), not exceptions: the domain decides.
- Mode guard: `send` refuses (sync_modes.ModeViolation) any Listings request whose host, method or
  `mode` parameter its run's mode does not allow, whatever built it; the worker dead-letters it.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.request import getproxies, proxy_bypass

import aiohttp
import orjson
from aiohttp.http_exceptions import ContentEncodingError
from yarl import URL

from catalog_sync.runtime import __version__
from catalog_sync.runtime.sync_modes import ModeViolation, check_request
from catalog_sync.submitter.accounts import Account
from catalog_sync.submitter.classification import Answer
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.listing_requests import ListingCall
from catalog_sync.submitter.submission import LoginFailed

USER_AGENT = (f"catalog-sync/{__version__} (Language=Python/{platform.python_version()}; "
              f"Platform={platform.system()})")[:500]
TOKEN_EARLY_RENEWAL_S = 60.0
STANDARD_HEADERS = {"user-agent": USER_AGENT, "accept": "application/json"}  # on every request


@dataclass(frozen=True)
class ClientSettings:
    token_url: str
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0  # SP-API calls take 0.1-30 s
    write_timeout_s: float = 10.0
    pool_timeout_s: float = 60.0
    max_connections: int = 256  # per host (production / sandbox host of a region)


@dataclass
class _Token:
    value: str
    expires_at: float
    generation: int


@dataclass(frozen=True)
class _Host:
    """A base URL as requests use it: the proxy to reach it through and its origin's connections."""

    base: str                  # no trailing slash; Listings paths are appended as already encoded
    proxy: str | None          # from HTTPS_PROXY / HTTP_PROXY, None when NO_PROXY exempts the host
    slots: asyncio.Semaphore   # SPAPI_MAX_CONNECTIONS of its origin, shared by base URLs on it


class SpApiClient:
    def __init__(self, settings: ClientSettings, *, endpoints: Endpoints,
                 clock: Callable[[], float] = time.monotonic,
                 on_refused: Callable[[ModeViolation], None] | None = None) -> None:
        self.settings = settings
        self._endpoints = endpoints  # which host a base URL is, for the mode guard
        self._on_refused = on_refused
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(
            total=settings.connect_timeout_s + settings.write_timeout_s + settings.read_timeout_s,
            sock_connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s)
        self._session: aiohttp.ClientSession | None = None  # opened in the event loop that uses it
        self._hosts: dict[str, _Host] = {}
        self._slots: dict[URL, asyncio.Semaphore] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._token_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._generation = 0
        self.token_requests = 0  # observable: tests assert one login per account

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=self.settings.max_connections),
                timeout=self._timeout, headers=STANDARD_HEADERS, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    def _host(self, base_url: str) -> _Host:
        host = self._hosts.get(base_url)
        if host is None:
            url = URL(base_url)
            origin = url.origin()
            slots = self._slots.get(origin)
            if slots is None:
                slots = self._slots[origin] = asyncio.Semaphore(max(1, self.settings.max_connections))
            proxy = None if proxy_bypass(url.host or "") else getproxies().get(url.scheme)
            host = self._hosts[base_url] = _Host(base_url.rstrip("/"), proxy, slots)
        return host

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    # ---- Login with Amazon -----------------------------------------------------------------
    @staticmethod
    def _token_key(account: Account) -> tuple[str, str]:
        return account.client_id, account.refresh_token

    async def _access_token(self, account: Account) -> _Token:
        key = self._token_key(account)
        token = self._tokens.get(key)
        if token is not None and token.expires_at > self._clock():
            return token
        lock = self._token_locks.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent calls of one account wait for one login
            token = self._tokens.get(key)
            if token is not None and token.expires_at > self._clock():
                return token
            token = await self._login(account)
            self._tokens[key] = token
            return token

    async def _login(self, account: Account) -> _Token:
        self.token_requests += 1
        form = {"grant_type": "refresh_token", "refresh_token": account.refresh_token,
                "client_id": account.client_id, "client_secret": account.client_secret}
        token_url = self.settings.token_url
        try:
            async with self._http().post(token_url, data=form, proxy=self._host(token_url).proxy,
                                         allow_redirects=False) as response:
                status, content = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure, detail = _failure(exc)
            raise LoginFailed(None, failure, f"token endpoint: {detail}", retryable=True) from None
        body = _json(content) or {}
        if status != 200 or not isinstance(body.get("access_token"), str):
            code = str(body.get("error") or f"HTTP{status}")
            message = str(body.get("error_description") or f"token endpoint answered HTTP {status}")
            retryable = status == 429 or status >= 500
            raise LoginFailed(status, code, message, retryable=retryable)
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        early = min(TOKEN_EARLY_RENEWAL_S, lifetime / 10)
        self._generation += 1
        return _Token(body["access_token"], self._clock() + lifetime - early, self._generation)

    async def refresh_token(self, account: Account, generation: int | None) -> None:
        key = self._token_key(account)
        token = self._tokens.get(key)
        if token is not None and (generation is None or token.generation == generation):
            del self._tokens[key]

    # ---- Listings Items --------------------------------------------------------------------
    async def prepare(self, account: Account) -> None:
        await self._access_token(account)

    @contextlib.asynccontextmanager
    async def connection(self, base_url: str):
        """One of the host's SPAPI_MAX_CONNECTIONS for one attempt; yields whether it was free
        within the pool timeout (if not, `send` answers `timeout` and sends nothing)."""
        slots = self._host(base_url).slots
        try:
            async with asyncio.timeout(self.settings.pool_timeout_s):
                await slots.acquire()
            held = True
        except TimeoutError:
            held = False
        try:
            yield held
        finally:
            if held:
                slots.release()

    async def call(self, account: Account, base_url: str, call: ListingCall) -> Answer:
        """prepare + connection + send: one attempt without a rate gate (tools, tests)."""
        await self.prepare(account)
        async with self.connection(base_url) as held:
            return await self.send(held, account, base_url, call)

    async def send(self, connection: bool, account: Account, base_url: str, call: ListingCall) -> Answer:
        """The call on a connection taken with `connection` (False: none was free in time)."""
        self._guard(base_url, call)
        if not connection:
            return Answer(None, failure="timeout", detail=f"no free connection to {base_url} within "
                          f"{self.settings.pool_timeout_s:g} s (SPAPI_MAX_CONNECTIONS all busy)")
        token = await self._access_token(account)
        host = self._host(base_url)
        headers = {"x-amz-access-token": token.value}
        if call.body is not None:  # PUT carries one, DELETE none
            headers["content-type"] = "application/json"
        # encoded=True: the path is percent-encoded once already (listing_requests); parsed
        # again, yarl would decode %40, %3A or %2C on the wire.
        url = URL(host.base + call.path_and_query, encoded=True)
        return await self._exchange(call.method, url, call.body, headers, host.proxy, token.generation)

    async def _exchange(self, method: str, url: URL, data: bytes | None, headers: dict[str, str],
                        proxy: str | None, token_generation: int | None) -> Answer:
        """One HTTP attempt to an SP-API host, read into an Answer (Listings Items and Feeds)."""
        try:
            # No redirects: a followed one would be a request the mode guard never saw.
            async with self._http().request(method, url, data=data, headers=headers, proxy=proxy,
                                            allow_redirects=False) as response:
                content = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure, detail = _failure(exc)
            return Answer(None, failure=failure, detail=detail, token_generation=token_generation)
        request_id = rate_limit = None
        # From the raw bytes as latin-1 (RFC 9110 §5.5): aiohttp's decoded headers keep a non-UTF-8
        # byte as a lone surrogate, which no event can carry.
        for name, value in response.raw_headers:
            name = name.lower()
            if name == b"x-amzn-requestid":
                request_id = value.decode("latin-1")
            elif name == b"x-amzn-ratelimit-limit":
                rate_limit = value.decode("latin-1")
        return Answer(response.status, request_id=request_id, body=_json(content), rate_limit=rate_limit,
                      token_generation=token_generation)

    def _guard(self, base_url: str, call: ListingCall) -> None:
        """Check what is about to go on the wire (method, host, query) against the run's mode."""
        try:
            check_request(call.mode, call.method, self._endpoints.host_kind(base_url) or f"unknown ({base_url})",
                          call.path_and_query.partition("?")[2])
        except ModeViolation as refused:
            if self._on_refused is not None:
                self._on_refused(refused)
            raise


def _failure(exc: TimeoutError | aiohttp.ClientError) -> tuple[str, str]:
    """An answer's `failure` and detail for what aiohttp raised."""
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors too
        return "timeout", f"no answer in time ({type(exc).__name__})"
    # aiohttp's messages quote the proxy URL, credentials included; details reach events and logs.
    detail = _URL_CREDENTIALS.sub("://", f"{type(exc).__name__}: {exc}")[:300]
    if isinstance(exc, aiohttp.ClientPayloadError) and isinstance(exc.__cause__, ContentEncodingError):
        return "undecodable_response", detail  # a Content-Encoding the body does not match (a broken proxy)
    return "connection_error", detail


_URL_CREDENTIALS = re.compile(r"://[^/@\s'\"]*@")


def _json(content: bytes) -> dict | None:
    if not content:
        return None
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {"errors": [{"code": "unparsable_response", "message": content[:300].decode("utf-8", "replace")}]}
    return value if isinstance(value, dict) else None
