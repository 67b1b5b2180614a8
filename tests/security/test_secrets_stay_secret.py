"""The LWA client secret, the refresh token, the access tokens Amazon issues and the read API's
own token never leave the processes that need them: a whole pipeline run at DEBUG level (with a
forced token refresh) is searched byte by byte — every process log, every record on every topic,
the SQLite read store files and every API answer."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from catalog_sync.demo import DEMO_CREDENTIALS, DemoStack, sample_catalog
from catalog_sync.runtime.bus import BusConsumer
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.processes import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CLIENT_SECRET = "cs-SECRET-7f3a9c1e20"
REFRESH_TOKEN = "Atzr|RT-SECRET-b81d44aa"
API_TOKEN = "api-SECRET-5e0c2d99"
WRONG_TOKEN = "wrong-SECRET-0badf00d"
# Cores of the values: they also catch URL-encoded or JSON-escaped copies ("Atzr%7CRT-...").
NEEDLES = [b"cs-SECRET-7f3a9c1e20", b"RT-SECRET-b81d44aa", b"api-SECRET-5e0c2d99", b"wrong-SECRET-0badf00d"]
ACCESS_TOKEN = re.compile(rb"Atza(\||%7C|\\u007c)[A-Za-z0-9_-]{20,}", re.IGNORECASE)


@pytest.fixture(scope="module")
def ran(tmp_path_factory, kafka):
    """One production run of the sample catalog at DEBUG, with the read API behind API_TOKEN."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    kafka_env = {**kafka.env(prefix), "METRICS_PORT": "0"}
    data_dir = tmp_path_factory.mktemp("secrets")
    stack = DemoStack(data_dir, api_port=free_port(), kafka_env=kafka_env, extra_env={
        "LWA_CLIENT_SECRET": CLIENT_SECRET, "LWA_REFRESH_TOKEN": REFRESH_TOKEN, "API_TOKEN": API_TOKEN,
        "LOG_LEVEL": "DEBUG"})
    try:
        stack.start()
        # One 403 makes the submitter drop its access token and log in again mid-run.
        httpx.post(f"{stack.emulator_url}/_emulator/script", json={"status": 403, "times": 1}, timeout=5)
        run_id = stack.publish(sample_catalog(), "production")
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        deadline = time.monotonic() + 120
        while True:
            runs = httpx.get(f"{stack.api_url}/api/runs", headers=auth, timeout=5).json()["runs"]
            if any(r["run_id"] == run_id and r["status"] != "in_progress" for r in runs):
                break
            assert time.monotonic() < deadline, "the run did not complete"
            time.sleep(0.2)
        # A probe with a wrong token: it must not be echoed or logged either.
        refused = httpx.get(f"{stack.api_url}/api/items", headers={"Authorization": f"Bearer {WRONG_TOKEN}"})
        assert refused.status_code == 401
        answers = api_answers(stack, run_id, auth) + [refused]
        token_sample = httpx.post(f"{stack.emulator_url}/auth/o2/token", data={"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN,
                                        "client_id": DEMO_CREDENTIALS["LWA_CLIENT_ID"],
                                        "client_secret": CLIENT_SECRET}, timeout=5).json()["access_token"]
        requests = httpx.get(f"{stack.emulator_url}/_emulator/requests", timeout=5).json()["requests"]
    finally:
        stack.stop()
    settings = RuntimeSettings.from_env("reader", stack.env(), metrics_port=None)
    return {"data_dir": data_dir, "answers": answers, "records": every_record(settings, prefix),
            "token_sample": token_sample, "requests": requests, "run_id": run_id}


def api_answers(stack: DemoStack, run_id: str, auth: dict) -> list[httpx.Response]:
    get = lambda path, **params: httpx.get(f"{stack.api_url}{path}", params=params, headers=auth, timeout=10)  # noqa: E731
    answers = [get("/api/activity"), get("/api/runs", limit=500), get("/api/items", run_id="all", limit=500),
               get("/api/support-case", run_id=run_id), get("/metrics"), get("/healthz"), get("/openapi.json"),
               get("/"), get("/static/app.js")]
    for item in answers[2].json()["items"]:
        answers.append(get(f"/api/items/{item['reference']}"))
        answers.append(get("/api/support-case", reference=item["reference"]))
    return answers


def every_record(settings: RuntimeSettings, prefix: str) -> list[tuple[str, bytes | None, bytes | None]]:
    """(topic, key, value) of every record on every topic under the test's prefix, raw bytes."""
    from kafka import KafkaConsumer  # only to list the topics; records come through the bus

    lister = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
                           **({"api_version": settings.kafka_api_version} if settings.kafka_api_version else {}))
    try:
        topics = sorted(t for t in lister.topics() if t.startswith(prefix))
    finally:
        lister.close()
    consumer = BusConsumer(settings, topics, group_id=f"secret-search-{uuid.uuid4().hex[:8]}")
    records = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            records += [(r.topic, r.key, r.value) for r in batch]
            lags = consumer.lag()
            if not batch and consumer.assignment() and len(lags) == len(consumer.assignment()) and not any(lags.values()):
                break
    finally:
        consumer.close()
    assert {t.removeprefix(prefix) for t, _, _ in records} >= {
        "catalog.item.changed", "catalog.run.events", "listing.ready", "listing.validation.failed",
        "listing.submission.completed", "listing.accepted.hashes"}
    return records


def leaks(where: str, data: bytes) -> list[str]:
    found = [f"{where}: {needle.decode()}" for needle in NEEDLES if needle in data]
    found += [f"{where}: access token {m.group()[:12].decode(errors='replace')}…" for m in ACCESS_TOKEN.finditer(data)]
    return found


def test_the_run_used_real_logins_and_the_search_would_find_a_token(ran):
    # The pattern searched for is the one the token endpoint issues, and the run really logged in twice.
    assert ACCESS_TOKEN.fullmatch(ran["token_sample"].encode())
    assert sum(1 for r in ran["requests"] if r.get("operation") == "lwaToken") >= 2
    assert any(r.get("status") == 403 for r in ran["requests"])


def test_no_secret_in_any_process_log(ran):
    logs = sorted((ran["data_dir"] / "logs").glob("*.log"))
    assert {p.stem for p in logs} >= {"validator", "submitter", "recorder", "api", "amazon-emulator"}
    assert b'"level": "debug"' in (ran["data_dir"] / "logs" / "submitter.log").read_bytes()
    found = [leak for path in logs for leak in leaks(path.name, path.read_bytes())]
    assert found == []


def test_no_secret_in_any_event_on_any_topic(ran):
    found = [leak for topic, key, value in ran["records"]
             for leak in leaks(f"{topic} record", (key or b"") + b"\0" + (value or b""))]
    assert found == []


def test_no_secret_in_the_read_store_files(ran):
    files = sorted(ran["data_dir"].glob("catalog-sync.db*"))
    assert files and sum(p.stat().st_size for p in files) > 10_000
    found = [leak for path in files for leak in leaks(path.name, path.read_bytes())]
    assert found == []


def test_no_secret_in_any_api_answer(ran):
    assert all(r.status_code == 200 for r in ran["answers"][:-1]), [(r.url, r.status_code) for r in ran["answers"]]
    found = [leak for r in ran["answers"]
             for leak in leaks(str(r.url.path), r.content + str(r.headers).encode())]
    assert found == []
