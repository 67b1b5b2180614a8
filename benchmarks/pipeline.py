"""`e2e_100k_seconds`: 100,000 items published → all recorded with their final status.

The whole stack on this machine: embedded broker, unthrottled SP-API emulator, validator,
submitter (two processes, see SCALE) and recorder processes (SQLite read store), as
`catalog-sync demo` runs them. Items are
complete HAIRBAND listings for the bundled schema, 95% valid, spread over 1,000 sellers (each
seller's own plan of 5 calls/s still applies in the submitter: with fewer sellers the run would
measure Amazon's quota, not the pipeline).

The embedded broker keeps only ~5 MB per partition, so the publisher keeps at most WINDOW items
published but not yet recorded; real Kafka needs no such window. The clock runs from the first
published item to the last one recorded as final. Per-stage rates come from each worker's
pipeline_messages_consumed_total over the same interval.

`worker_rss_growth_ratio`: each worker process's resident set size once a tenth of the items
(10,000) are recorded and again once all are, from /proc; the worst process's ratio.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from catalog_sync.demo import DemoStack
from catalog_sync.publisher import RunPublisher
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.contract import parse_change

ITEMS = int(os.environ.get("BENCH_E2E_ITEMS", "100000"))
SELLERS = int(os.environ.get("BENCH_E2E_SELLERS", "1000"))
WINDOW = int(os.environ.get("BENCH_E2E_WINDOW", "12000"))
# Processes per worker (consumer-group members). Two submitters: it is the one stage a single
# process runs at one core's limit (its GIL), and the deployment a platform team would choose on a
# 2-core host; with one, 0.3-0.7 of the 2 cores stayed idle (1.3-1.7 busy; 1.85-1.9 with two).
SCALE = {"validator": int(os.environ.get("BENCH_E2E_VALIDATORS", "1")),
         "submitter": int(os.environ.get("BENCH_E2E_SUBMITTERS", "2")),
         "recorder": 1}
US = "ATVPDKIKX0DER"


def _ean13(n: int) -> str:
    body = f"400638{n % 1_000_000:06d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def item(n: int) -> dict:
    def text(value):
        return [{"value": value, "language_tag": "en_US", "marketplace_id": US}]

    def value(v):
        return [{"value": v, "marketplace_id": US}]

    ean = _ean13(n) if n % 20 else _ean13(n)[:-1] + str((int(_ean13(n)[-1]) + 1) % 10)  # 5% bad barcodes
    attributes = {
        "item_name": text(f"Maple & Rye Satin Headband #{n}"), "brand": text("Maple & Rye"),
        "externally_assigned_product_identifier": [{"type": "ean", "value": ean, "marketplace_id": US}],
        "item_type_keyword": value("hair-bands"),
        "bullet_point": [{"value": b, "language_tag": "en_US", "marketplace_id": US}
                         for b in ("Padded satin band", "Non-slip lining", "One size fits most")],
        "product_description": text("A padded satin headband that keeps hair in place."),
        "country_of_origin": value("CN"), "supplier_declared_dg_hz_regulation": value("not_applicable"),
        "material": text("Satin"), "condition_type": value("new_new"),
        "list_price": [{"currency": "USD", "value": 19.99, "marketplace_id": US}],
        "purchasable_offer": [{"currency": "USD", "audience": "ALL", "marketplace_id": US,
                               "our_price": [{"schedule": [{"value_with_tax": 15.99}]}]}],
        "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 10 + n % 90}],
    }
    fields, errors = parse_change({"reference": f"HB-{n:06d}", "item_type": "product", "marketplace_id": US,
                                   "product_type": "HAIRBAND", "seller_id": f"A{n % SELLERS:05d}BENCH",
                                   "attributes": attributes})
    assert not errors, errors
    return fields


def _consumed(stack: DemoStack) -> dict[str, float]:
    """pipeline_messages_consumed_total per service, scraped from each worker's /metrics."""
    totals: dict[str, float] = {}
    for name, process in stack.processes.items():
        port = process.env.get("METRICS_PORT")
        if not port or port == "off" or name in ("api", "amazon-emulator"):
            continue
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        service = name.split("-")[0]
        for line in text.splitlines():
            if line.startswith("pipeline_messages_consumed_total{"):
                totals[service] = totals.get(service, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def _rss_mib(stack: DemoStack) -> dict[str, float]:
    """Resident set size (MiB) of each worker process, from /proc."""
    out = {}
    for name, process in stack.processes.items():
        if name.split("-")[0] not in ("validator", "submitter", "recorder") or not process.running:
            continue
        with open(f"/proc/{process.process.pid}/status", encoding="ascii") as status:
            rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        out[name] = round(rss_kib / 1024, 1)
    return out


def run(results: dict) -> None:
    """The run on the embedded broker, then the same on a one-node Apache Kafka when Java and its
    jars are there (`e2e_real_kafka_vs_mock_ratio` in run.py: the two in one run)."""
    _record(results, "e2e", _measure(None))
    from catalog_sync.runtime.apache_kafka import ApacheKafkaCluster, KafkaUnavailable

    try:
        cluster = ApacheKafkaCluster(1)
    except KafkaUnavailable as exc:
        print(f"   no Apache Kafka here ({exc}): e2e_real_kafka_* not measured")
        return
    with cluster:
        _record(results, "e2e_real_kafka", _measure({**cluster.env(), "TOPIC_PREFIX": "bench."}))


def _measure(kafka_env: dict[str, str] | None) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="catalog-sync-bench-e2e-"))
    accounts = data_dir / "accounts.json"
    accounts.write_text(json.dumps({"client_id": "bench-app", "client_secret": "bench-secret",
                                    "sellers": {f"A{s:05d}BENCH": f"Atzr|bench-{s}" for s in range(SELLERS)}}))
    items = [item(n) for n in range(ITEMS)]
    stack = DemoStack(data_dir, emulator_args=["--unthrottled"], scale=SCALE, kafka_env=kafka_env,
                      extra_env={"SPAPI_ACCOUNTS_FILE": str(accounts), "LOG_LEVEL": "WARNING",
                                 "KAFKA_MAX_POLL_RECORDS": "5000"})
    try:
        stack.start()
        publisher = RunPublisher(RuntimeSettings.from_env("publisher", stack.env(), metrics_port=None))
        # Warm up: every consumer group joined and every worker ready before the clock starts.
        warm = publisher.publish_run([item(ITEMS + n) for n in range(50)], mode="production", source="warm-up")
        stack.wait_for_run(warm, timeout_s=120)
        before = _consumed(stack)
        started = time.perf_counter()
        run_id = f"bench-e2e-{int(time.time())}"
        early_rss: dict[str, float] = {}
        half_rss: dict[str, float] = {}  # printed only: does the growth level off?

        def window(sent: int) -> None:
            """Called by the publisher after every 5,000 items sent: hold it while more than WINDOW are
            unrecorded. (publish_run puts a run's items in family order first, so a throttling
            iterator would never be read past WINDOW: the run hung with nothing sent.)"""
            while True:
                run = stack.find_run(run_id, newest=5)
                done = 0 if run is None else run["counts"]["finished"] + run["counts"]["error"]
                for sample, share in ((early_rss, 10), (half_rss, 2)):
                    if not sample and done >= ITEMS // share:
                        sample.update(_rss_mib(stack), at_items=done)
                # The next 5,000 must fit in the window too.
                if sent + 5000 - done <= WINDOW or sent >= ITEMS:
                    return
                time.sleep(0.1)

        publisher.publish_run(items, mode="production", source="bench-e2e", run_id=run_id, progress=window)
        published_at = time.perf_counter() - started
        run = stack.wait_for_run(run_id, timeout_s=900)
        elapsed = time.perf_counter() - started
        after = _consumed(stack)
        final_rss = _rss_mib(stack)
        publisher.close()
    finally:
        stack.stop()
    return {"elapsed": elapsed, "published_at": published_at, "run": run, "before": before, "after": after,
            "broker": "Apache Kafka" if kafka_env else "embedded broker", "early_rss": early_rss,
            "half_rss": half_rss, "final_rss": final_rss}


