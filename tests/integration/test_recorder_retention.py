"""Retention on real SQLite and PostgreSQL: many runs stay bounded, and what the page, `retry` and
`publish --changed-only` read is the same before and after pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog_sync.recorder.read_model import ItemFilters, ReadModel
from catalog_sync.recorder.retention import Pruner, RetentionPolicy
from catalog_sync.recorder.store import ReadStore
from catalog_sync.runtime.events import item_key
from tests.support.sample_events import SELLER, US, Partitions, SampleRun
from tests.support.stores import STORE_KINDS, migrated_store

GROUP = "recorder"
CATALOG = [f"HB-{i:03d}" for i in range(8)]
FIRST_RUN = datetime(2026, 1, 1, tzinfo=UTC)
EVERY = timedelta(days=2)


@pytest.fixture(params=STORE_KINDS)
def store(request, tmp_path):
    with migrated_store(request.param, tmp_path) as opened:
        yield opened


def sync_run(store: ReadStore, partitions: Partitions, n: int) -> SampleRun:
    """Run n: the whole catalog again (every 4th item rejected), and in every 10th run one item of
    its own that no later run touches (so that run stays some item's current run)."""
    run = SampleRun(start=FIRST_RUN + n * EVERY)
    references = CATALOG + ([f"ONLY-{n}"] if n % 10 == 0 else [])
    events = [run.opened()] + [run.changed(r) for r in references]
    events += [run.submitted(r, accepted=(i + n) % 4 != 0) for i, r in enumerate(references)]
    store.apply(GROUP, partitions.messages(events + [run.closed(len(references))]))
    return run


def counts(store: ReadStore) -> dict[str, int]:
    with store.read() as s:
        return {t: s.one(f"SELECT COUNT(*) FROM {t}")[0] for t in ("runs", "run_items", "item_events", "items")}


def what_users_read(model: ReadModel, run_id: str) -> dict:
    payloads = model.run_payloads(run_id, "all")
    keys = [item_key(SELLER, US, r) for r in CATALOG]
    return {
        "page": model.items(ItemFilters(run_id="all", limit=100))["items"],
        "latest run": model.items(ItemFilters(run_id=run_id, limit=100)),
        "retry": sorted((p["reference"], p["attributes_json"]) for p in payloads.items) if payloads else None,
        "changed-only": model.last_finished_hashes(keys, "production"),
        "support case": model.support_case(run_id=run_id)["request_ids"],
        "item": {k: v for k, v in model.item("HB-001").items() if k != "history"},
    }


def test_many_runs_stay_bounded_and_users_read_the_same(store):
    partitions = Partitions()
    policy = RetentionPolicy(history_days=10, keep_runs=3, batch_size=5)  # small batches: many steps
    sizes = []
    for n in range(40):
        run = sync_run(store, partitions, n)
        now = (run.start + timedelta(hours=1)).timestamp()
        model = ReadModel(store, clock=lambda now=now: now)
        before = what_users_read(model, run.run_id)
        pruned = Pruner(store, policy, clock=lambda now=now: now).run()
        assert what_users_read(model, run.run_id) == before, f"pruning after run {n} changed what users read"
        sizes.append(counts(store))
        if n >= 10:
            assert pruned, f"nothing pruned after run {n}"
    # Kept: the 3 newest runs, those within 10 days (5 runs at 2-day spacing) and the runs that are
    # still an item's current run (one in ten): the store stops growing with the number of runs.
    assert max(size["runs"] for size in sizes[20:]) <= 5 + 4
    # History: what the last 10 days hold, plus, per run kept as an item's current run, the final
    # event of each of its memberships; never the 40 runs' worth a store without retention keeps.
    for earlier, later in ((19, 29), (29, 39)):
        assert sizes[later]["item_events"] - sizes[earlier]["item_events"] <= len(CATALOG) + 2
    assert sizes[-1]["item_events"] < 40 * len(CATALOG) * 2 / 4
    assert sizes[-1]["items"] == len(CATALOG) + 4
    with store.read() as s:
        kept = {r[0] for r in s.execute("SELECT run_id FROM runs")}
        current = {r[0] for r in s.execute("SELECT DISTINCT run_id FROM items")}
    assert current <= kept


def test_an_old_run_that_is_still_an_items_current_run_keeps_its_history_and_payload(store):
    partitions = Partitions()
    first = sync_run(store, partitions, 0)  # ONLY-0 is synced in this run only
    last = sync_run(store, partitions, 30)
    now = (last.start + timedelta(hours=1)).timestamp()
    Pruner(store, RetentionPolicy(history_days=10, keep_runs=1), clock=lambda: now).run()
    model = ReadModel(store, clock=lambda: now)
    assert first.run_id in {r["run_id"] for r in model.runs(limit=50)["runs"]}
    only = model.item("ONLY-0")
    assert only["run_id"] == first.run_id and only["history"], "the item lost what its row points at"
    assert {p["reference"] for p in model.run_payloads(first.run_id, "all").items} == {*CATALOG, "ONLY-0"}


def test_the_prune_command_applies_retention_and_refuses_a_horizon_shorter_than_kafkas(tmp_path):
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'read.db'}"
    store = ReadStore(url)
    store.migrate()
    partitions = Partitions()
    for n in range(5):  # 2026-01-01 .. 2026-01-09: long past the horizon of 30 days
        sync_run(store, partitions, n)
    store.close()
    env = {**os.environ, "READ_STORE_URL": url}

    def prune(*args):
        return subprocess.run([sys.executable, "-m", "catalog_sync", "prune", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    refused = prune("--days", "3")
    assert refused.returncode == 2 and "must be 0 (keep everything) or at least 8" in refused.stderr
    done = prune("--days", "30", "--keep-runs", "2")
    assert done.returncode == 0, done.stderr
    assert "pruned 2 run(s)" in done.stdout  # run 0 stays: ONLY-0's current run
    store = ReadStore(url)
    try:
        assert counts(store)["runs"] == 3
    finally:
        store.close()


def test_the_recorder_prunes_in_the_background_until_stopped(store):
    import threading

    from catalog_sync.recorder.service import prune_in_background
    from catalog_sync.recorder.settings import RecorderSettings
    from tests.support.background import wait_until

    partitions = Partitions()
    for n in range(1, 6):  # no ONLY-n item: every old run may go
        sync_run(store, partitions, n)
    settings = RecorderSettings(retention_days=30, keep_runs=1, prune_every_s=0.05)
    stop = threading.Event()
    thread = prune_in_background(store, settings, stop)
    try:
        wait_until(lambda: counts(store)["runs"] == 1, timeout_s=30, message="the background pruning")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
