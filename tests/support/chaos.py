"""Fault injection for tests: a Kafka-aware TCP proxy that can cut every broker connection, and a
driver that kill -9's and restarts worker processes.

KafkaProxy: clients bootstrap through the proxy; it rewrites the broker addresses in Metadata and
FindCoordinator responses to its own listeners (one per broker), so every later connection also
goes through it. That is needed because a broker advertises its own host:port: a plain TCP proxy
would only carry the bootstrap request. Non-flexible and flexible (compact) versions are parsed.
`cut(seconds)` closes every connection and refuses new ones (mode "reset") or holds them without
answering (mode "blackhole", a network partition) until the cut ends; `begin_cut(..., broker=)`
does that to the connections of one broker only (the others, and the brokers among themselves,
carry on). `requests_seen` counts the
requests clients sent, by API key (did a client join a consumer group?).

No Kafka client here: the protocol framing is read by hand (4-byte length prefix, request header
api_key/api_version/correlation_id), and only the broker list of two responses is rewritten.
"""

from __future__ import annotations

import asyncio
import collections
import random
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

FETCH, METADATA, FIND_COORDINATOR, JOIN_GROUP = 1, 3, 10, 11
# First flexible (compact encoding + tagged fields) version of each rewritten API.
_FLEXIBLE_FROM = {METADATA: 9, FIND_COORDINATOR: 3}


# -- Kafka protocol bits ----------------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, fmt: str):
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value[0]

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def string(self, compact: bool) -> str | None:
        n = self.uvarint() - 1 if compact else self.take(">h")
        if n < 0:
            return None
        value = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return value

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string(value: str, compact: bool) -> bytes:
    raw = value.encode("utf-8")
    return (_uvarint(len(raw) + 1) if compact else struct.pack(">h", len(raw))) + raw


Rewrite = Callable[[str, int], tuple[str, int]]


def rewrite_response(api_key: int, version: int, body: bytes, rewrite: Rewrite) -> bytes:
    """`body` is a whole response after the length prefix. Returns it with every broker address
    of a Metadata or FindCoordinator response replaced by `rewrite(host, port)`."""
    flexible = version >= _FLEXIBLE_FROM.get(api_key, 1 << 15)
    r = _Reader(body, 4)  # correlation id
    if flexible:
        r.skip_tags()  # response header v1
    if api_key == METADATA:
        if version >= 3:
            r.take(">i")  # throttle_time_ms
        out = bytearray(body[:r.pos])
        count = r.uvarint() - 1 if flexible else r.take(">i")
        out += _uvarint(count + 1) if flexible else struct.pack(">i", count)
        for _ in range(max(count, 0)):
            node = r.take(">i")
            host, port = rewrite(r.string(flexible), r.take(">i"))
            out += struct.pack(">i", node) + _string(host, flexible) + struct.pack(">i", port)
            start = r.pos
            if version >= 1:
                r.string(flexible)  # rack
            if flexible:
                r.skip_tags()
            out += body[start:r.pos]
        return bytes(out + body[r.pos:])
    if api_key == FIND_COORDINATOR:
        if version >= 1:
            r.take(">i")  # throttle_time_ms
        out = bytearray(body[:r.pos])
        if version < 4:
            r.take(">h")  # error_code
            if version >= 1:
                r.string(flexible)  # error_message
            out += body[len(out):r.pos]
            node = r.take(">i")
            host, port = rewrite(r.string(flexible), r.take(">i"))
            out += struct.pack(">i", node) + _string(host, flexible) + struct.pack(">i", port)
            return bytes(out + body[r.pos:])
        count = r.uvarint() - 1
        out += _uvarint(count + 1)
        for _ in range(max(count, 0)):
            start = r.pos
            r.string(True)  # key
            node = r.take(">i")
            out += body[start:r.pos - 4] + struct.pack(">i", node)
            host, port = rewrite(r.string(True), r.take(">i"))
            out += _string(host, True) + struct.pack(">i", port)
            start = r.pos
            r.take(">h")  # error_code
            r.string(True)  # error_message
            r.skip_tags()
            out += body[start:r.pos]
        return bytes(out + body[r.pos:])
    return body


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    return await reader.readexactly(size)


def _frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