def _record(results: dict, name: str, measured: dict) -> None:
    elapsed, run, before, after = measured["elapsed"], measured["run"], measured["before"], measured["after"]
    counts = run["counts"]
    results[f"{name}_100k_seconds"] = round(elapsed * 100_000 / ITEMS, 2)
    results[f"{name}_items_per_s"] = round(ITEMS / elapsed, 1)
    for service in ("validator", "submitter", "recorder"):
        if service in after:
            results[f"{name}_{service}_events_per_s"] = round((after[service] - before.get(service, 0)) / elapsed, 1)
    print(f"   {measured['broker']}: {ITEMS:,} items ({SELLERS} sellers, workers {SCALE}): published in "
          f"{measured['published_at']:.1f} s, all recorded after {elapsed:.1f} s = {ITEMS / elapsed:,.0f} items/s; "
          f"run {run['status']}: {counts['finished']:,} finished, {counts['error']:,} error, {counts['pending']} pending")
    if ITEMS != 100_000:
        print(f"   ({name}_100k_seconds scaled from {ITEMS:,} items)")
    early_rss, half_rss, final_rss = measured["early_rss"], measured["half_rss"], measured["final_rss"]
    growth = {worker: final_rss[worker] / early_rss[worker] for worker in final_rss if worker in early_rss}
    if growth and name == "e2e":  # the embedded broker's run: the figure of interfaces.md §6
        results["worker_rss_growth_ratio"] = round(max(growth.values()), 3)
        print(f"   RSS MiB after {early_rss['at_items']:,.0f} / {half_rss.get('at_items', 0):,.0f} / {ITEMS:,} "
              "items: " + ", ".join(f"{worker} {early_rss[worker]} / {half_rss.get(worker)} / {final_rss[worker]} "
                                    f"(x{growth[worker]:.2f})" for worker in sorted(growth)))
