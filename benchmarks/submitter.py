"""Submitter figures (interfaces.md §6), measured the way Amazon would see them: from the SP-API
emulator's request log (arrival times at the server), with

- the embedded broker in this process,
- the emulator in its own process (`amazon-emulator`),
- ONE `catalog-sync submitter` process reading listing.ready like in production.

Figures:
- submitter_single_seller_plan_ratio: one seller, 300-item backlog, Amazon's plan enforced by the
  emulator (put 5/s, burst 10): achieved rate ((n - 1) / time from first to last request) ÷ 5.
- submitter_single_seller_steady_429: 429 answers after the first second of that backlog.
- submitter_multi_seller_requests_per_s: 200 sellers × 50 items, emulator unthrottled (the
  submitter still holds every seller to 5/s burst 10; checked on the log).
- submitter_vs_sequential_speedup: the same 10,000 PUTs by a plain sequential httpx loop, divided
  by the submitter's time for them (no plans, 1 ms answers: superseded by the next figure).
- submitter_vs_sequential_sdk_ratio: 100 sellers x 3 items against an emulator that enforces
  Amazon's plans and answers in 200-300 ms, as Amazon does: the time of a sequential loop with
  python-amazon-sp-api that honours each seller's 5 req/s (what a user would script) divided by
  the submitter's. Both times run from the first request's arrival to the last answer (the last
  arrival plus the mean latency), from the emulator's log.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from catalog_sync.amazon_emulator.quota import admitted_by_plan
from catalog_sync.amazon_emulator.server import RunningEmulator, start_in_subprocess
from catalog_sync.demo import create_stack_topics
from catalog_sync.runtime.bus import BusProducer
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.embedded_broker import EmbeddedBroker
from catalog_sync.runtime.events import new_header
from catalog_sync.runtime.processes import ServiceProcess
from catalog_sync.runtime.topics import LISTING_READY
from catalog_sync.runtime.usage_plans import UsagePlan
from tests.support.broker import unique_prefix

SDK_SELLERS = int(os.environ.get("BENCH_SUBMITTER_SDK_SELLERS", "100"))
SDK_ITEMS_PER_SELLER = int(os.environ.get("BENCH_SUBMITTER_SDK_ITEMS_PER_SELLER", "3"))
AMAZON_LATENCY_MS, AMAZON_JITTER_MS = 200.0, 100.0  # a PUT's answer from Amazon: a few hundred ms
SINGLE_ITEMS = int(os.environ.get("BENCH_SUBMITTER_SINGLE_ITEMS", "300"))
SELLERS = int(os.environ.get("BENCH_SUBMITTER_SELLERS", "200"))
ITEMS_PER_SELLER = int(os.environ.get("BENCH_SUBMITTER_ITEMS_PER_SELLER", "50"))
MULTI_SELLERS = [f"A{i:03d}BENCHSELLER" for i in range(SELLERS)]
ATTRIBUTES = json.dumps({
    "item_name": [{"value": "Satin hair band, 3 pack", "language_tag": "en_US", "marketplace_id": "ATVPDKIKX0DER"}],
    "brand": [{"value": "Acme", "marketplace_id": "ATVPDKIKX0DER"}],
    "condition_type": [{"value": "new_new", "marketplace_id": "ATVPDKIKX0DER"}],
    "bullet_point": [{"value": "Soft satin", "language_tag": "en_US", "marketplace_id": "ATVPDKIKX0DER"}],
})


def ready(seller: str, sku: str) -> dict:
    return {**new_header("bench"), "mode": "production", "source_event_id": f"src-{sku}", "reference": sku,
            "item_type": "product", "operation": "upsert", "seller_id": seller, "marketplace_id": "ATVPDKIKX0DER",
            "product_type": "HAIRBAND", "requirements": "LISTING", "parent_reference": None,
            "attributes_json": ATTRIBUTES, "changed_at": None, "content_hash": f"hash-{seller}-{sku}"}


def listing_calls(emulator: RunningEmulator, expected: int, timeout_s: float) -> list[dict]:
    """Wait until `expected` Listings answers other than 429 are logged; return every Listings call."""
    calls: list[dict] = []
    last_seq = 0
    deadline = time.monotonic() + timeout_s
    while True:
        new = emulator.requests(since=last_seq)
        if new:
            last_seq = new[-1]["seq"]
            calls.extend(r for r in new if r.get("operation") == "putListingsItem")
        if sum(1 for r in calls if r["status"] != 429) >= expected:
            return calls
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(calls)} of {expected} calls reached the emulator in {timeout_s:.0f} s")
        time.sleep(0.5)  # polling a log in another process: nothing to wait on



def accounts_file(workdir: Path, sellers: list[str]) -> Path:
    """The submitter's accounts, one refresh token per seller; the emulator is given the same file."""
    path = workdir / f"accounts-{unique_prefix()}json"
    path.write_text(json.dumps({"client_id": "bench-app", "client_secret": "bench-secret",
                                "sellers": {s: f"Atzr|{s}" for s in sellers}}))
    return path