# -- the proxy --------------------------------------------------------------------------------
@dataclass(eq=False)  # identity: links live in a set
class _Link:
    client: asyncio.StreamWriter
    address: tuple[str, int]  # the broker it leads to
    upstream: asyncio.StreamWriter | None = None
    tasks: list = field(default_factory=list)

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                transport = writer.transport
                if not transport.is_closing():
                    transport.abort()  # RST, like a broken network path, not a polite FIN
        for task in self.tasks:
            task.cancel()


class KafkaProxy:
    """Clients use `bootstrap_servers`; `cut(seconds)` drops them all for that long."""

    def __init__(self, upstream_bootstrap: str, host: str = "127.0.0.1"):
        first = upstream_bootstrap.split(",")[0].strip()
        upstream_host, _, upstream_port = first.rpartition(":")
        self._bootstrap_upstream = (upstream_host, int(upstream_port))
        self.host = host
        self._listeners: dict[tuple[str, int], tuple[asyncio.AbstractServer, int]] = {}
        self._links: set[_Link] = set()
        self._cut_mode: str | None = None
        self._cut_broker: tuple[str, int] | None = None  # None: every broker
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kafka-proxy", daemon=True)
        self.bootstrap_servers = ""
        self.connections_accepted = 0
        self.connections_dropped = 0
        self.requests_seen: collections.Counter[int] = collections.Counter()  # by api_key, e.g. JOIN_GROUP

    # lifecycle (called from the test's thread)
    def start(self) -> KafkaProxy:
        self._thread.start()
        port = self._call(self._listen(self._bootstrap_upstream))
        self.bootstrap_servers = f"{self.host}:{port}"
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> KafkaProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, coroutine, timeout_s: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    # faults
    def begin_cut(self, mode: str = "reset", broker: str | None = None) -> None:
        """reset: abort every connection and every new one; blackhole: stop answering (connections
        stay open and silent, new ones are accepted and ignored) — both until `end_cut()`. With
        `broker` ("host:port" as the cluster advertises it), only the connections to that broker."""
        if mode not in ("reset", "blackhole"):
            raise ValueError(f"unknown cut mode {mode!r}")
        address = None
        if broker is not None:
            host, _, port = broker.rpartition(":")
            address = (host, int(port))
        self._call(self._begin_cut(mode, address))

    def end_cut(self) -> None:
        self._call(self._end_cut())

    def cut(self, seconds: float, mode: str = "reset") -> threading.Thread:
        """Cut now and end the cut after `seconds` (from a timer thread, returned started)."""
        self.begin_cut(mode)
        ender = threading.Timer(seconds, self.end_cut)
        ender.daemon = True
        ender.start()
        return ender

    async def _begin_cut(self, mode: str, broker: tuple[str, int] | None = None) -> None:
        self._cut_mode, self._cut_broker = mode, broker
        if mode == "reset":
            self._drop_links()

    async def _end_cut(self) -> None:
        if self._cut_mode == "blackhole":
            self._drop_links()  # held connections time out on the client anyway; end them cleanly
        self._cut_mode = self._cut_broker = None

    def _cut(self, address: tuple[str, int]) -> str | None:
        """The cut mode that applies to connections to the broker at `address`, if any."""
        return self._cut_mode if self._cut_broker in (None, address) else None

    def _drop_links(self) -> None:
        for link in [link for link in self._links if self._cut_broker in (None, link.address)]:
            link.close()
            self.connections_dropped += 1
            self._links.discard(link)

    async def _close_all(self) -> None:
        self._cut_broker = None  # every link goes
        self._drop_links()
        for server, _port in self._listeners.values():
            server.close()
        self._listeners.clear()

    # plumbing (on the proxy's loop)
    async def _listen(self, upstream: tuple[str, int]) -> int:
        if upstream not in self._listeners:
            server = await asyncio.start_server(lambda r, w: self._serve(r, w, upstream), self.host, 0)
            self._listeners[upstream] = (server, server.sockets[0].getsockname()[1])
        return self._listeners[upstream][1]

    async def _serve(self, client_reader, client_writer, upstream: tuple[str, int]) -> None:
        self.connections_accepted += 1
        link = _Link(client_writer, upstream)
        if self._cut(upstream) == "reset":
            link.close()
            return
        self._links.add(link)
        try:
            while self._cut(upstream) == "blackhole":
                await asyncio.sleep(0.05)  # a partition: say nothing until the cut ends (then dropped)
            up_reader, link.upstream = await asyncio.open_connection(*upstream)
            pending: dict[int, tuple[int, int]] = {}
            # Aborting the client transport ends this coroutine's read; the reply pump is a task.
            link.tasks.append(asyncio.ensure_future(self._responses(up_reader, client_writer, pending, link)))
            while True:
                frame = await _read_frame(client_reader)
                api_key, version, correlation = struct.unpack_from(">hhi", frame)
                self.requests_seen[api_key] += 1
                if api_key in (METADATA, FIND_COORDINATOR):
                    pending[correlation] = (api_key, version)
                await self._wait_if_blackholed(upstream)
                link.upstream.write(_frame(frame))
                await link.upstream.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            link.close()
            self._links.discard(link)

    async def _responses(self, up_reader, client_writer, pending, link: _Link) -> None:
        try:
            while True:
                frame = await _read_frame(up_reader)
                correlation = struct.unpack_from(">i", frame)[0]
                request = pending.pop(correlation, None)
                if request is not None:
                    frame = await self._rewrite(*request, frame)
                await self._wait_if_blackholed(link.address)
                client_writer.write(_frame(frame))
                await client_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            link.close()

    async def _wait_if_blackholed(self, address: tuple[str, int]) -> None:
        while self._cut(address) == "blackhole":
            await asyncio.sleep(0.05)

    async def _rewrite(self, api_key: int, version: int, frame: bytes) -> bytes:
        seen: list[tuple[str, int]] = []
        rewrite_response(api_key, version, frame, lambda h, p: seen.append((h, p)) or (h, p))
        ports = {address: await self._listen(address) for address in seen}
        return rewrite_response(api_key, version, frame, lambda h, p: (self.host, ports[(h, p)]))


