"""A lean HTTP/1.1 keep-alive transport for httpx: asyncio protocols plus httptools' C parser.

httpx stays the client API (requests, timeouts, exceptions); only the wire layer is swapped.
httpcore spends more CPU per request than the rest of a submission (h11 in pure Python, a
socket-readability probe before every reuse, pool bookkeeping); at 1,000+ SP-API calls per second
in one process that is the bottleneck. This transport keeps idle connections per origin in a
list (O(1) checkout), writes each request in one `write`, parses the answer in C and maps every
failure onto httpx's exception types, so callers cannot tell the difference.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping

import httptools
import httpx

_IDLE_PER_ORIGIN = 512


class _ResponseProtocol(asyncio.Protocol):
    """One TCP connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future | None = None
        self._reset()

    def _reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.complete = False
        self.keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self.status and not self.complete and not self._parser.should_keep_alive():
                # A body delimited by connection close ends here.
                self.complete = True
                self._waiter.set_result(None)
            else:
                self._fail(httpx.ReadError("connection closed before the response was complete"))

    # httptools callbacks
    def on_status(self, status: bytes) -> None:
        self.status = self._parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete, httptools answers False for every response.
        self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def roundtrip(self, payload: bytes, read_timeout: float | None) -> None:
        self._reset()
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        # A timer on the waiter, not asyncio.wait_for: that wraps every request in a task of its own.
        timer = loop.call_later(read_timeout, self._time_out, waiter) if read_timeout is not None else None
        self.transport.write(payload)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _time_out(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_exception(httpx.ReadTimeout("no complete response within the read timeout"))
            self.transport.close()

    @property
    def reusable(self) -> bool:
        """Answered in full on a keep-alive connection that neither side has closed (a server
        closes idle ones: uvicorn after 30 s, Amazon after its own timeout)."""
        return not self.closed and not self.transport.is_closing() and self.complete and self.keep_alive


def _still_open(idle: list[_ResponseProtocol]) -> _ResponseProtocol | None:
    """The newest idle connection still usable; those closed while idle are dropped."""
    while idle:
        protocol = idle.pop()
        if protocol.reusable:
            return protocol
    return None


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """The key idle connections are kept under: scheme, host and port (default ports filled in)."""
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


class Http11Transport(httpx.AsyncBaseTransport):
    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls or ssl.create_default_context()
        self._idle: dict[tuple[str, str, int], list[_ResponseProtocol]] = {}

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _ResponseProtocol:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(_ResponseProtocol, host, port,
                                       ssl=self._tls if scheme == "https" else None,
                                       server_hostname=host if scheme == "https" else None),
                timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        return protocol

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        status, headers, body = await self.exchange(request.method, origin_of(url), url.raw_path, request.headers.raw,
                                                    await request.aread(), request.extensions.get("timeout", {}))
        return httpx.Response(status, headers=headers, content=body, request=request,
                              extensions={"http_version": b"HTTP/1.1"})

    async def exchange(self, method: str, origin: tuple[str, str, int], target: bytes,
                       headers: Iterable[tuple[bytes, bytes]], body: bytes,
                       timeouts: Mapping[str, float | None]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request as given (`headers` complete: Host, Content-Length), the answer as (status,
        raw headers, body as received). What handle_async_request wraps in httpx objects, for a
        caller that needs no more: building those costs ~80 µs a call on this machine."""
        head = [f"{method} ".encode(), target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        payload = b"".join(head) + body

        idle = self._idle.setdefault(origin, [])
        while True:
            protocol = _still_open(idle)
            reused = protocol is not None
            if protocol is None:
                protocol = await self._connect(origin, timeouts.get("connect"))
            try:
                await protocol.roundtrip(payload, timeouts.get("read"))
                break
            except httpx.ReadError:
                # A keep-alive connection the server closed while idle: retry once on a fresh one.
                if reused and not protocol.status:
                    continue
                raise
        if protocol.reusable and len(idle) < _IDLE_PER_ORIGIN:
            idle.append(protocol)
        elif not protocol.closed:
            protocol.transport.close()
        return protocol.status, protocol.headers, b"".join(protocol.body)

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for protocol in connections:
                if protocol.transport is not None:
                    protocol.transport.close()
        self._idle.clear()
