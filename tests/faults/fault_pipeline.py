"""What the fault-injection tests share: a generated catalog whose every item has a known fate, the
whole pipeline started over a test's broker, and the checks that nothing was lost, stuck or
projected differently from the Amazon emulator's request log."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from catalog_sync.demo import DemoStack
from catalog_sync.runtime.bus import group_lag
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.processes import ServiceProcess, free_port
from catalog_sync.runtime.topics import (
    CATALOG_ITEM_CHANGED,
    CATALOG_RUN_EVENTS,
    LISTING_READY,
    LISTING_STATE_OBSERVED,
    LISTING_SUBMISSION_COMPLETED,
    LISTING_VALIDATION_FAILED,
)
from tests.support.background import wait_until

MARKETPLACE = "ATVPDKIKX0DER"
SELLERS = [f"A{n}FAULTSELLER{n:02d}" for n in range(1, 6)]
WORKERS = ("validator", "submitter", "recorder")

# What each generated item must end as, and what Amazon must have seen of it.
ACCEPTED = "accepted"            # valid upsert: PUT answered ACCEPTED -> finished
DELETED = "deleted"              # delete: DELETE answered ACCEPTED -> finished
AMAZON_INVALID = "amazon_invalid"  # passes local validation, Amazon answers INVALID -> error
AMAZON_400 = "amazon_400"        # Amazon answers HTTP 400 (the emulator's BadSKU) -> error
LOCAL_INVALID = "local_invalid"  # fails the bundled HAIRBAND schema: never sent -> error (validation)
CATEGORY = "category"            # validated locally, never sent -> finished


def _text(value: str) -> list[dict]:
    return [{"value": value, "language_tag": "en_US", "marketplace_id": MARKETPLACE}]


def _plain(value) -> list[dict]:
    return [{"value": value, "marketplace_id": MARKETPLACE}]


def hairband(reference: str, seller: str, n: int) -> dict:
    """A small valid HAIRBAND (about 1.3 KB of JSON): every attribute the bundled schema requires."""
    return {
        "reference": reference, "item_type": "product", "seller_id": seller, "marketplace_id": MARKETPLACE,
        "product_type": "HAIRBAND",
        "attributes": {
            "item_name": _text(f"Fault Band {n}"), "brand": _text("Maple & Rye"), "bullet_point": _text("Soft"),
            "product_description": _text("A band."), "material": _text("Satin"),
            "country_of_origin": _plain("CN"), "item_type_keyword": _plain("hair-bands"),
            "supplier_declared_dg_hz_regulation": _plain("not_applicable"), "condition_type": _plain("new_new"),
            "externally_assigned_product_identifier": [
                {"type": "ean", "value": "4006381333931", "marketplace_id": MARKETPLACE}],
            "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 5}],
            "purchasable_offer": [{"currency": "USD", "audience": "ALL", "marketplace_id": MARKETPLACE,
                                   "our_price": [{"schedule": [{"value_with_tax": 9.5 + n % 10}]}]}],
        },
    }


@dataclass
class Catalog:
    items: list[dict]
    fate: dict[tuple[str, str], str]  # (seller, reference) -> one of the fates above

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(item) + "\n" for item in self.items), encoding="utf-8")
        return path

    def counts(self) -> Counter:
        return Counter(self.fate.values())


def make_catalog(size: int, prefix: str = "HB", *, special: bool = True) -> Catalog:
    """`size` items over SELLERS: mostly valid hairbands, plus every other fate a few times
    (`special=False` leaves out the per-seller ones, BadSKU among them, for a second run)."""
    items: list[dict] = []
    fate: dict[tuple[str, str], str] = {}

    def add(item: dict, what: str) -> None:
        items.append(item)
        fate[(item["seller_id"], item["reference"])] = what

    for seller in SELLERS if special else ():  # one of each special case per seller, then hairbands
        add(hairband("BadSKU", seller, 0), AMAZON_400)
        add({"reference": f"CAT-{prefix}-{seller[-2:]}", "item_type": "category", "seller_id": seller,
             "marketplace_id": MARKETPLACE, "product_type": "HAIRBAND"}, CATEGORY)
        add({"reference": f"{prefix}-DEL-{seller[-2:]}", "item_type": "product", "operation": "delete",
             "seller_id": seller, "marketplace_id": MARKETPLACE, "product_type": "HAIRBAND"}, DELETED)
    n = 0
    while len(items) < size:
        seller = SELLERS[n % len(SELLERS)]
        item = hairband(f"{prefix}-{n:05d}", seller, n)
        if n % 50 == 7:
            del item["attributes"]["brand"]
            add(item, LOCAL_INVALID)
        elif n % 50 == 19:
            # Offer-only without condition_type: the local schema is silent, Amazon reports 90220.
            item["requirements"] = "LISTING_OFFER_ONLY"
            del item["attributes"]["condition_type"]
            add(item, AMAZON_INVALID)
        else:
            add(item, ACCEPTED)
        n += 1
    return Catalog(items, fate)


def accounts_file(path: Path, put_rate: float) -> Path:
    """SELLERS' credentials, each with a client-side PUT/DELETE plan of `put_rate` per second."""
    rates = {"put": {"rate": put_rate, "burst": max(1, int(put_rate))},
             "delete": {"rate": put_rate, "burst": max(1, int(put_rate))}}
    path.write_text(json.dumps({"client_id": "amzn1.application-oa2-client.faults", "client_secret": "s",
                                "sellers": {s: {"refresh_token": f"Atzr|{s}", "rates": rates} for s in SELLERS}}),
                    encoding="utf-8")
    return path


