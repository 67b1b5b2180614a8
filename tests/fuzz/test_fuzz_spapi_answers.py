"""Whatever Amazon's side of the wire does — bodies that are not JSON or miss fields, HTML error
pages, wrong content types, huge bodies, broken encodings, resets, silence — the submitter's
SP-API client and classification turn it into a SubmissionCompleted outcome; nothing raises.

A small raw HTTP server on a free port plays Amazon (and Login with Amazon), so any byte
sequence can be answered over a real socket."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import struct
import threading
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.submitter.accounts import Account, Accounts
from catalog_sync.submitter.classification import RetryPolicy
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.outcomes import completed_event
from catalog_sync.submitter.spapi_client import ClientSettings, SpApiClient
from catalog_sync.submitter.submission import SpApiPorts, Submitter

CODEC = AvroCodec()
OUTCOMES = {"accepted", "valid", "deleted", "invalid", "rejected", "failed", "preview_not_sent"}
TOKEN_OK = json.dumps({"access_token": "Atza|fuzz", "expires_in": 3600, "token_type": "bearer"}).encode()
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
Action = bytes | str  # raw response bytes, or "reset" | "close" | "hang"


def response(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
             content_type: str | None = "application/json") -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{k}: {v}" for k, v in headers or []]
    if not any(k.lower() == "content-length" for k, _ in headers or []):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class FakeAmazon:
    """Raw HTTP on 127.0.0.1: `token` answers POST /auth/o2/token, `listings` every other request."""

    def __init__(self) -> None:
        self.token: Callable[[], Action] = lambda: response(200, TOKEN_OK)
        self.listings: Callable[[], Action] = lambda: response(200, b'{"status":"ACCEPTED","submissionId":"s1"}')
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._open: list[socket.socket] = []
        self._stopped = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            self.requests += 1
            action = self.token() if head.split(b" ", 2)[1].startswith(b"/auth/o2/token") else self.listings()
            if action == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif action == "hang":
                self._stopped.wait(30)
            elif action != "close":
                conn.sendall(action)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()
        for conn in self._open:
            conn.close()


@pytest.fixture(scope="module")
def amazon():
    server = FakeAmazon()
    yield server
    server.close()


def ready(mode: str = "production", operation: str = "upsert") -> dict:
    return {"event_id": "ev-1", "event_time": None, "run_id": "run-1", "mode": mode, "reference": "HB-1",
            "item_type": "product", "operation": operation, "seller_id": "A3SELLER", "marketplace_id": "ATVPDKIKX0DER",
            "product_type": "HAIRBAND", "requirements": "LISTING", "parent_reference": None,
            "attributes_json": '{"item_name":[{"value":"Band"}]}', "changed_at": None, "content_hash": "h1"}


def submit(amazon: FakeAmazon, event: dict | None = None):
    """One submission through the real client: at most 2 attempts, 0.5 s read timeout."""
    async def main():
        client = SpApiClient(ClientSettings(token_url=f"{amazon.url}/auth/o2/token", connect_timeout_s=2.0,
                                           read_timeout_s=0.5), endpoints=Endpoints(amazon.url, amazon.url + "/sandbox"))
        submitter = Submitter(SpApiPorts(accounts=Accounts({"A3SELLER": Account("A3SELLER", "app", "secret", "Atzr|r")}),
                                         transport=client, endpoints=Endpoints(amazon.url, amazon.url + "/sandbox")),
                              policy=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02))
        try:
            return await submitter.submit(event or ready())
        finally:
            await client.aclose()

    submitted = asyncio.run(main())
    result = submitted.result
    assert result.outcome in OUTCOMES, result
    event = completed_event(submitted.ready, result, submitted.endpoint)
    CODEC.decode(CODEC.encode("SubmissionCompleted", {**event, "event_time": _now()}))  # the worker can publish it
    if result.status == "error":
        assert result.error_code or result.error_message, result
    return result


def _now():
    from catalog_sync.runtime.events import utc_now

    return utc_now()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=10)
amazon_like = st.fixed_dictionaries({}, optional={
    "status": st.sampled_from(["ACCEPTED", "VALID", "INVALID", "accepted", ""]) | json_values,
    "submissionId": st.text(max_size=10) | json_values,
    "sku": json_values,
    "issues": st.lists(st.fixed_dictionaries({}, optional={
        "code": json_values, "message": json_values, "severity": st.sampled_from(["ERROR", "WARNING"]) | json_values,
        "attributeNames": json_values, "categories": json_values}) | json_values, max_size=3) | json_values,
    "errors": st.lists(st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values,
                                                            "details": json_values}) | json_values, max_size=2)
    | json_values,
})
bodies = st.one_of(
    amazon_like.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"", HTML_502, b"\xff\xfe\xfd", b'{"status": "ACCEPTED"', b"null", b"[]", b"NaN",
                     b'{"status":"ACCEPTED","submissionId":"' + b"s" * 3_000_000 + b'"}',
                     b'{"errors":[{"code":"InternalFailure","message":"' + "\u00e9".encode("latin-1") + b'"}]}']),
)
statuses = st.sampled_from([200, 201, 202, 204, 301, 302, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502,
                            503, 504, 599, 999])
content_types = st.sampled_from([None, "application/json", "text/html; charset=utf-8", "text/plain",
                                 "application/octet-stream", "application/json; charset=latin-1"])
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=40)
extra_headers = st.lists(st.tuples(st.sampled_from(["x-amzn-RequestId", "x-amzn-RateLimit-Limit", "Retry-After"]),
                                   header_text | st.sampled_from(["nan", "inf", "-1", "0", "1e309", "5.0"])),
                         max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(status=statuses, body=bodies, content_type=content_types, headers=extra_headers,
       operation=st.sampled_from(["upsert", "delete"]), mode=st.sampled_from(["production", "preview", "test"]))
def test_any_http_answer_becomes_an_outcome(amazon, status, body, content_type, headers, operation, mode):
    amazon.listings = lambda: response(status, body, headers, content_type)
    if (mode, operation) == ("preview", "delete"):  # never sent, whatever Amazon would answer
        assert submit(amazon, ready(mode, operation)).outcome == "preview_not_sent"
        return
    result = submit(amazon, ready(mode, operation))
    if status == 204 and body:  # a 204 cannot carry content (RFC 9110 §15.3.5): a broken answer, retried
        assert result.outcome == "failed" and result.error_code == "connection_error"
    elif status != 200:
        assert result.status == "error" and result.http_status == status


@pytest.mark.parametrize("action, code", [
    ("reset", "connection_error"), ("close", "connection_error"), ("hang", "timeout"),
    (b"this is not HTTP at all\r\n\r\n", "connection_error"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"status\":", "connection_error"),  # cut short
    (response(200, b"\x1f\x8b garbage", [("Content-Encoding", "gzip")]), "undecodable_response"),
    (response(200, b"not chunked", [("Transfer-Encoding", "chunked"), ("Content-Length", "11")]), "connection_error"),
])
def test_broken_transports_are_retried_then_fail_with_a_reason(amazon, action, code):
    amazon.listings = lambda: action
    result = submit(amazon)
    assert result.outcome == "failed" and result.error_code == code and result.attempts == 2
    assert result.error_message.startswith("gave up after 2 attempts")


def test_a_gzip_body_amazon_did_encode_is_read(amazon):
    body = gzip.compress(b'{"status":"ACCEPTED","submissionId":"s9"}')
    amazon.listings = lambda: response(200, body, [("Content-Encoding", "gzip")])
    result = submit(amazon)
    assert result.outcome == "accepted" and result.submission_id == "s9"


def test_html_error_pages_and_huge_bodies_are_final_or_retried_not_parsed_as_amazon(amazon):
    amazon.listings = lambda: response(502, HTML_502, content_type="text/html")
    result = submit(amazon)
    assert result.outcome == "failed" and result.http_status == 502 and "502 Bad Gateway" in result.error_message
    amazon.listings = lambda: response(400, b"<html>" + b"x" * 5_000_000 + b"</html>", content_type="text/html")
    result = submit(amazon)
    assert result.outcome == "rejected" and len(result.error_message) < 1_000


def test_a_200_without_a_known_status_is_a_failure_with_the_body_quoted(amazon):
    amazon.listings = lambda: response(200, b'{"sku":"HB-1"}')
    result = submit(amazon)
    assert result.outcome == "failed" and result.error_code == "unexpected_response"


@pytest.mark.parametrize("token_action", [
    response(200, b"<html>login page</html>", content_type="text/html"),
    response(200, b'{"access_token": 42}'),
    response(200, b'{"access_token": "Atza|x", "expires_in": "soon"}'),
    response(401, b'{"error": "invalid_client", "error_description": "Client authentication failed"}'),
    response(400, b"[1, 2]"),
    response(503, HTML_502, content_type="text/html"),
    "reset", "hang",
])
def test_broken_login_with_amazon_answers_become_outcomes(amazon, token_action):
    amazon.token = lambda: token_action
    try:
        result = submit(amazon)
    finally:
        amazon.token = lambda: response(200, TOKEN_OK)
    assert result.outcome in OUTCOMES


@pytest.mark.parametrize("body, outcome, submission_id, names", [
    (b'{"status":"ACCEPTED","submissionId":5}', "accepted", "5", None),
    (b'{"status":"ACCEPTED","submissionId":{"id":"x"}}', "accepted", None, None),
    (b'{"status":"INVALID","issues":[{"code":1,"attributeNames":5,"categories":true}]}', "invalid", None, []),
    (b'{"status":"INVALID","issues":[{"code":"90220","attributeNames":"brand"}]}', "invalid", None, ["brand"]),
    (b'{"status":["ACCEPTED"]}', "failed", None, None),
])
def test_fields_of_the_wrong_type_in_a_200_answer(amazon, body, outcome, submission_id, names):
    amazon.listings = lambda: response(200, body)
    result = submit(amazon)
    assert (result.outcome, result.submission_id) == (outcome, submission_id)
    if names is not None:
        assert result.issues[0]["attribute_names"] == names