# -- killing workers ----------------------------------------------------------------------------
@dataclass
class ChaosEvent:
    at_s: float  # since the driver started
    wall: float  # time.time(), to line up with other processes' logs
    name: str
    action: str  # kill | restart


class ProcessChaos:
    """From a background thread until `stop()`: every `interval_s` (a (low, high) pair draws each
    pause at random) kill -9 one of `targets` and restart it at once. Victims come in shuffled
    rounds, so every service is hit in an unpredictable order. `targets` maps a name to an object
    with `kill()` and `start()` (runtime.processes.ServiceProcess); `ready(name)` (optional) is
    waited on after each restart so kills hit a running member, not one still starting."""

    def __init__(self, targets: dict, *, interval_s: float | tuple[float, float] = 3.0, seed: int | None = None,
                 ready: Callable[[str], None] | None = None, names: Sequence[str] | None = None):
        self.targets = targets
        self.interval_s = interval_s
        self.ready = ready
        self.names = list(names or targets)
        self.random = random.Random(seed)
        self.events: list[ChaosEvent] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-chaos", daemon=True)
        self._started = 0.0

    @property
    def kills(self) -> int:
        return sum(1 for e in self.events if e.action == "kill")

    def kills_of(self, name: str) -> int:
        return sum(1 for e in self.events if e.action == "kill" and e.name == name)

    def start(self) -> ProcessChaos:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _pause(self) -> float:
        if isinstance(self.interval_s, tuple):
            return self.random.uniform(*self.interval_s)
        return self.interval_s

    def _run(self) -> None:
        # Round-robin over a shuffled order so every service is hit, in an unpredictable order.
        order: list[str] = []
        try:
            while not self._stop.wait(self._pause()):
                if not order:
                    order = self.random.sample(self.names, len(self.names))
                name = order.pop()
                self.kill_and_restart(name)
        except BaseException as exc:  # surfaced by the test through `errors`
            self.errors.append(exc)

    def _record(self, name: str, action: str) -> None:
        self.events.append(ChaosEvent(time.monotonic() - self._started, time.time(), name, action))

    def kill_and_restart(self, name: str) -> None:
        target = self.targets[name]
        target.kill()
        self._record(name, "kill")
        target.start()
        self._record(name, "restart")
        if self.ready is not None:
            self.ready(name)