def start_stack(data_dir: Path, kafka_env: dict[str, str], *, put_rate: float = 1000.0,
                extra_env: dict[str, str] | None = None) -> DemoStack:
    """The pipeline (unthrottled emulator, several sellers paced at `put_rate` each by the
    submitter's own usage plan) over the given broker environment."""
    accounts = accounts_file(data_dir / "accounts.json", put_rate)
    stack = DemoStack(data_dir, api_port=free_port(), kafka_env=kafka_env, emulator_args=["--unthrottled"],
                      # Item by item: these runs are checked against Amazon's Listings log; the bulk
                      # lane's faults are tests/faults/test_bulk_lane_kills.py.
                      extra_env={"SPAPI_ACCOUNTS_FILE": str(accounts), "LWA_REFRESH_TOKEN": "", "SELLER_ID": "",
                                 "SUBMITTER_BULK_LANE": "off", **(extra_env or {})})
    try:
        stack.start()
        for name in WORKERS:
            stack.processes[name].wait_for_log("worker started", timeout_s=60)
    except BaseException:
        stack.stop()
        raise
    return stack


def worker_starts(process: ServiceProcess) -> int:
    """How often the process's worker loop started (its JSON log). The submitter's reconciliation
    loop, which starts beside it in the same process, logs `loop` "submitter-reconciliation"."""
    starts = 0
    for line in process.log_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # not a log entry (a traceback's lines)
        starts += entry.get("event") == "worker started" and entry.get("loop") == process.name
    return starts


def wait_for_worker_starts(process: ServiceProcess, count: int, timeout_s: float) -> None:
    wait_until(lambda: worker_starts(process) >= count or _exited(process), timeout_s,
               message=f"{process.name}'s worker loop started {count} times")
    if _exited(process):
        raise RuntimeError(f"{process.name} exited with {process.process.returncode}:\n{process.log_text()[-3000:]}")


def _exited(process: ServiceProcess) -> bool:
    return process.process is not None and process.process.poll() is not None


def assignments(process: ServiceProcess) -> list[float]:
    """Wall-clock times (time.time()) at which `process` (any of its restarts) was assigned partitions."""
    times = []
    for line in process.log_text().splitlines():
        if '"partitions assigned"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "partitions assigned" and entry.get("partitions"):
            times.append(datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp())
    return times


def partition_moves(kills: list[float], assigned: list[float]) -> list[float]:
    """Seconds from each kill (wall time) to the next assignment of that worker, for kills whose
    replacement was assigned partitions before the next kill (the others moved nothing)."""
    moves = []
    for index, kill in enumerate(kills):
        until = kills[index + 1] if index + 1 < len(kills) else float("inf")
        after = [t for t in assigned if kill < t < until]
        if after:
            moves.append(after[0] - kill)
    return moves


def wait_for_run(stack: DemoStack, run_id: str, expected_total: int, timeout_s: float) -> dict:
    """Poll the read API until the run is no longer in progress (no sleeps as synchronisation)."""
    last: dict = {}

    def done():
        nonlocal last
        last = stack.find_run(run_id) or {}
        return last if last.get("status") not in (None, "in_progress") else None

    try:
        return wait_until(done, timeout_s, interval_s=0.25, message=f"run {run_id} to complete")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; last seen {last}") from None


