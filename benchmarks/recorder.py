"""Recorder figures (interfaces.md §6):

- recorder_sqlite_events_per_s / recorder_postgres_events_per_s: the projection + store path
  (ReadStore.apply: normalise, de-duplicate by event_id, fold, history rows, item / run-item / run /
  counter writes, reference-search rows, offsets, commit) over realistic decoded event dicts in
  worker-sized batches (2,000 events: the default KAFKA_MAX_POLL_RECORDS): a run opened, 50,000
  catalog changes with real attribute JSON, then per item a validation failure (1 in 7) or a
  submission outcome (accepted, or INVALID with issues), the run closed, with the worker's
  collector settings (catalog_sync.runtime.gc_policy). Kafka I/O and Avro decoding are NOT included (the
  worker loop and kafka_passthrough figures cover those). PostgreSQL runs on the same 2 cores as
  the benchmark.
- recorder_postgres_copy_events_per_s: the limit of the same database for the same data: every row
  the PostgreSQL projection left (all its tables) written again by a bare binary COPY per table, in
  one transaction, into an empty store of the same schema (same tables and indexes), counted as
  the same number of events. recorder_vs_copy_ratio (run.py) divides the two.
- api_items_p99_ms (+ _p50_ms): GET /api/items over real HTTP against a separate `uvicorn` process,
  1,000,000 items stored in the last run (SQLite, the default store), a mix of filtered pages the
  web page asks for. Reference-substring searches are reported apart (api_items_reference_*).
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ITEMS = 50_000          # items per projection run: 2 events each (change + outcome) ≈ 100k events
BATCH_ITEMS = 1_000     # a 2,000-event poll: new changes plus the outcomes of the previous poll's items
API_ITEMS = 1_000_000
API_REQUESTS = 400
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://catalog_sync:catalog_sync@127.0.0.1:5432/test")


def _batches(items: int):
    from tests.support.sample_events import TOPIC_OF, Message, SampleRun

    run = SampleRun()
    offsets: dict = {}

    def message(kind_event, partition):
        kind, event = kind_event
        topic = TOPIC_OF[kind]
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        return Message(topic, partition, offset, kind, event)

    batches = []
    for start in range(0, items + BATCH_ITEMS, BATCH_ITEMS):
        batch = [message(run.changed(f"SKU-{i:07d}", item_type="variant" if i % 3 == 0 else "product"), i % 4)
                 for i in range(start, min(start + BATCH_ITEMS, items))]
        for i in range(max(0, start - BATCH_ITEMS), min(start, items)):
            kind = "variant" if i % 3 == 0 else "product"
            if i % 7 == 0:
                outcome = run.validation_failed(f"SKU-{i:07d}", item_type=kind)
            else:
                outcome = run.submitted(f"SKU-{i:07d}", item_type=kind, accepted=i % 10 != 0)
            batch.append(message(outcome, i % 4))
        batches.append(batch)
    batches[0].insert(0, message(run.opened(), 0))
    batches[-1].append(message(run.closed(items), 0))
    return batches


def _projection_rate(store) -> float:
    from catalog_sync.runtime.gc_policy import apply_worker_gc_policy

    store.migrate()
    batches = _batches(ITEMS)
    events = sum(len(b) for b in batches)
    thresholds = gc.get_threshold()
    # As the recorder worker runs; its freeze also keeps the generated input out of the GC's scans.
    apply_worker_gc_policy()
    try:
        started = time.perf_counter()
        for batch in batches:
            store.apply("bench", batch)
        elapsed = time.perf_counter() - started
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    return events / elapsed


def _copy_rate(schema: str) -> float:
    """Events/s of writing the rows the projection left in `schema` with a bare binary COPY per
    table (one transaction) into a freshly migrated store: what the database itself allows."""
    import psycopg
    from psycopg import sql

    from catalog_sync.recorder.store import ReadStore

    events = 2 * ITEMS + 2  # as _batches: a change and an outcome per item, the run opened and closed
    target = f"{schema}_copy"
    empty = ReadStore(POSTGRES_URL, schema=target)
    empty.migrate()
    empty.close()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE' "
            "AND table_name <> 'schema_migrations' ORDER BY table_name", (schema,))]
        rows: dict[str, bytes] = {}
        for table in tables:
            data = bytearray()
            with conn.cursor().copy(sql.SQL("COPY {}.{} TO STDOUT (FORMAT BINARY)").format(
                    sql.Identifier(schema), sql.Identifier(table))) as copy:
                for chunk in copy:
                    data += chunk
            rows[table] = bytes(data)
        for table in tables:  # a migration may seed a row; the copy starts from empty tables
            conn.execute(sql.SQL("DELETE FROM {}.{}").format(sql.Identifier(target), sql.Identifier(table)))
        started = time.perf_counter()
        with conn.transaction():
            for table in tables:
                with conn.cursor().copy(sql.SQL("COPY {}.{} FROM STDIN (FORMAT BINARY)").format(
                        sql.Identifier(target), sql.Identifier(table))) as copy:
                    copy.write(rows[table])
        elapsed = time.perf_counter() - started
    print(f"   copied {sum(len(r) for r in rows.values()) / 1e6:.1f} MB in {len(tables)} tables in {elapsed:.2f} s",
          flush=True)
    return events / elapsed


def _postgres_answers() -> bool:
    try:
        import psycopg

        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
        return True
    except Exception:
        return False


def _fill_million(path: Path) -> str:
    """1,000,000 items in one run with bulk SQL, plus the counters the recorder keeps with them."""
    import sqlite3

    from catalog_sync.recorder.store import ReadStore

    url = f"sqlite:///{path}"
    store = ReadStore(url)
    store.migrate()
    store.close()
    run_id = "run-bench"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO runs (run_id, mode, endpoint, source, started_at, opened, closed_at, item_count, "
        "changes_received, total, pending, error, finished, last_event_at, status) "
        "VALUES (?, 'production', 'production', 'bench', 1795773600000, 1, 1795777200000, ?, ?, 0, 0, 0, 0, "
        "1795777200000, 'in_progress')", (run_id, API_ITEMS, API_ITEMS))
    status = "CASE WHEN x % 100 < 7 THEN 'error' WHEN x % 100 < 10 THEN 'pending' ELSE 'finished' END"
    item_type = "CASE WHEN x % 20 = 0 THEN 'category' WHEN x % 20 < 8 THEN 'variant' ELSE 'product' END"
    error = ("CASE WHEN x % 100 < 7 THEN '{\"type\":\"amazon_response\",\"code\":\"90220\",\"message\":"
             "\"''condition_type'' is required but not supplied.\",\"details\":[]}' END")
    conn.execute(
        f"WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < {API_ITEMS - 1}) "
        "INSERT INTO items (item_key, seller_id, marketplace_id, reference, item_type, run_id, status, synced_at, "
        "latest_event_id, change_time, final_time, final_event_id, final_status, endpoint, request_id, "
        "submission_id, error_json, issues_json) "
        f"SELECT 'A3SELLER0EXAMPLE|ATVPDKIKX0DER|SKU-' || printf('%07d', x), 'A3SELLER0EXAMPLE', 'ATVPDKIKX0DER', "
        f"'SKU-' || printf('%07d', x), {item_type}, '{run_id}', {status}, 1795773600000 + x * 3, "
        "lower(hex(randomblob(16))), 1795773600000 + x * 3 - 2000, 1795773600000 + x * 3, "
        "lower(hex(randomblob(16))), "
        f"CASE WHEN x % 100 < 7 THEN 'error' ELSE 'finished' END, 'production', lower(hex(randomblob(16))), "
        f"lower(hex(randomblob(16))), {error}, NULL FROM c")
    conn.execute("INSERT INTO item_refs (item_key, reference) SELECT item_key, LOWER(reference) FROM items")
    conn.execute("INSERT INTO item_counts (run_id, item_type, status, n) "
                 "SELECT run_id, item_type, status, COUNT(*) FROM items GROUP BY run_id, item_type, status")
    conn.execute("INSERT INTO item_minute_counts (minute, run_id, item_type, status, n) "
                 "SELECT synced_at / 60000, run_id, item_type, status, COUNT(*) FROM items "
                 "GROUP BY synced_at / 60000, run_id, item_type, status")
    conn.execute("UPDATE runs SET total = (SELECT COUNT(*) FROM items), "
                 "pending = (SELECT COUNT(*) FROM items WHERE status = 'pending'), "
                 "error = (SELECT COUNT(*) FROM items WHERE status = 'error'), "
                 "finished = (SELECT COUNT(*) FROM items WHERE status = 'finished')")
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return url


def _serve(url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "READ_STORE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "catalog_sync.recorder.api:app_from_env", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _latencies(base: str, requests: list[dict]) -> list[float]:
    import httpx

    out = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for params in requests[:20]:  # warm the page cache and the connection
            client.get("/api/items", params=params).raise_for_status()
        for params in requests:
            started = time.perf_counter()
            client.get("/api/items", params=params).raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _api_figures(results: dict) -> None:
    import httpx

    from catalog_sync.runtime.processes import free_port
    from tests.support.background import wait_until

    with tempfile.TemporaryDirectory(prefix="recorder-bench-") as folder:
        started = time.perf_counter()
        url = _fill_million(Path(folder) / "read.db")
        print(f"   {API_ITEMS:,} items written in {time.perf_counter() - started:.1f} s", flush=True)
        port = free_port()
        server = _serve(url, port)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _answers(httpx, base), timeout_s=30, message="the API to start")
            cursor = httpx.get(f"{base}/api/items", params={"status": "error"}).json()["next_cursor"]
            mix = [{}, {"status": "error"}, {"type": "variant"}, {"status": "pending", "type": "product"},
                   {"status": "error", "cursor": cursor}, {"since": "2026-11-27T10:40:00Z"},
                   {"type": "category", "status": "finished"}, {"status": "finished"}]
            requests = [mix[i % len(mix)] for i in range(API_REQUESTS)]
            times = _latencies(base, requests)
            results["api_items_p99_ms"] = round(_p(times, 99), 2)
            results["api_items_p50_ms"] = round(_p(times, 50), 2)
            # Prefixes (1,000 matches each), infixes (a few hundred, spread over the run) and whole references.
            search = [[{"reference": f"SKU-0{i:03d}"}, {"reference": f"{i:03d}7", "status": "error"},
                       {"reference": f"sku-{i * 9973:07d}"}][i % 3] for i in range(150)]
            search_times = _latencies(base, search)
            results["api_items_reference_p50_ms"] = round(_p(search_times, 50), 2)
            results["api_items_reference_p99_ms"] = round(_p(search_times, 99), 2)
        finally:
            server.terminate()
            server.wait(10)


def _answers(httpx, base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run(results: dict) -> None:
    from catalog_sync.recorder.store import ReadStore

    with tempfile.TemporaryDirectory(prefix="recorder-bench-") as folder:
        store = ReadStore(f"sqlite:///{Path(folder) / 'read.db'}")
        try:
            results["recorder_sqlite_events_per_s"] = round(_projection_rate(store))
        finally:
            store.close()
    print(f"   sqlite: {results['recorder_sqlite_events_per_s']:,} events/s (no Kafka I/O, no Avro decode)",
          flush=True)

    if _postgres_answers():
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        store = ReadStore(POSTGRES_URL, schema=schema)
        try:
            results["recorder_postgres_events_per_s"] = round(_projection_rate(store))
            results["recorder_postgres_copy_events_per_s"] = round(_copy_rate(schema))
        finally:
            store.close()
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                for name in (schema, f"{schema}_copy"):
                    conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        print(f"   postgres: {results['recorder_postgres_events_per_s']:,} events/s (no Kafka I/O, no Avro decode); "
              f"a bare COPY of the rows it wrote: {results['recorder_postgres_copy_events_per_s']:,} events/s",
              flush=True)
    else:
        print(f"   postgres: skipped, nothing answers at {POSTGRES_URL} (set TEST_POSTGRES_URL)", flush=True)

    _api_figures(results)
    print(f"   /api/items p50 {results['api_items_p50_ms']} ms, p99 {results['api_items_p99_ms']} ms; reference "
          f"search p50 {results['api_items_reference_p50_ms']} ms, p99 {results['api_items_reference_p99_ms']} ms",
          flush=True)
