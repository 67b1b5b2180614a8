"""The SP-API client writes Listings calls straight onto its own wire layer; what reaches the
server is what httpx itself would send for the same call (request target, Host, Content-Length,
headers, body), behind a base URL with a path or on a default port."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from catalog_sync.submitter.accounts import Account
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.http_transport import Http11Transport
from catalog_sync.submitter.listing_requests import build_call
from catalog_sync.submitter.spapi_client import ClientSettings, HttpxSpApi


class RecordingServer:
    """A real TCP server that records every request and answers like Amazon (token or listing)."""

    def __init__(self, *, chunked: bool = False, close_after_answer: bool = False) -> None:
        self.requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
        self.listing_connections: set[int] = set()  # numbers of connections that carried a Listings call
        self._opened = 0
        self._close_after_answer = close_after_answer  # as a server whose keep-alive timeout ran out
        self._chunked = chunked  # answer bodies chunked (as uvicorn sends them), else with a length
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """After the clients closed their connections: every connection's handler has ended."""
        self._server.close()
        await asyncio.wait_for(asyncio.gather(*self._connections), 5)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(asyncio.current_task())
        self._opened += 1
        connection = self._opened
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):  # the client closed its keep-alive connection
                break
            line, *fields = head[:-4].split(b"\r\n")
            headers = {}
            for field in fields:
                name, value = field.split(b":", 1)
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
            if b"/auth/o2/token" in line:
                answer, extra = b'{"access_token":"Atza|token","expires_in":3600}', b""
            else:
                self.requests.append((line, headers, body))
                self.listing_connections.add(connection)
                answer, extra = b'{"sku":"x","status":"ACCEPTED","submissionId":"s1","issues":[]}', \
                    b"x-amzn-RequestId: r-1\r\n"
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


def ready(**fields) -> dict:
    return {"seller_id": "A1/SELLER", "reference": "HB 100%/é", "marketplace_id": "ATVPDKIKX0DER",
            "product_type": "HAIRBAND", "mode": "production", "operation": "upsert",
            "item_type": "product", "requirements": "LISTING",
            "attributes_json": '{"item_name":[{"value":"Satin — “Headband”"}]}', **fields}


@pytest.mark.parametrize("event", [ready(), ready(operation="delete"), ready(mode="preview"), ready(mode="test"),
                                   ready(mode="test", operation="delete")],
                         ids=["put", "delete", "preview", "sandbox-put", "sandbox-delete"])
def test_the_wire_request_is_what_httpx_would_send(event):
    prefix = "/sandbox" if event["mode"] == "test" else ""  # a base path, as behind a proxy

    async def scenario():
        server = RecordingServer()
        port = await server.start()
        base = f"http://127.0.0.1:{port}{prefix}"
        client = HttpxSpApi(ClientSettings(token_url=f"http://127.0.0.1:{port}/auth/o2/token"), endpoints=local_hosts(port))
        account = Account("A1/SELLER", "app", "secret", "Atzr|refresh")
        call = build_call(event)
        transports = [Http11Transport(), httpx.AsyncHTTPTransport()]  # ours, httpx's own (httpcore)
        ours, theirs = [await client.send(t, account, base, call) for t in transports]
        for transport in transports:
            await transport.aclose()
        await client.aclose()
        await server.close()
        return server.requests, ours, theirs

    (line, headers, body), (their_line, their_headers, their_body) = asyncio.run(scenario())[0]
    assert line == their_line and body == their_body
    assert headers == their_headers
    assert line.startswith(f"{event.get('operation') == 'delete' and 'DELETE' or 'PUT'} {prefix}/listings/".encode())
    if body:
        assert orjson.loads(body)["productType"] == "HAIRBAND"


def test_the_answer_reads_the_same_on_both_wire_layers():
    async def scenario():
        server = RecordingServer()
        port = await server.start()
        client = HttpxSpApi(ClientSettings(token_url=f"http://127.0.0.1:{port}/auth/o2/token"), endpoints=local_hosts(port))
        account = Account("A1/SELLER", "app", "secret", "Atzr|refresh")
        call = build_call(ready())
        transports = [Http11Transport(), httpx.AsyncHTTPTransport()]
        answers = [await client.send(t, account, f"http://127.0.0.1:{port}", call) for t in transports]
        for transport in transports:
            await transport.aclose()
        await client.aclose()
        await server.close()
        return answers

    ours, theirs = asyncio.run(scenario())
    assert ours == theirs
    assert (ours.status, ours.request_id, ours.body["status"]) == (200, "r-1", "ACCEPTED")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_one_keep_alive_connection_carries_call_after_call(chunked):
    """Each call used to open a new connection once the answer was read (httptools says 'not
    keep-alive' after the message is complete): ~11,000 connections for 20,000 items in the
    pipeline benchmark, a TCP handshake and an accept on both sides each time."""
    async def scenario():
        server = RecordingServer(chunked=chunked)
        port = await server.start()
        client = HttpxSpApi(ClientSettings(token_url=f"http://127.0.0.1:{port}/auth/o2/token"), endpoints=local_hosts(port))
        account = Account("A1/SELLER", "app", "secret", "Atzr|refresh")
        transport = Http11Transport()
        answers = [await client.send(transport, account, f"http://127.0.0.1:{port}", build_call(ready(reference=f"HB-{n}")))
                   for n in range(5)]
        await transport.aclose()
        await client.aclose()
        await server.close()
        return answers, server

    answers, server = asyncio.run(scenario())
    assert [a.body["status"] for a in answers] == ["ACCEPTED"] * 5
    assert len(server.requests) == 5
    assert len(server.listing_connections) == 1


async def idle_connections_closed(transport: Http11Transport) -> None:
    while not all(p.closed for kept in transport._idle.values() for p in kept):
        await asyncio.sleep(0.001)


def test_a_connection_the_server_closed_while_idle_is_not_used_again():
    """A keep-alive connection the server closed meanwhile (uvicorn after 30 s idle, Amazon after
    its own timeout) is dropped from the idle list: the next call opens a fresh one at once
    instead of writing to a closed socket and waiting out the read timeout."""
    async def scenario():
        server = RecordingServer(close_after_answer=True)
        port = await server.start()
        client = HttpxSpApi(ClientSettings(token_url=f"http://127.0.0.1:{port}/auth/o2/token", read_timeout_s=5), endpoints=local_hosts(port))
        account = Account("A1/SELLER", "app", "secret", "Atzr|refresh")
        transport = Http11Transport()
        answers = []
        for n in range(3):
            answers.append(await client.send(transport, account, f"http://127.0.0.1:{port}",
                                             build_call(ready(reference=f"HB-{n}"))))
            await asyncio.wait_for(idle_connections_closed(transport), 5)  # the server's close arrived
        await transport.aclose()
        await client.aclose()
        await server.close()
        return answers, server

    answers, server = asyncio.run(scenario())
    # A call written to the closed socket waits out its read timeout (5 s here) and answers "timeout".
    assert [a.status for a in answers] == [200, 200, 200], [a.failure for a in answers]
    assert len(server.listing_connections) == 3