WORKER_INPUTS = {"validator": (CATALOG_ITEM_CHANGED,), "submitter": (LISTING_READY,),
                 "recorder": (CATALOG_RUN_EVENTS, CATALOG_ITEM_CHANGED, LISTING_VALIDATION_FAILED,
                              LISTING_SUBMISSION_COMPLETED, LISTING_STATE_OBSERVED)}
# The submitter's reconciliation loop (its own group) commits an acceptance once Amazon's view of
# it is out: after it, items change again (live, or an error found after acceptance).
RECONCILIATION_INPUTS = (LISTING_SUBMISSION_COMPLETED,)


def wait_until_drained(stack: DemoStack, timeout_s: float) -> None:
    """Until every worker's group has committed everything on its input topics. A run is complete
    as soon as each item has a final status, but replays (a killed validator's uncommitted batch
    sent again under new event ids) and Amazon's view of accepted listings may still be on their
    way to Amazon and the read store then; comparisons with the emulator's log, a replayed
    projection or pages of the item list (an item changing while they are read moves between
    pages) wait for them."""
    lags: dict[str, int] = {}

    def drained() -> bool:
        nonlocal lags
        groups = {}
        for service, topics in WORKER_INPUTS.items():
            settings = RuntimeSettings.from_env(service, stack.env())
            groups[settings.group_id] = [settings.topic(t) for t in topics]
        submitter = RuntimeSettings.from_env("submitter", stack.env())
        groups[f"{submitter.group_id}-reconciliation"] = [submitter.topic(t) for t in RECONCILIATION_INPUTS]
        lags = group_lag(RuntimeSettings.from_env("drain-check", stack.env()), groups)
        return not any(lags.values())

    try:
        wait_until(drained, timeout_s, interval_s=0.5, message="every worker to commit all its input")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; not committed: {lags}") from None


def final_count(stack: DemoStack, run_id: str) -> int:
    """Items of the run with their final status (finished or error) so far."""
    run = stack.find_run(run_id)
    return 0 if run is None else run["counts"]["finished"] + run["counts"]["error"]


def api_items(stack: DemoStack, run_id: str) -> dict[tuple[str, str], dict]:
    """Every item of the run from the read API, page by page."""
    found: dict[tuple[str, str], dict] = {}
    cursor = None
    while True:
        params = {"run_id": run_id, "limit": 500, **({"cursor": cursor} if cursor else {})}
        body = stack.api_get("/api/items", **params)
        for item in body["items"]:
            found[(item["seller_id"], item["reference"])] = item
        cursor = body.get("next_cursor")
        if not cursor:
            return found


def store_items(read_store_url: str, run_id: str) -> dict[tuple[str, str], dict]:
    """Every item of the run straight from a read store (the replayed one has no API in front)."""
    from catalog_sync.recorder.read_model import MAX_PAGE, ItemFilters, ReadModel
    from catalog_sync.recorder.store import ReadStore

    store = ReadStore(read_store_url)
    try:
        model = ReadModel(store)
        found, cursor = {}, None
        while True:
            page = model.items(ItemFilters(run_id=run_id, limit=MAX_PAGE, cursor=cursor))
            for item in page["items"]:
                found[(item["seller_id"], item["reference"])] = item
            cursor = page["next_cursor"]
            if not cursor:
                return found
    finally:
        store.close()


def listings_requests(stack: DemoStack) -> list[dict]:
    requests = httpx.get(f"{stack.emulator_url}/_emulator/requests", timeout=60).json()["requests"]
    return [r for r in requests if r.get("operation") in ("putListingsItem", "deleteListingsItem")]


@dataclass
class Verdict:
    puts_per_sku: Counter = field(default_factory=Counter)
    duplicate_puts: int = 0
    max_puts_per_sku: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)