def run_backlog(broker: EmbeddedBroker, emulator: RunningEmulator, events: list[dict], accounts: Path,
                workdir: Path, timeout_s: float) -> list[dict]:
    """Publish the backlog, start one submitter process, return the emulator's log of its calls."""
    prefix = unique_prefix()
    env = {**broker.env(), "TOPIC_PREFIX": prefix, "METRICS_PORT": "0", "LOG_FORMAT": "json",
           "SPAPI_ENDPOINT": emulator.url, "SPAPI_SANDBOX_ENDPOINT": emulator.sandbox_url,
           "LWA_TOKEN_URL": emulator.token_url, "SPAPI_ACCOUNTS_FILE": str(accounts),
           "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
           "SUBMITTER_BULK_LANE": "off"}  # the item lane is what these figures measure (bulk_lane.py: feeds)
    settings = RuntimeSettings.from_env("bench", env, metrics_port=None)
    codec = AvroCodec()
    producer = BusProducer(settings, linger_ms=20)
    for event in events:
        producer.send(settings.topic(LISTING_READY), event["seller_id"], codec.encode("ListingReady", event))
    producer.flush()
    producer.close()
    create_stack_topics(env)  # the submitter refuses to start without its topics
    process = ServiceProcess("bench-submitter", ["submitter"], env, workdir).start()
    try:
        return listing_calls(emulator, len(events), timeout_s)
    finally:
        process.stop()


def single_seller(results: dict, broker: EmbeddedBroker, workdir: Path) -> None:
    accounts = accounts_file(workdir, ["A1BENCHSELLER"])
    with start_in_subprocess(["--accounts-file", str(accounts)]) as emulator:  # Amazon's plans: put 5/s burst 10
        events = [ready("A1BENCHSELLER", f"HB-{i:04d}") for i in range(SINGLE_ITEMS)]
        calls = run_backlog(broker, emulator, events, accounts, workdir, timeout_s=SINGLE_ITEMS / 5 + 120)
    times = [c["monotonic"] for c in calls]
    first = min(times)
    accepted = [c for c in calls if c["status"] == 200]
    span = max(c["monotonic"] for c in accepted) - first
    rate = (len(accepted) - 1) / span
    steady_429 = sum(1 for c in calls if c["status"] == 429 and c["monotonic"] - first > 1.0)
    after_burst = sorted(times)[10:]
    steady_rate = (len(after_burst) - 1) / (after_burst[-1] - after_burst[0]) if len(after_burst) > 1 else 0.0
    results["submitter_single_seller_plan_ratio"] = round(rate / 5.0, 4)
    results["submitter_single_seller_steady_429"] = steady_429
    print(f"   single seller: {len(accepted)} accepted in {span:.1f} s = {rate:.3f} req/s "
          f"(after the burst {steady_rate:.3f} req/s); 429s: {sum(1 for c in calls if c['status'] == 429)} "
          f"({steady_429} after the first second)")


def multi_seller(results: dict, broker: EmbeddedBroker, workdir: Path, accounts: Path) -> float:
    events = [ready(s, f"HB-{i:03d}") for i in range(ITEMS_PER_SELLER) for s in MULTI_SELLERS]
    with start_in_subprocess(["--unthrottled", "--accounts-file", str(accounts)]) as emulator:
        calls = run_backlog(broker, emulator, events, accounts, workdir, timeout_s=300)
    times = [c["monotonic"] for c in calls]
    span = max(times) - min(times)
    per_seller = defaultdict(list)
    for c in calls:
        per_seller[c["seller_id"]].append(c["monotonic"])
    within = sum(1 for t in per_seller.values() if admitted_by_plan(t, UsagePlan(5.0, 10)))
    rate = len(calls) / span
    results["submitter_multi_seller_requests_per_s"] = round(rate, 1)
    print(f"   {SELLERS} sellers x {ITEMS_PER_SELLER}: {len(calls):,} calls in {span:.2f} s = {rate:,.0f} req/s; "
          f"sellers within 5/s burst 10: {within}/{len(per_seller)} "
          f"(plan ceiling for this backlog: {len(calls) / ((ITEMS_PER_SELLER - 10) / 5):,.0f} req/s)")
    if within != len(per_seller):
        print("   WARNING: some sellers exceeded their plan")
    return span


