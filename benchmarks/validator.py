"""Validator figures (interfaces.md §6).

- `validator_validate_items_per_s`: the domain core alone (contract-shaped change → verdict) on
  Amazon's real HAIRBAND schema from ../shared, with complete, distinct, valid items.
- `validator_worker_events_per_s`: the validator worker over the embedded broker, Avro in and
  out, measured between two counts of produced events once the group has joined (the mock
  broker's rebalance delay is not validation).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.bus import BusProducer
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.consumer_loop import StopSignal
from catalog_sync.runtime.events import item_key, new_header
from catalog_sync.runtime.logs import configure_logging
from catalog_sync.runtime.topics import CATALOG_ITEM_CHANGED
from tests.support.broker import unique_prefix

ROOT = Path(__file__).resolve().parents[1]
REAL_PRODUCT_TYPES = ROOT.parent / "shared" / "amazon" / "product-types"
MARKETPLACE = "ATVPDKIKX0DER"
SELLERS = 50
ITEMS = int(os.environ.get("BENCH_VALIDATOR_ITEMS", "20000"))
EVENTS = int(os.environ.get("BENCH_VALIDATOR_EVENTS", "40000"))
WARMUP_EVENTS = 2000
# Events on the input topic not yet taken by the worker (~13 MB of 3.3 KB items, ~3.3 MB in each of
# the 4 partitions: under the embedded broker's ~5 MB per partition) and the producer's send size.
# Counted from the worker's consumed events, not its produced ones: the batch in its hands must not
# hold the feeder back, or the figure measures the feeder's pauses (3,000 counted from produced
# events left the worker idle in poll for about a third of the run).
BACKLOG, CHUNK = 4000, 500

_COLORS = ["Blush Pink", "Black", "Ivory", "Navy Blue", "Sage Green", "Burgundy", "Leopard Print", "Champagne"]
_STYLES = ["Knotted", "Padded", "Braided", "Velvet", "Pearl", "Twist", "Wide", "Thin"]


def _ean13(n: int) -> str:
    body = f"400638{n:06d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def hairband_attributes(n: int) -> dict:
    """A complete HAIRBAND listing as a seller would send it: every attribute the real schema
    requires for a standalone product, plus typical optional ones; text varies per item."""
    color, style = _COLORS[n % len(_COLORS)], _STYLES[n // len(_COLORS) % len(_STYLES)]

    def text(value):
        return [{"value": value, "language_tag": "en_US", "marketplace_id": MARKETPLACE}]

    def value(v):
        return [{"value": v, "marketplace_id": MARKETPLACE}]

    return {
        "item_name": text(f"Maple & Rye {style} Satin Headband for Women, Non-Slip Hair Band, {color} #{n}"),
        "brand": text("Maple & Rye"),
        "externally_assigned_product_identifier": [{"type": "ean", "value": _ean13(n), "marketplace_id": MARKETPLACE}],
        "item_type_keyword": value("hair-bands"),
        "bullet_point": [{"value": b, "language_tag": "en_US", "marketplace_id": MARKETPLACE} for b in (
            f"{style} design in {color.lower()} satin over a cushioned core",
            "Non-slip silicone strip keeps it in place all day, no headaches",
            "One size fits most adults and teens; flexible, lightweight band",
            "Gentle on hair: no snagging, no creases, suits curly and straight hair",
            "Gift-ready box — a thoughtful present for birthdays and holidays ✨",
        )],
        "product_description": text(f"The {style.lower()} satin headband in {color.lower()} pairs a soft, cushioned "
                                    "band with a non-slip lining. Wear it to the office, the gym or a wedding."),
        "country_of_origin": value("CN"),
        "supplier_declared_dg_hz_regulation": value("not_applicable"),
        "fabric_type": text("100% Polyester satin"),
        "condition_type": value("new_new"),
        "list_price": [{"currency": "USD", "value": round(12.99 + (n % 9), 2), "marketplace_id": MARKETPLACE}],
        "purchasable_offer": [{"currency": "USD", "marketplace_id": MARKETPLACE,
                               "our_price": [{"schedule": [{"value_with_tax": round(9.99 + (n % 7), 2)}]}]}],
        "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 10 + n % 500,
                                      "lead_time_to_ship_max_days": 2}],
        "merchant_shipping_group": value("legacy-template-id"),
        "color": [{"value": color, "language_tag": "en_US", "marketplace_id": MARKETPLACE}],
        "number_of_items": value(1 + n % 3),
        "unit_count": [{"type": {"value": "个", "language_tag": "en_US"}, "value": 1 + n % 3, "marketplace_id": MARKETPLACE}],
        "age_range_description": text("Adult"),
        "target_gender": value("female"),
        "generic_keyword": text(f"headband {style.lower()} satin hair accessory {color.lower()}"),
        "lifestyle": text("Casual"),
        "manufacturer": text("Maple & Rye Ltd"),
        "target_audience_keyword": text("women"),
        "main_product_image_locator": [{"media_location": f"https://images.example.com/hb/{n}.jpg",
                                        "marketplace_id": MARKETPLACE}],
        "item_package_weight": [{"value": 0.05, "unit": "kilograms", "marketplace_id": MARKETPLACE}],
    }


def change(n: int, attributes: dict) -> dict:
    return {
        "reference": f"HB-{n:06d}", "item_type": "product", "operation": "upsert",
        "seller_id": f"A{n % SELLERS:05d}SELLER", "marketplace_id": MARKETPLACE, "product_type": "HAIRBAND",
        "requirements": "LISTING", "parent_reference": None,
        "attributes_json": orjson.dumps(attributes).decode(), "changed_at": None,
    }


def _validator(folder: Path):
    from catalog_sync.validator.schema_sources import DirectorySource, ProductTypeSchemas
    from catalog_sync.validator.validation import ItemValidator

    return ItemValidator(ProductTypeSchemas([DirectorySource(folder)]))


def bench_validate(results: dict) -> None:
    if not (REAL_PRODUCT_TYPES / "HAIRBAND.json").exists():
        print(f"   validate: skipped, the real HAIRBAND schema is not in {REAL_PRODUCT_TYPES}")
        return
    validator = _validator(REAL_PRODUCT_TYPES)
    distinct = 500
    changes = [change(n, hairband_attributes(n)) for n in range(distinct)]
    for c in changes[:5]:  # compile outside the clock; and the items must really be valid
        verdict = validator.validate(c, seller_id=c["seller_id"])
        assert verdict.valid, verdict.issues
    # As a worker starts its loop (runtime.gc_policy): start-up objects, here also the inputs and
    # whatever earlier benchmark groups left in this process, are out of the collector's scans.
    gc.collect()
    gc.freeze()
    try:
        started = time.perf_counter()
        for i in range(ITEMS):
            c = changes[i % distinct]
            validator.validate(c, seller_id=c["seller_id"])
        elapsed = time.perf_counter() - started
    finally:
        gc.unfreeze()
    results["validator_validate_items_per_s"] = round(ITEMS / elapsed, 1)
    print(f"   validate: {ITEMS:,} complete HAIRBAND items (real schema, {distinct} distinct) in {elapsed:.2f} s, "
          f"{elapsed / ITEMS * 1e6:.1f} µs per item")


def bench_vs_jsonschema(results: dict) -> None:
    """Our validator against what a user would reach for, Python `jsonschema`'s Draft 2019-09
    validator, on the same complete HAIRBAND items and Amazon's real schema, in one run. Ours
    does more per item (Amazon's keywords and our rules); the peer checks the schema alone."""
    if not (REAL_PRODUCT_TYPES / "HAIRBAND.json").exists():
        print(f"   vs jsonschema: skipped, the real HAIRBAND schema is not in {REAL_PRODUCT_TYPES}")
        return
    import jsonschema

    schema = orjson.loads((REAL_PRODUCT_TYPES / "HAIRBAND.json").read_bytes())
    peer = jsonschema.Draft201909Validator(schema)  # never fetches the $schema URI (spapi-facts)
    ours = _validator(REAL_PRODUCT_TYPES)
    items = [change(n, hairband_attributes(n)) for n in range(200)]
    attributes = [orjson.loads(c["attributes_json"]) for c in items]
    assert ours.validate(items[0], seller_id=items[0]["seller_id"]).valid  # compiled, and valid
    assert not list(peer.iter_errors(attributes[0]))

    def rate(work) -> float:
        started = time.perf_counter()
        work()
        return len(items) / (time.perf_counter() - started)

    peer_rate = rate(lambda: [list(peer.iter_errors(a)) for a in attributes])  # every error, as ours reports
    our_rate = max(rate(lambda: [ours.validate(c, seller_id=c["seller_id"]) for c in items]) for _ in range(3))
    results["validator_jsonschema_items_per_s"] = round(peer_rate, 1)
    results["validator_vs_jsonschema_ratio"] = round(our_rate / peer_rate, 1)
    print(f"   vs jsonschema (Draft 2019-09, real HAIRBAND, {len(items)} items): ours {our_rate:,.0f} items/s, "
          f"jsonschema {peer_rate:,.1f} items/s, ratio {our_rate / peer_rate:,.1f}")


def _events(count: int) -> list[tuple[str, bytes]]:
    codec = AvroCodec()
    encoded = []
    for n in range(count):
        attributes = hairband_attributes(n)
        if n % 10 == 9:  # a realistic share of broken items: bad barcode, price as text
            attributes["externally_assigned_product_identifier"][0]["value"] = "4006381333932"
            attributes["list_price"][0]["value"] = "19.99"
        event = {**new_header("bench-run"), "mode": "production", **change(n, attributes)}
        encoded.append((item_key(event["seller_id"], MARKETPLACE, event["reference"]),
                        codec.encode("CatalogItemChanged", event)))
    return encoded


def _feed(env: dict, total: int, taken, sent) -> None:
    """Producer process: keeps at most BACKLOG events on the topic that the worker has not taken.
    The embedded broker keeps only ~5 MB per partition and drops older data beyond that, so a 130 MB
    backlog of 3 KB items cannot be produced up front; a separate process keeps the producer off
    the worker's GIL."""
    settings = RuntimeSettings.from_env("bench-feeder", env, metrics_port=None)
    events = _events(total)
    producer = BusProducer(settings, linger_ms=20)
    topic = settings.topic(CATALOG_ITEM_CHANGED)
    try:
        while sent.value < total:
            if sent.value - taken.value >= BACKLOG:
                time.sleep(0.005)
                continue
            chunk = events[sent.value:sent.value + CHUNK]
            for key, value in chunk:
                producer.send(topic, key, value)
            producer.flush()
            sent.value += len(chunk)
    finally:
        producer.close()


def _total(counter) -> float:
    # One metric's samples, not the whole registry's: this runs on the worker's GIL 20 times a second.
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


def bench_worker(results: dict) -> None:
    from catalog_sync.runtime.embedded_broker import EmbeddedBroker
    from catalog_sync.validator.service import build_worker
    from catalog_sync.validator.settings import ValidatorSettings

    real = (REAL_PRODUCT_TYPES / "HAIRBAND.json").exists()
    folder = REAL_PRODUCT_TYPES if real else None
    total = WARMUP_EVENTS + EVENTS
    context = multiprocessing.get_context("spawn")
    taken, sent = context.Value("q", 0, lock=False), context.Value("q", 0, lock=False)
    with EmbeddedBroker() as broker:
        env = {**broker.env(), "TOPIC_PREFIX": unique_prefix(), "KAFKA_MAX_POLL_RECORDS": "2000",
               "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}
        runtime = RuntimeSettings.from_env("validator", env, metrics_port=None)
        feeder = context.Process(target=_feed, args=(env, total, taken, sent), name="validator-bench-feeder")
        feeder.start()
        registry, stop = CollectorRegistry(), StopSignal()
        worker = build_worker(runtime, ValidatorSettings(product_types_dir=folder), registry=registry, stop=stop)
        worker.stop.install = lambda: None  # runs in a thread: leave the main thread's signals alone
        thread = threading.Thread(target=worker.run, name="validator-bench", daemon=True)
        thread.start()
        try:
            start_count, started = _wait_for(worker.metrics, taken, WARMUP_EVENTS, 180)
            end_count, ended = _wait_for(worker.metrics, taken, total, 300)
        finally:
            stop.set()
            thread.join(30)
            feeder.join(10)
            if feeder.is_alive():
                feeder.terminate()
    rate = (end_count - start_count) / (ended - started)
    results["validator_worker_events_per_s"] = round(rate, 1)
    schema = "real HAIRBAND schema" if real else "bundled sample HAIRBAND schema (../shared absent)"
    print(f"   worker: {end_count - start_count:,.0f} events of ~3.3 KB in {ended - started:.2f} s over the embedded "
          f"broker ({schema}, 10% invalid, producer in another process)")


def _wait_for(metrics, taken, count: int, timeout_s: float) -> tuple[float, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        produced = _total(metrics.produced)
        taken.value = int(_total(metrics.consumed))
        if produced >= count:
            return produced, time.perf_counter()
        if time.monotonic() > deadline:
            raise TimeoutError(f"validator worker produced {produced:.0f} of {count} events in {timeout_s} s")
        time.sleep(0.05)


def run(results: dict) -> None:
    # Per-message debug lines would cost more than validation; the figures need none.
    configure_logging("validator", "console", "WARNING")
    bench_validate(results)
    bench_vs_jsonschema(results)
    bench_worker(results)
