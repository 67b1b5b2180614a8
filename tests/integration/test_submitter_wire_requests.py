"""What a real server receives from the SP-API client, byte for byte: method, request target (the
SKU percent-encoded exactly once), query, headers and body; connections kept alive, at most
SPAPI_MAX_CONNECTIONS of them per host, and an idle one the server closed not used again;
redirects not followed; proxies from HTTP_PROXY / HTTPS_PROXY / NO_PROXY; pool and write
timeouts answering `timeout` instead of hanging."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import defaultdict
from urllib.parse import urlsplit

import orjson
import pytest

from catalog_sync.amazon_emulator.emulator import EmulatorConfig
from catalog_sync.amazon_emulator.server import start_in_thread
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.submitter.accounts import Account
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.listing_requests import build_call
from catalog_sync.submitter.spapi_client import USER_AGENT, ClientSettings, SpApiClient

ACCOUNT = Account("A1/SELLER", "app", "secret", "Atzr|refresh")
ACCEPTED = b'{"sku":"x","status":"ACCEPTED","submissionId":"s1","issues":[]}'


def parse_head(head: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    line, *fields = head[:-4].split(b"\r\n")
    headers = {}
    for field in fields:
        name, value = field.split(b":", 1)
        headers[name.strip().lower()] = value.strip()
    return line, headers


class RecordingServer:
    """A real TCP server that records every request and answers like Amazon (token or listing).

    `close_after_answer`: closes each connection once answered, as a server whose keep-alive
    timeout ran out. `hold`: Listings answers wait until it is set. `answer`: a raw answer to
    send instead of ACCEPTED."""

    def __init__(self, *, chunked: bool = False, close_after_answer: bool = False,
                 hold: asyncio.Event | None = None, answer: bytes | None = None) -> None:
        self.requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
        self.request_connections: list[int] = []  # the number of the connection each request came on
        self.arrived = asyncio.Event()  # a Listings request arrived
        self._ended: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self._opened = 0
        self._close_after_answer = close_after_answer
        self._chunked = chunked  # answer bodies chunked (as uvicorn sends them), else with a length
        self._hold = hold
        self._answer = answer
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """After the clients closed their connections: every connection's handler has ended."""
        self._server.close()
        await asyncio.wait_for(asyncio.gather(*self._connections), 5)
        await self._server.wait_closed()

    @property
    def listing_connections(self) -> set[int]:
        return set(self.request_connections)

    async def connection_ended(self, number: int) -> None:
        await self._ended[number].wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(asyncio.current_task())
        self._opened += 1
        connection = self._opened
        try:
            await self._answer_requests(connection, reader, writer)
        finally:
            self._ended[connection].set()

    async def _answer_requests(self, connection: int, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
            except (asyncio.IncompleteReadError, ConnectionError):  # the client closed its keep-alive connection
                break
            body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
            if b"/auth/o2/token" in line:
                answer, extra = b'{"access_token":"Atza|token","expires_in":3600}', b""
            else:
                self.requests.append((line, headers, body))
                self.request_connections.append(connection)
                self.arrived.set()
                if self._hold is not None:
                    await self._hold.wait()
                if self._answer is not None:
                    writer.write(self._answer)
                    break
                answer, extra = ACCEPTED, b"x-amzn-RequestId: r-1\r\nx-amzn-RateLimit-Limit: 5.0\r\n"
            if self._chunked:
                framed = b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(answer), answer)
            else:
                framed = b"content-length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + extra + framed)
            await writer.drain()
            if self._close_after_answer:
                break
        writer.close()
        await writer.wait_closed()