def sequential(results: dict, submitter_seconds: float, accounts: Path) -> None:
    total = SELLERS * ITEMS_PER_SELLER
    sellers = json.loads(accounts.read_text())["sellers"]
    with start_in_subprocess(["--unthrottled", "--accounts-file", str(accounts)]) as emulator, \
            httpx.Client(timeout=30) as client:
        tokens = {seller: client.post(emulator.token_url, data={
            "grant_type": "refresh_token", "refresh_token": refresh, "client_id": "bench-app",
            "client_secret": "bench-secret"}).json()["access_token"] for seller, refresh in sellers.items()}
        body = json.dumps({"productType": "HAIRBAND", "requirements": "LISTING",
                           "attributes": json.loads(ATTRIBUTES)}).encode()
        started = time.perf_counter()  # a token per seller, as Amazon wants; logins are not timed
        for i in range(total):
            seller = MULTI_SELLERS[i % SELLERS]
            headers = {"x-amz-access-token": tokens[seller], "content-type": "application/json"}
            answer = client.put(f"{emulator.url}/listings/2021-08-01/items/{seller}/HB-{i:05d}",
                                params={"marketplaceIds": "ATVPDKIKX0DER"}, content=body, headers=headers)
            answer.raise_for_status()
        elapsed = time.perf_counter() - started
    results["submitter_vs_sequential_speedup"] = round(elapsed / submitter_seconds, 2)
    print(f"   sequential httpx loop: {total:,} PUTs in {elapsed:.2f} s ({total / elapsed:,.0f} req/s, no rate "
          f"limit, unthrottled emulator) vs submitter {submitter_seconds:.2f} s")


def answered_span(calls: list[dict]) -> float:
    """First arrival to the last answer (last arrival plus the emulator's mean latency)."""
    arrivals = [c["monotonic"] for c in calls]
    return max(arrivals) - min(arrivals) + (AMAZON_LATENCY_MS + AMAZON_JITTER_MS / 2) / 1000.0


def sdk_loop(emulator: RunningEmulator, sellers: list[str], accounts: Path) -> None:
    """What a seller integration would script: python-amazon-sp-api, one PUT after the other, never
    faster than a seller's 5 req/s."""
    from urllib.parse import urlsplit

    from sp_api.api import ListingsItems
    from sp_api.auth import AccessTokenClient
    from sp_api.base import Marketplaces

    lwa = urlsplit(emulator.token_url)
    emulator_lwa = type("EmulatorLwa", (AccessTokenClient,),
                        {"scheme": f"{lwa.scheme}://", "host": lwa.netloc, "path": lwa.path})
    refresh = json.loads(accounts.read_text())["sellers"]
    body = {"productType": "HAIRBAND", "requirements": "LISTING", "attributes": json.loads(ATTRIBUTES)}
    interval = 1 / 5.0
    for seller in sellers:
        client = ListingsItems(Marketplaces.US, refresh_token=refresh[seller], version="2021-08-01",
                               credentials={"lwa_app_id": "bench-app", "lwa_client_secret": "bench-secret"},
                               auth_token_client_class=emulator_lwa)
        client.endpoint = emulator.url  # the library takes the host from the marketplace otherwise
        next_allowed = 0.0
        for i in range(SDK_ITEMS_PER_SELLER):
            time.sleep(max(0.0, next_allowed - time.monotonic()))  # the plan: 5 requests per second
            next_allowed = time.monotonic() + interval
            client.put_listings_item(seller, f"HB-{i:03d}", marketplaceIds=["ATVPDKIKX0DER"], body=body)


def sequential_sdk(results: dict, broker: EmbeddedBroker, workdir: Path) -> None:
    sellers = MULTI_SELLERS[:SDK_SELLERS]
    accounts = accounts_file(workdir, sellers)
    amazon_like = ["--accounts-file", str(accounts), "--latency-ms", str(AMAZON_LATENCY_MS),
                   "--latency-jitter-ms", str(AMAZON_JITTER_MS)]
    total = len(sellers) * SDK_ITEMS_PER_SELLER
    with start_in_subprocess(amazon_like) as emulator:
        events = [ready(s, f"HB-{i:03d}") for i in range(SDK_ITEMS_PER_SELLER) for s in sellers]
        submitter = answered_span(run_backlog(broker, emulator, events, accounts, workdir, timeout_s=300))
    with start_in_subprocess(amazon_like) as emulator:
        sdk_loop(emulator, sellers, accounts)
        sdk = answered_span(listing_calls(emulator, total, timeout_s=60))
    results["submitter_vs_sequential_sdk_ratio"] = round(sdk / submitter, 1)
    print(f"   {len(sellers)} sellers x {SDK_ITEMS_PER_SELLER}, Amazon's plans, {AMAZON_LATENCY_MS:.0f}+0..{AMAZON_JITTER_MS:.0f}"
          f" ms answers: python-amazon-sp-api loop {sdk:.1f} s, submitter {submitter:.2f} s")


def run(results: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-submitter-") as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        accounts = accounts_file(workdir, MULTI_SELLERS)
        span = multi_seller(results, broker, workdir, accounts)
        sequential(results, span, accounts)
        sequential_sdk(results, broker, workdir)
        if os.environ.get("BENCH_SUBMITTER_SKIP_SINGLE") != "1":
            single_seller(results, broker, workdir)
