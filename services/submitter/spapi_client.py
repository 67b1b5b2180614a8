"""The SP-API adapter on httpx (async): Login with Amazon token cache and one HTTP attempt per call.

- One access-token request per account per token lifetime (3600 s), shared by every concurrent
  call of that account; renewed a minute before expiry; dropped once after a 403.
- Connections: a pool of single-connection httpx transports per origin, checked out in O(1) for
  each request. httpcore's own pool rescans every connection and every queued request whenever a
  request starts or ends; with hundreds of sellers' bursts queued inside one pool that costs
  more CPU than the HTTP work (measured here, 200 sellers x 50 items against the emulator:
  260 req/s through one 256-connection httpx client, ~960 req/s with single-connection clients).
- The wire layer under httpx is Http11Transport (http_transport.py): httpcore's per-request CPU
  cost capped one process at a few hundred calls per second.
- Listings calls skip `AsyncClient.request` (its cookie jar, redirect and auth layers and URL
  merging cost ~60 µs per call and do nothing for SP-API) and, on Http11Transport, httpx's
  Request and Response objects too (~80 µs more): the same bytes go onto the wire through
  `Http11Transport.exchange`. Any other transport gets an `httpx.Request`. Login keeps the client.
- Timeouts and connection errors become answers (`failure`), not exceptions: the domain decides.
- Mode guard: `send` refuses (sync_modes.ModeViolation) any Listings request whose host, method or
  `mode` parameter its run's mode does not allow, whatever built it; the worker dead-letters it.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import orjson

from catalog_sync import __version__
from catalog_sync.runtime.sync_modes import ModeViolation, check_request
from catalog_sync.submitter.accounts import Account
from catalog_sync.submitter.classification import Answer
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.http_transport import Http11Transport, origin_of
from catalog_sync.submitter.listing_requests import ListingCall
from catalog_sync.submitter.submission import LoginFailed

USER_AGENT = (f"catalog-sync/{__version__} (Language=Python/{platform.python_version()}; "
              f"Platform={platform.system()})")[:500]
TOKEN_EARLY_RENEWAL_S = 60.0
STANDARD_HEADERS = (("user-agent", USER_AGENT), ("accept", "application/json"))  # on every request


@dataclass(frozen=True)
class ClientSettings:
    token_url: str
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0  # SP-API calls take 0.1-30 s
    write_timeout_s: float = 10.0
    pool_timeout_s: float = 60.0
    max_connections: int = 256  # per origin (production / sandbox host of a region)


@dataclass
class _Token:
    value: str
    expires_at: float
    generation: int


class HttpxSpApi:
    def __init__(self, settings: ClientSettings, *, endpoints: Endpoints,
                 clock: Callable[[], float] = time.monotonic, transport: httpx.AsyncBaseTransport | None = None,
                 on_refused: Callable[[ModeViolation], None] | None = None) -> None:
        self.settings = settings
        self._endpoints = endpoints  # which host a base URL is, for the mode guard
        self._on_refused = on_refused
        self._clock = clock
        self._timeout = httpx.Timeout(connect=settings.connect_timeout_s, read=settings.read_timeout_s,
                                      write=settings.write_timeout_s, pool=settings.pool_timeout_s)
        self._timeout_extension = self._timeout.as_dict()
        self._tls = ssl.create_default_context()  # the CA bundle is loaded once, not once per connection
        self._transport = transport
        self._pools: dict[str, _Connections] = {}
        self._sites: dict[str, _Site] = {}
        # Login only (Listings calls go to the transports directly, see the module doc).
        self._login_client = httpx.AsyncClient(timeout=self._timeout, headers=dict(STANDARD_HEADERS), trust_env=False,
                                               verify=self._tls, transport=self._new_transport())
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._token_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._generation = 0
        self.token_requests = 0  # observable: tests assert one login per account

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        await self._login_client.aclose()

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
        try:
            response = await self._login_client.post(self.settings.token_url, data=form)
        except httpx.TimeoutException:
            raise LoginFailed(None, "timeout", "token request timed out", retryable=True) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise LoginFailed(None, "connection_error", f"token endpoint unreachable ({type(exc).__name__})",
                              retryable=True) from None
        body = _json(response.content) or {}
        if response.status_code != 200 or not isinstance(body.get("access_token"), str):
            code = str(body.get("error") or f"HTTP{response.status_code}")
            message = str(body.get("error_description") or f"token endpoint answered HTTP {response.status_code}")
            retryable = response.status_code == 429 or response.status_code >= 500
            raise LoginFailed(response.status_code, code, message, retryable=retryable)
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

    def connection(self, base_url: str):
        pool = self._pools.get(base_url)
        if pool is None:
            pool = self._pools[base_url] = _Connections(self._new_transport, self.settings.max_connections)
        return pool.connection()

    def _new_transport(self) -> httpx.AsyncBaseTransport:
        return self._transport or Http11Transport(tls=self._tls)

    async def call(self, account: Account, base_url: str, call: ListingCall) -> Answer:
        """prepare + connection + send: one attempt without a rate gate (tools, tests)."""
        await self.prepare(account)
        async with self.connection(base_url) as transport:
            return await self.send(transport, account, base_url, call)

    async def send(self, transport: httpx.AsyncBaseTransport, account: Account, base_url: str,
                   call: ListingCall) -> Answer:
        self._guard(base_url, call)
        token = await self._access_token(account)
        try:
            if isinstance(transport, Http11Transport):
                status, raw_headers, content = await self._exchange(transport, base_url, call, token.value)
            else:
                status, raw_headers, content = await self._through_httpx(transport, base_url, call, token.value)
        except httpx.TimeoutException as exc:
            return Answer(None, failure="timeout", detail=f"no answer in time ({type(exc).__name__})",
                          token_generation=token.generation)
        except httpx.TransportError as exc:
            return Answer(None, failure="connection_error", detail=f"{type(exc).__name__}: {exc}"[:300],
                          token_generation=token.generation)
        except httpx.DecodingError as exc:  # a Content-Encoding the body does not match (a broken proxy)
            return Answer(None, failure="undecodable_response", detail=f"{type(exc).__name__}: {exc}"[:300],
                          token_generation=token.generation)
        request_id = rate_limit = None
        for name, value in raw_headers:  # one pass; httpx's Headers.get decodes on every lookup
            name = name.lower()
            if name == b"x-amzn-requestid":
                request_id = value.decode("latin-1")
            elif name == b"x-amzn-ratelimit-limit":
                rate_limit = value.decode("latin-1")
        return Answer(status, request_id=request_id, body=_json(content), rate_limit=rate_limit,
                      token_generation=token.generation)

    def _guard(self, base_url: str, call: ListingCall) -> None:
        """Check what is about to go on the wire (method, host, query) against the run's mode."""
        try:
            check_request(call.mode, call.method, self._endpoints.host_kind(base_url) or f"unknown ({base_url})",
                          call.path_and_query.partition("?")[2])
        except ModeViolation as refused:
            if self._on_refused is not None:
                self._on_refused(refused)
            raise

    async def _exchange(self, transport: Http11Transport, base_url: str, call: ListingCall,
                        token: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The call on our own wire layer, without an httpx.Request and Response per call (~80 µs
        of URL parsing, header normalising and stream wrapping): the headers httpx would send."""
        site = self._sites.get(base_url)
        if site is None:
            site = self._sites[base_url] = _Site.of(base_url)
        headers = [(b"host", site.host), *_RAW_STANDARD_HEADERS, (b"x-amz-access-token", token.encode())]
        body = call.body  # PUT carries one, DELETE none
        if body is not None:
            headers += [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        status, raw_headers, content = await transport.exchange(
            call.method, site.origin, site.prefix + call.path_and_query.encode("ascii"), headers, body or b"",
            self._timeout_extension)
        if any(name.lower() == b"content-encoding" for name, _ in raw_headers):
            # Compressed although not asked for (a proxy): httpx's decoders, as on any transport.
            content = httpx.Response(status, headers=raw_headers, content=content).content
        return status, raw_headers, content

    async def _through_httpx(self, transport: httpx.AsyncBaseTransport, base_url: str, call: ListingCall,
                             token: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The call as an httpx.Request, for any other transport (one given by a test or a user)."""
        headers = [*STANDARD_HEADERS, ("x-amz-access-token", token)]
        if call.body is not None:
            headers.append(("content-type", "application/json"))
        request = httpx.Request(call.method, base_url + call.path_and_query, headers=headers, content=call.body,
                                extensions={"timeout": self._timeout_extension})
        response = await transport.handle_async_request(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return response.status_code, response.headers.raw, content


_RAW_STANDARD_HEADERS = tuple((name.encode(), value.encode()) for name, value in STANDARD_HEADERS)


@dataclass(frozen=True)
class _Site:
    """Where a base URL sends requests, parsed once by httpx itself."""

    origin: tuple[str, str, int]  # scheme, host, port: the transport's connection key
    host: bytes                   # the Host header httpx sends for it
    prefix: bytes                 # its path (e.g. /sandbox behind a proxy), no trailing slash

    @classmethod
    def of(cls, base_url: str) -> _Site:
        probe = httpx.Request("GET", base_url)
        url = probe.url
        return cls(origin_of(url),
                   next(value for name, value in probe.headers.raw if name.lower() == b"host"),
                   url.raw_path.split(b"?", 1)[0].rstrip(b"/"))


class _Connections:
    """Idle single-connection transports of one origin; at most `limit` exist, FIFO waiting beyond."""

    def __init__(self, factory: Callable[[], httpx.AsyncBaseTransport], limit: int) -> None:
        self._factory = factory
        self._limit = max(1, limit)
        self._idle: list[httpx.AsyncBaseTransport] = []
        self._all: list[httpx.AsyncBaseTransport] = []
        self._waiters: asyncio.Queue[httpx.AsyncBaseTransport] = asyncio.Queue()
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def connection(self):
        if self._idle:
            transport = self._idle.pop()
        elif not self._waiters.empty():  # handed to a waiter that was cancelled meanwhile
            transport = self._waiters.get_nowait()
        elif len(self._all) < self._limit:
            transport = self._factory()
            self._all.append(transport)
        else:
            self._waiting += 1
            try:
                transport = await self._waiters.get()
            finally:
                self._waiting -= 1
        try:
            yield transport
        finally:
            if self._waiting > self._waiters.qsize():
                self._waiters.put_nowait(transport)  # hand over directly: FIFO, no thundering herd
            else:
                self._idle.append(transport)

    async def aclose(self) -> None:
        for transport in self._all:
            await transport.aclose()


def _json(content: bytes) -> dict | None:
    if not content:
        return None
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {"errors": [{"code": "unparsable_response", "message": content[:300].decode("utf-8", "replace")}]}
    return value if isinstance(value, dict) else None