def local_hosts(port: int) -> Endpoints:
    return Endpoints(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/sandbox")


def local_client(port: int, **settings) -> SpApiClient:
    return SpApiClient(ClientSettings(token_url=f"http://127.0.0.1:{port}/auth/o2/token", **settings),
                       endpoints=local_hosts(port))


def ready(**fields) -> dict:
    return {"seller_id": "A1/SELLER", "reference": "HB 100%/é@:+?#,", "marketplace_id": "ATVPDKIKX0DER",
            "product_type": "HAIRBAND", "mode": "production", "operation": "upsert",
            "item_type": "product", "requirements": "LISTING",
            "attributes_json": '{"item_name":[{"value":"Satin — “Headband”"}]}', **fields}


# The SKU "HB 100%/é@:+?#," of seller "A1/SELLER", each byte encoded once (UTF-8), none decoded again.
ITEM = "/listings/2021-08-01/items/A1%2FSELLER/HB%20100%25%2F%C3%A9%40%3A%2B%3F%23%2C"
WIRE = {  # event -> (request line, has a body)
    "put": (f"PUT {ITEM}?marketplaceIds=ATVPDKIKX0DER&includedData=issues&issueLocale=en_US", True),
    "delete": (f"DELETE {ITEM}?marketplaceIds=ATVPDKIKX0DER", False),
    "preview": (f"PUT {ITEM}?marketplaceIds=ATVPDKIKX0DER&mode=VALIDATION_PREVIEW"
                "&includedData=issues%2Cidentifiers&issueLocale=en_US", True),
    "sandbox-put": (f"PUT /sandbox{ITEM}?marketplaceIds=ATVPDKIKX0DER&includedData=issues&issueLocale=en_US", True),
    "sandbox-delete": (f"DELETE /sandbox{ITEM}?marketplaceIds=ATVPDKIKX0DER", False),
}
EVENTS = {"put": ready(), "delete": ready(operation="delete"), "preview": ready(mode="preview"),
          "sandbox-put": ready(mode="test"), "sandbox-delete": ready(mode="test", operation="delete")}


@pytest.mark.parametrize("name", list(WIRE))
def test_the_server_receives_the_call_exactly_as_amazon_expects_it(name):
    event = EVENTS[name]
    line, has_body = WIRE[name]

    async def scenario():
        server = RecordingServer()
        port = await server.start()
        client = local_client(port)
        base = f"http://127.0.0.1:{port}" + ("/sandbox" if event["mode"] == "test" else "")
        answer = await client.call(ACCOUNT, base, build_call(event))
        await client.aclose()
        await server.close()
        return port, server.requests, answer

    port, [(got_line, headers, body)], answer = asyncio.run(scenario())
    assert got_line == f"{line} HTTP/1.1".encode()
    assert headers[b"host"] == f"127.0.0.1:{port}".encode()
    assert headers[b"user-agent"] == USER_AGENT.encode()
    assert headers[b"accept"] == b"application/json"
    assert headers[b"x-amz-access-token"] == b"Atza|token"
    assert not {b"authorization", b"cookie", b"transfer-encoding"} & set(headers)
    if has_body:
        assert headers[b"content-type"] == b"application/json"
        assert int(headers[b"content-length"]) == len(body)
        sent = orjson.loads(body)
        assert sent == {"productType": "HAIRBAND", "requirements": "LISTING",
                        "attributes": {"item_name": [{"value": "Satin — “Headband”"}]}}
    else:
        assert body == b"" and headers.get(b"content-length", b"0") == b"0"
    assert (answer.status, answer.request_id, answer.rate_limit, answer.body["status"]) == (200, "r-1", "5.0", "ACCEPTED")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_one_keep_alive_connection_carries_call_after_call(chunked):
    async def scenario():
        server = RecordingServer(chunked=chunked)
        port = await server.start()
        client = local_client(port)
        answers = [await client.call(ACCOUNT, f"http://127.0.0.1:{port}", build_call(ready(reference=f"HB-{n}")))
                   for n in range(5)]
        await client.aclose()
        await server.close()
        return answers, server

    answers, server = asyncio.run(scenario())
    assert [a.body["status"] for a in answers] == ["ACCEPTED"] * 5
    assert len(server.requests) == 5
    assert len(server.listing_connections) == 1


def test_at_most_max_connections_are_opened_to_a_host():
    async def scenario():
        server = RecordingServer()
        port = await server.start()
        client = local_client(port, max_connections=2)
        calls = [build_call(ready(reference=f"HB-{n}")) for n in range(6)]
        answers = await asyncio.gather(*(client.call(ACCOUNT, f"http://127.0.0.1:{port}", c) for c in calls))
        await client.aclose()
        await server.close()
        return answers, server

    answers, server = asyncio.run(scenario())
    assert [a.status for a in answers] == [200] * 6
    # All six start at once: without the limit each would open its own connection.
    assert len(server.listing_connections) == 2


def test_a_connection_the_server_closed_while_idle_is_not_used_again():
    """A keep-alive connection the server closed meanwhile (uvicorn after 5 s idle, Amazon after
    its own timeout) is not written to: the next call goes out on a fresh one and is answered,
    instead of failing or waiting out the read timeout."""
    async def scenario():
        server = RecordingServer(close_after_answer=True)
        port = await server.start()
        client = local_client(port, read_timeout_s=5)
        answers = []
        for n in range(3):
            started = time.monotonic()
            answers.append((await client.call(ACCOUNT, f"http://127.0.0.1:{port}", build_call(ready(reference=f"HB-{n}"))),
                            time.monotonic() - started))
            await asyncio.wait_for(server.connection_ended(server.request_connections[-1]), 5)  # closed while idle
        await client.aclose()
        await server.close()
        return answers, server

    answers, server = asyncio.run(scenario())
    assert [a.status for a, _ in answers] == [200, 200, 200], [a.failure for a, _ in answers]
    assert max(seconds for _, seconds in answers) < 4  # none waited for its read timeout
    assert len(server.listing_connections) == 3


def test_a_redirect_is_not_followed():
    """A followed redirect would be a Listings request the mode guard never checked."""
    async def scenario():
        elsewhere = RecordingServer()
        other = await elsewhere.start()
        server = RecordingServer(answer=b"HTTP/1.1 307 Temporary Redirect\r\ncontent-length: 0\r\n"
                                        b"location: http://127.0.0.1:%d/listings/2021-08-01/items/X/Y\r\n\r\n" % other)
        port = await server.start()
        client = local_client(port)
        answer = await client.call(ACCOUNT, f"http://127.0.0.1:{port}", build_call(ready()))
        await client.aclose()
        await server.close()
        await elsewhere.close()
        return answer, elsewhere

    answer, elsewhere = asyncio.run(scenario())
    assert answer.status == 307 and elsewhere.requests == []


# ---- timeouts ----------------------------------------------------------------------------
def test_a_call_waiting_for_a_free_connection_answers_timeout_after_the_pool_timeout():
    async def scenario():
        hold = asyncio.Event()
        server = RecordingServer(hold=hold)
        port = await server.start()
        client = local_client(port, max_connections=1, pool_timeout_s=0.2)
        base = f"http://127.0.0.1:{port}"
        first = asyncio.ensure_future(client.call(ACCOUNT, base, build_call(ready(reference="HB-1"))))
        await server.arrived.wait()  # the only connection is busy with the first call
        started = time.monotonic()
        second = await asyncio.wait_for(client.call(ACCOUNT, base, build_call(ready(reference="HB-2"))), 5)
        waited = time.monotonic() - started
        hold.set()
        first = await first
        await client.aclose()
        await server.close()
        return first, second, waited, server

    first, second, waited, server = asyncio.run(scenario())
    assert (second.status, second.failure) == (None, "timeout") and "no free connection" in second.detail
    assert 0.2 <= waited < 2
    assert first.status == 200
    assert len(server.requests) == 1 and b"/HB-1?" in server.requests[0][0]  # the second was never sent


def test_a_body_the_server_stops_reading_answers_timeout():
    """aiohttp has no write timeout and starts its read timeout only once the body is written:
    without a bound on the whole call, a peer that stops reading would hold the call forever."""
    async def scenario():
        async def never_read(reader, writer):
            await stop.wait()  # reads nothing: the socket buffers fill and the client's write stalls
            writer.close()

        stop = asyncio.Event()
        server = await asyncio.start_server(never_read, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        token_server = RecordingServer()
        token_port = await token_server.start()
        client = SpApiClient(ClientSettings(token_url=f"http://127.0.0.1:{token_port}/auth/o2/token",
                                            connect_timeout_s=0.5, write_timeout_s=0.3, read_timeout_s=0.3),
                             endpoints=local_hosts(port))
        huge = json.dumps({"item_name": [{"value": "x" * 32_000_000}]})  # far beyond loopback socket buffers
        started = time.monotonic()
        answer = await asyncio.wait_for(
            client.call(ACCOUNT, f"http://127.0.0.1:{port}", build_call(ready(attributes_json=huge))), 10)
        elapsed = time.monotonic() - started
        stop.set()
        await client.aclose()
        server.close()
        await server.wait_closed()
        await token_server.close()
        return answer, elapsed

    answer, elapsed = asyncio.run(scenario())
    assert answer.failure == "timeout"
    assert elapsed < 5  # connect + write + read = 1.1 s, plus load


# ---- proxies -----------------------------------------------------------------------------
class ForwardProxy:
    """An HTTP forward proxy on loopback that records each request it is asked to forward: an
    absolute-form request goes to its origin (one per connection); CONNECT is refused with 403."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, dict[bytes, bytes]]] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.requests.append((line, headers))
        method, target, version = line.split(b" ")
        if method == b"CONNECT":
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        else:
            body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
            url = urlsplit(target.decode())
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
            forwarded = {k: v for k, v in headers.items() if k not in (b"proxy-authorization", b"connection")}
            up_writer.write(b"%s %s %s\r\n" % (method, (url.path + (f"?{url.query}" if url.query else "")).encode(),
                                               version)
                            + b"".join(b"%s: %s\r\n" % item for item in forwarded.items())
                            + b"connection: close\r\n\r\n" + body)
            writer.write(await up_reader.read())  # the origin closes after its answer
            up_writer.close()
        await writer.drain()
        writer.close()


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD")


@pytest.fixture
def proxy_env(monkeypatch):
    """Only the proxy variables a test sets (lower-case ones would win over upper-case)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def emulator():
    with start_in_thread(EmulatorConfig(accounts=LwaAccounts.of([ACCOUNT]))) as running:
        yield running


def through_proxy(emulator, env, environment: dict[str, str], sku: str, base_url: str | None = None) -> tuple:
    """One call with `environment` set ({proxy} stands for the proxy's address); the answer and
    what the proxy was asked to forward."""
    async def scenario():
        proxy = ForwardProxy()
        port = await proxy.start()
        for name, value in environment.items():
            env.setenv(name, value.format(proxy=f"127.0.0.1:{port}"))
        client = SpApiClient(ClientSettings(token_url=emulator.token_url, connect_timeout_s=2),
                             endpoints=Endpoints(emulator.url, emulator.sandbox_url, emulator.token_url))
        answer = await client.call(ACCOUNT, base_url or emulator.url, build_call(ready(reference=sku)))
        await client.aclose()
        await proxy.close()
        return answer, proxy.requests

    return asyncio.run(scenario())


def test_http_proxy_carries_login_and_listings_calls_with_its_credentials(emulator, proxy_env):
    answer, seen = through_proxy(emulator, proxy_env, {"HTTP_PROXY": "http://egress:s3cret@{proxy}"}, "PROXIED-1")
    assert answer.status == 200 and answer.request_id  # Amazon's answer, through the proxy
    lines = [line for line, _ in seen]
    assert lines == [f"POST {emulator.token_url} HTTP/1.1".encode(),
                     f"PUT {emulator.url}/listings/2021-08-01/items/A1%2FSELLER/PROXIED-1"
                     "?marketplaceIds=ATVPDKIKX0DER&includedData=issues&issueLocale=en_US HTTP/1.1".encode()]
    assert {headers[b"proxy-authorization"] for _, headers in seen} == {b"Basic " + base64.b64encode(b"egress:s3cret")}
    assert [r["status"] for r in emulator.requests() if r.get("sku") == "PROXIED-1"] == [200]


def test_no_proxy_hosts_bypass_the_proxy(emulator, proxy_env):
    answer, seen = through_proxy(emulator, proxy_env, {"HTTP_PROXY": "http://{proxy}", "NO_PROXY": "localhost,127.0.0.1"},
                                 "DIRECT-1")
    assert answer.status == 200 and seen == []
    assert [r["status"] for r in emulator.requests() if r.get("sku") == "DIRECT-1"] == [200]


def test_https_proxy_carries_calls_to_amazons_https_hosts(emulator, proxy_env):
    """The proxy is asked to tunnel to Amazon's production host (and refuses here, so nothing
    leaves this machine): the call answers connection_error, without the proxy's password."""
    answer, seen = through_proxy(emulator, proxy_env, {"HTTPS_PROXY": "http://egress:s3cret@{proxy}"}, "TUNNELLED-1",
                                 "https://sellingpartnerapi-na.amazon.com")
    assert [line for line, _ in seen] == [b"CONNECT sellingpartnerapi-na.amazon.com:443 HTTP/1.1"]
    assert seen[0][1][b"proxy-authorization"] == b"Basic " + base64.b64encode(b"egress:s3cret")
    assert (answer.status, answer.failure) == (None, "connection_error")
    assert "403" in answer.detail and "s3cret" not in answer.detail