def check_against_amazon(catalog: Catalog, items: dict[tuple[str, str], dict], requests: list[dict]) -> Verdict:
    """Every item of the catalog has exactly the status the emulator's log implies; none is
    missing or pending; request ids name real requests of that item with the matching answer."""
    assert set(items) == set(catalog.fate), (
        f"missing from the read model: {sorted(set(catalog.fate) - set(items))[:10]}; "
        f"unexpected: {sorted(set(items) - set(catalog.fate))[:10]}")
    by_item: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in requests:
        by_item[(r["seller_id"], r["sku"])].append(r)
    by_request_id = {r["request_id"]: r for r in requests}
    problems: list[str] = []
    verdict = Verdict()
    for key, fate in catalog.fate.items():
        item, sent = items[key], by_item.get(key, [])
        if item["status"] == "pending":
            problems.append(f"{key} is still pending")
            continue
        if fate in (LOCAL_INVALID, CATEGORY):
            expected = "error" if fate == LOCAL_INVALID else "finished"
            if sent:
                problems.append(f"{key} ({fate}) reached Amazon {len(sent)} times")
            if item["status"] != expected or item["request_id"] is not None:
                problems.append(f"{key} ({fate}): {item['status']} request_id={item['request_id']}")
            if fate == LOCAL_INVALID and (item["error"] or {}).get("type") != "validation":
                problems.append(f"{key}: error {item['error']} is not a validation error")
            continue
        if not sent:
            problems.append(f"{key} ({fate}) never reached Amazon")
            continue
        # What Amazon's answers imply: the last answer for the item decides (they all agree here).
        last = sent[-1]
        implied = "finished" if last["status"] == 200 and last.get("amazon_status") == "ACCEPTED" else "error"
        expected_op = "deleteListingsItem" if fate == DELETED else "putListingsItem"
        want = {ACCEPTED: "finished", DELETED: "finished", AMAZON_INVALID: "error", AMAZON_400: "error"}[fate]
        if implied != want or any(r["operation"] != expected_op for r in sent):
            problems.append(f"{key} ({fate}): Amazon answered {[(r['status'], r.get('amazon_status')) for r in sent]}")
        if item["status"] != implied:
            problems.append(f"{key} ({fate}): read model says {item['status']}, Amazon's log implies {implied}")
        request = by_request_id.get(item["request_id"])
        if request is None:
            problems.append(f"{key} ({fate}): request_id {item['request_id']} is not in the emulator's log")
        elif (request["seller_id"], request["sku"]) != key or request["status"] != last["status"]:
            problems.append(f"{key} ({fate}): request_id names {request['seller_id']}/{request['sku']} "
                            f"answered {request['status']}")
        if item["status"] == "error" and (item["error"] or {}).get("type") != "amazon_response":
            problems.append(f"{key}: error {item['error']} is not an amazon_response error")
        if fate != DELETED:
            verdict.puts_per_sku[key] = len(sent)
    assert not problems, f"{len(problems)} items wrong, e.g.:\n" + "\n".join(problems[:25])
    verdict.duplicate_puts = sum(n - 1 for n in verdict.puts_per_sku.values())
    verdict.max_puts_per_sku = max(verdict.puts_per_sku.values(), default=0)
    verdict.duplicates = [k for k, n in verdict.puts_per_sku.items() if n > 1]
    return verdict


def replay_projection(stack: DemoStack, data_dir: Path, run_id: str, expected_total: int,
                      timeout_s: float = 120.0) -> dict[tuple[str, str], dict]:
    """A fresh recorder with a new read store and consumer group rebuilds the projection from
    the topics alone; returns its items once the run is complete there."""
    url = f"sqlite:///{data_dir / 'replayed.db'}"
    env = {**stack.env(), "READ_STORE_URL": url, "KAFKA_GROUP_ID": f"replay-{time.time_ns()}",
           "METRICS_PORT": str(free_port())}
    replayer = ServiceProcess("recorder-replay", ["recorder"], env, data_dir / "logs").start()
    stack.processes["recorder-replay"] = replayer  # stopped with the stack, whatever happens

    def complete():
        if _exited(replayer):
            raise RuntimeError(f"replaying recorder exited:\n{replayer.log_text()[-3000:]}")
        try:
            items = store_items(url, run_id)
        except Exception:  # the store is created by the recorder's first migration
            return None
        done = len(items) == expected_total and all(i["status"] != "pending" for i in items.values())
        return items if done else None

    return wait_until(complete, timeout_s, interval_s=0.5, message="the replayed projection")


def comparable(items: dict[tuple[str, str], dict]) -> dict[tuple[str, str], tuple]:
    return {k: (i["status"], i["request_id"], i["submission_id"], (i["error"] or {}).get("code"))
            for k, i in items.items()}
