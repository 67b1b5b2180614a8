"""The read store on real SQLite and real PostgreSQL: one code path, exactly-once effect,
migrations, and the read model's filters, summaries and pagination."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from catalog_sync.recorder.read_model import BadQuery, ItemFilters, ReadModel
from catalog_sync.recorder.service import Recorder
from catalog_sync.recorder.store import PositionsMoved, ReadStore, StoreError
from catalog_sync.runtime.codec import AvroCodec
from tests.support.requirements import POSTGRES_URL, postgres_answers, require
from tests.support.sample_events import ATTRIBUTES_JSON, SELLER, US, Message, Partitions, SampleRun, just_now

GROUP = "recorder"



def drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_factory(request, tmp_path):
    """Factory of stores on one database: SQLite in tmp_path, or a PostgreSQL schema of this test."""
    opened: list[ReadStore] = []
    if request.param == "postgres":
        require(postgres_answers(), f"PostgreSQL does not answer at {POSTGRES_URL} (set TEST_POSTGRES_URL)")
        schema = f"t_{uuid.uuid4().hex[:12]}"

        def make():
            opened.append(ReadStore(POSTGRES_URL, schema=schema))
            return opened[-1]
    else:
        schema = None

        def make():
            opened.append(ReadStore(f"sqlite:///{tmp_path / 'read.db'}"))
            return opened[-1]

    yield make
    for store in opened:
        store.close()
    if schema:
        drop_schema(schema)


@pytest.fixture
def store(store_factory):
    s = store_factory()
    s.migrate()
    return s


def snapshot(store: ReadStore) -> dict:
    with store.read() as s:
        return {
            table: sorted(s.execute(f"SELECT * FROM {table}"), key=repr)
            for table in ("runs", "items", "run_items", "item_counts")
        } | {"history": s.one("SELECT COUNT(*) FROM item_events")[0]}


def one_run(run: SampleRun, n: int = 6) -> list[tuple[str, dict]]:
    events = [run.opened()] + [run.changed(f"HB-{i:03d}") for i in range(n)]
    events += [run.submitted(f"HB-{i:03d}") for i in range(0, n, 3)]
    events += [run.submitted(f"HB-{i:03d}", accepted=False) for i in range(1, n, 3)]
    events += [run.validation_failed(f"HB-{i:03d}") for i in range(2, n, 3)]
    return events + [run.closed(n)]


def test_migrations_are_versioned_and_applied_once(store_factory):
    from catalog_sync.recorder.migrations import MIGRATIONS

    versions = [m.version for m in MIGRATIONS]
    first = store_factory()
    assert first.migrate() == versions
    assert first.migrate() == []
    assert store_factory().migrate() == []  # a second process starting later
    assert first.schema_versions() == versions


def test_upgrading_a_version_1_store_keeps_history_and_makes_old_items_searchable(store_factory, monkeypatch):
    from catalog_sync.recorder import store as store_module
    from catalog_sync.recorder.migrations import MIGRATIONS

    old = store_factory()
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
    old.migrate()
    with old.write() as s:  # what a version-1 recorder wrote: an item and its history
        s.execute("INSERT INTO items (item_key, seller_id, marketplace_id, reference, item_type, run_id, status, "
                  "synced_at, latest_event_id) VALUES ('S|M|Old-Ref_9', 'S', 'M', 'Old-Ref_9', 'product', NULL, "
                  "'pending', 1000, 'e1')")
        s.execute("INSERT INTO item_events (event_id, item_key, event_type, event_time, run_id, recorded_at, "
                  "details_json) VALUES ('e1', 'S|M|Old-Ref_9', 'CatalogItemChanged', 1000, NULL, 1000, '{}')")
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    assert old.migrate() == [m.version for m in MIGRATIONS[1:]]
    model = ReadModel(old)
    assert [i["reference"] for i in model.items(ItemFilters(reference="ref_9", run_id="all"))["items"]] == ["Old-Ref_9"]
    assert [h["event_id"] for h in model.item("Old-Ref_9")["history"]] == ["e1"]
    # The old event delivered again (same id, same time: 1,000 ms after the epoch) is still a duplicate.
    run = SampleRun(run_id=None)
    kind, event = run.changed("Old-Ref_9", marketplace_id="M", seller_id="S")
    event.update(event_id="e1", event_time=datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert old.apply(GROUP, [Message("catalog.item.changed", 0, 0, kind, event)]).duplicates == 1


def test_a_store_newer_than_the_program_is_refused(store):
    with store.write() as s:
        s.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)")
    with pytest.raises(StoreError, match="newer"):
        store.migrate()


def test_a_run_is_projected_with_counts_and_status(store):
    run = SampleRun()
    store.apply(GROUP, Partitions().messages(one_run(run)))
    model = ReadModel(store, clock=lambda: run.start.timestamp() + 60)
    (found,) = model.runs()["runs"]
    assert found["status"] == "finished_with_errors"
    assert found["counts"] == {"total": 6, "pending": 0, "error": 4, "finished": 2}
    assert found["mode"] == "test" and found["endpoint"] == "test"
    activity = model.activity()
    assert activity["in_progress"] is False and activity["last_run"]["run_id"] == run.run_id


def test_replaying_a_batch_or_republished_events_changes_nothing(store):
    run = SampleRun()
    partitions = Partitions()
    events = one_run(run)
    messages = partitions.messages(events)
    store.apply(GROUP, messages)
    before = snapshot(store)

    replay = store.apply(GROUP, messages)  # same offsets: a batch replayed after a crash
    assert replay.already_applied == len(messages) and not replay.applied
    republished = store.apply(GROUP, partitions.messages(events[1:-1]))  # same event_ids, new offsets
    assert republished.duplicates == len(messages) - 2
    assert snapshot(store) == before


def test_offsets_commit_with_the_projection_or_not_at_all(store, monkeypatch):
    run = SampleRun()
    partitions = Partitions()
    first = partitions.messages([run.opened(), run.changed("A")])
    store.apply(GROUP, first)
    before = snapshot(store)

    def broken(*_args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ReadStore, "_save_offsets", staticmethod(broken))
    with pytest.raises(RuntimeError):
        store.apply(GROUP, partitions.messages([run.submitted("A"), run.closed(1)]))
    assert snapshot(store) == before  # the projection rolled back with the offsets
    assert store.offsets(GROUP) == {("catalog.run.events", 0): 1, ("catalog.item.changed", 0): 1}


def test_a_bulk_write_the_database_refuses_late_rolls_the_whole_batch_back(store, monkeypatch):
    """A bulk write the database refuses mid-batch (history rows COPYed twice on PostgreSQL) fails the
    whole batch: projection and offsets stay as they were, and the connection is usable again."""
    run = SampleRun()
    partitions = Partitions()
    store.apply(GROUP, partitions.messages([run.opened(), run.changed("A")]))
    before, offsets = snapshot(store), store.offsets(GROUP)
    record = ReadStore._record_history

    def twice(s, events, items):  # the same history rows again: a unique-key violation
        fresh = record(s, events, items)
        record(s, events, {})
        return fresh

    monkeypatch.setattr(ReadStore, "_record_history", staticmethod(twice))
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        store.apply(GROUP, partitions.messages([run.submitted("A"), run.changed("B"), run.closed(2)]))
    assert snapshot(store) == before and store.offsets(GROUP) == offsets
    monkeypatch.undo()
    store.apply(GROUP, partitions.messages([run.submitted("A")]))  # the connection is usable again
    assert snapshot(store)["history"] == before["history"] + 1


def test_the_worker_seeks_to_the_stored_offsets_and_unknown_partitions_start_at_zero(store):
    run = SampleRun()
    store.apply(GROUP, Partitions().messages([run.opened(), run.changed("A"), run.changed("B")]))
    recorder = Recorder(store, GROUP, metrics=None)
    seek = recorder.on_assign([("catalog.item.changed", 0), ("catalog.item.changed", 1), ("catalog.run.events", 0)])
    assert seek == {("catalog.item.changed", 0): 2, ("catalog.item.changed", 1): 0, ("catalog.run.events", 0): 1}
    assert store.offsets("another-group") == {}


def test_a_batch_is_refused_when_the_stored_offsets_are_not_where_its_writer_left_them(store):
    """A store that lost acknowledged commits (or that another writer moved on) holds other
    offsets than the recorder last read or wrote: applying the next batch would leave a gap."""
    run = SampleRun()
    partitions = Partitions()
    first = partitions.messages([run.opened(), run.changed("A"), run.changed("B")])
    store.apply(GROUP, first, expected={("catalog.run.events", 0): 0, ("catalog.item.changed", 0): 0})
    before, offsets = snapshot(store), store.offsets(GROUP)
    lost_and_next = partitions.messages([run.changed("C"), run.changed("D")])
    with pytest.raises(PositionsMoved, match="catalog.item.changed/0: 3, 2"):  # "C" was acknowledged, then lost
        store.apply(GROUP, lost_and_next[1:], expected={("catalog.item.changed", 0): 3})
    with pytest.raises(PositionsMoved, match="catalog.item.changed/0: None, 2"):  # a partition never positioned
        store.apply(GROUP, lost_and_next, expected={})
    assert snapshot(store) == before and store.offsets(GROUP) == offsets
    store.apply(GROUP, lost_and_next, expected={("catalog.item.changed", 0): 2})
    assert store.offsets(GROUP)[("catalog.item.changed", 0)] == 4


def test_events_in_many_partitions_and_out_of_order_give_the_same_result(store_factory, tmp_path):
    run = SampleRun()
    events = one_run(run, n=30)
    a = store_factory()
    a.migrate()
    a.apply(GROUP, Partitions().messages(events))
    expected = ReadModel(a, clock=lambda: 0).items(ItemFilters(limit=100))
    # Reverse order, in batches of 7, as separate transactions: outcomes before changes, RunClosed first.
    with a.write() as s:
        for table in ("runs", "items", "run_items", "item_counts", "item_events", "consumer_offsets",
                      "item_payloads", "item_finished_hashes"):
            s.execute(f"DELETE FROM {table}")
    partitions = Partitions()
    reversed_events = list(reversed(events))
    for start in range(0, len(reversed_events), 7):
        a.apply(GROUP, partitions.messages(reversed_events[start:start + 7]))
    again = ReadModel(a, clock=lambda: 0).items(ItemFilters(limit=100))
    assert again == expected
    assert again["summary"] == {"total": 30, "pending": 0, "error": 20, "finished": 10}


def test_large_batches_with_an_item_several_times_give_what_one_event_per_batch_gives(store):
    """Worker-sized batches take the bulk paths (PostgreSQL: COPY into staging tables and one upsert
    per table) and fold an item's events of one batch into one row write; a replayed batch and a
    republished event change nothing. Same rows as applying every event in its own transaction."""
    run = SampleRun()
    refs = [f"HB-{i:03d}" for i in range(80)]  # more rows than the few-rows VALUES path takes
    changes = [run.opened()] + [run.changed(r) for r in refs]
    outcomes = [run.submitted(r, accepted=i % 3 != 1) if i % 3 != 2 else run.validation_failed(r)
                for i, r in enumerate(refs)]
    # The same items again in the same batch: changed after their outcome (pending again), and
    # five of them finished once more; one event republished inside the batch.
    again = [run.changed(r) for r in refs[:10]] + [run.submitted(r) for r in refs[:5]]
    second = outcomes + again + [outcomes[7]]
    batches = [changes, second, [run.closed(len(refs))]]

    partitions = Partitions()
    messages = [partitions.messages(b) for b in batches]
    store.apply(GROUP, messages[0])
    result = store.apply(GROUP, messages[1])
    assert result.duplicates == 1
    assert store.apply(GROUP, messages[1]).already_applied == len(second)  # replayed after a crash
    store.apply(GROUP, messages[2])
    batched = snapshot(store)
    model = ReadModel(store, clock=lambda: run.start.timestamp() + 60)
    (found,) = model.runs()["runs"]
    # HB-000..004 finished again, HB-005..009 pending again; of HB-010..079, 23 accepted (i % 3 == 0),
    # the others INVALID or failing validation.
    assert found["counts"] == {"total": 80, "pending": 5, "error": 47, "finished": 28}
    assert found["status"] == "in_progress"
    history = model.item(refs[0])["history"]
    assert [h["event_type"] for h in history] == ["CatalogItemChanged", "SubmissionCompleted",
                                                  "CatalogItemChanged", "SubmissionCompleted"]

    with store.write() as s:
        for table in ("runs", "items", "run_items", "item_counts", "item_events", "consumer_offsets",
                      "item_payloads", "item_finished_hashes"):
            s.execute(f"DELETE FROM {table}")
    one_by_one = Partitions()
    for event in [e for b in batches for e in b]:
        store.apply(GROUP, one_by_one.messages([event]))
    assert snapshot(store) == batched


def seed_two_runs(store: ReadStore) -> tuple[SampleRun, SampleRun]:
    first = SampleRun()
    second = SampleRun()
    second.start = first.start + timedelta(hours=2)
    p = Partitions()
    store.apply(GROUP, p.messages(one_run(first, n=9)))
    events = [second.opened()]
    for i in range(40):
        kind = ("category", "product", "variant")[i % 3]
        events.append(second.changed(f"SKU_{i:02d}%x" if i == 7 else f"SKU-{i:02d}", item_type=kind))
    for i in range(0, 40, 2):
        kind = ("category", "product", "variant")[i % 3]
        events.append(second.submitted(f"SKU-{i:02d}", item_type=kind, accepted=i % 4 == 0))
    store.apply(GROUP, p.messages(events))
    return first, second


def all_pages(model: ReadModel, **filters) -> tuple[dict, list[dict]]:
    page = model.items(ItemFilters(limit=7, **filters))
    summary, items = page["summary"], list(page["items"])
    while page["next_cursor"]:
        page = model.items(ItemFilters(limit=7, cursor=page["next_cursor"], **filters))
        assert page["summary"] == summary
        items.extend(page["items"])
    return summary, items


def test_items_default_to_the_last_run_and_pages_cover_the_filtered_set_once(store):
    first, second = seed_two_runs(store)
    model = ReadModel(store, clock=lambda: second.start.timestamp())
    summary, items = all_pages(model)
    assert summary == {"total": 40, "pending": 20, "error": 10, "finished": 10}
    assert len(items) == 40 and len({i["reference"] for i in items}) == 40
    assert all(i["run_id"] == second.run_id for i in items)
    assert [i["synced_at"] for i in items] == sorted((i["synced_at"] for i in items), reverse=True)


@pytest.mark.parametrize(("filters", "expected_total"), [
    ({"status": "error"}, 10),
    ({"status": "pending", "item_type": "category"}, 7),
    ({"item_type": "variant"}, 13),
    ({"reference": "sku-1"}, 10),          # case-insensitive substring
    ({"reference": "_02d%"}, 0),           # LIKE wildcards are literal text
    ({"reference": "%x"}, 1),
    ({"reference": "ku_0"}, 1),            # the trigram candidates (SKU-0x too) are narrowed to the literal _
    ({"reference": "u_07%"}, 1),
    ({"reference": "SKU", "status": "finished"}, 10),
])
def test_every_filter_and_its_summary(store, filters, expected_total):
    _, second = seed_two_runs(store)
    model = ReadModel(store, clock=lambda: second.start.timestamp())
    summary, items = all_pages(model, **filters)
    assert summary["total"] == expected_total == len(items)
    assert summary["total"] == summary["pending"] + summary["error"] + summary["finished"]
    for item in items:
        if "status" in filters:
            assert item["status"] == filters["status"]
        if "item_type" in filters:
            assert item["item_type"] == filters["item_type"]


def test_run_and_since_filters(store):
    first, second = seed_two_runs(store)
    model = ReadModel(store, clock=lambda: second.start.timestamp())
    summary, items = all_pages(model, run_id=first.run_id)
    assert summary["total"] == 9 and {i["run_id"] for i in items} == {first.run_id}
    since = (second.start - timedelta(minutes=1)).isoformat()
    summary, items = all_pages(model, since=since)  # across runs
    assert summary["total"] == 40
    summary, _ = all_pages(model, since=first.start.isoformat().replace("+00:00", "Z"))
    assert summary["total"] == 49
    assert all_pages(model, run_id="all")[0]["total"] == 49


@pytest.mark.parametrize("bad", [{"status": "broken"}, {"item_type": "book"}, {"since": "yesterday"},
                                 {"cursor": "not-a-cursor"}, {"limit": 0}])
def test_bad_filters_are_refused_with_a_clear_message(store, bad):
    with pytest.raises(BadQuery):
        ReadModel(store).items(ItemFilters(**bad))


def test_item_history_is_every_event_oldest_first(store):
    run = SampleRun()
    events = [run.changed("HB-1"), run.submitted("HB-1", accepted=False), run.submitted("HB-1")]
    store.apply(GROUP, Partitions().messages(list(reversed(events))))
    found = ReadModel(store).item("HB-1")
    assert [h["event_type"] for h in found["history"]] == ["CatalogItemChanged", "SubmissionCompleted",
                                                           "SubmissionCompleted"]
    assert [h["event_id"] for h in found["history"]] == [e["event_id"] for _, e in events]
    assert found["status"] == "finished"
    assert ReadModel(store).item("HB-") is None  # exact reference, not a substring


def test_an_item_is_found_by_its_exact_reference_only(store):
    # References differing only in case (non-ASCII too) are different items; every lookup by
    # exact reference (item detail, support case) tells them apart.
    run = SampleRun()
    store.apply(GROUP, Partitions().messages([run.changed("Äpfel-1"), run.changed("äpfel-1"),
                                              run.submitted("äpfel-1", accepted=False)]))
    model = ReadModel(store)
    assert (model.item("Äpfel-1")["reference"], model.item("Äpfel-1")["status"]) == ("Äpfel-1", "pending")
    assert (model.item("äpfel-1")["reference"], model.item("äpfel-1")["status"]) == ("äpfel-1", "error")
    assert model.item("ÄPFEL-1") is None
    assert model.support_case(reference="Äpfel-1")["submissions"] == []
    assert len(model.support_case(reference="äpfel-1")["submissions"]) == 1


def test_support_case_lists_request_ids_submission_ids_and_country(store):
    run = SampleRun(mode="production")
    start = [run.opened(), run.changed("HB-1", marketplace_id="A1PA6795UKMFR9")]
    earlier = run.submitted("HB-1", accepted=False, http_status=500, error_code="InternalFailure",
                            marketplace_id="A1PA6795UKMFR9")
    answer = run.submitted("HB-1", accepted=False, marketplace_id="A1PA6795UKMFR9")
    store.apply(GROUP, Partitions().messages([*start, answer, earlier]))
    case = ReadModel(store).support_case(reference="HB-1", marketplace_id="A1PA6795UKMFR9")
    assert case["api"] == "Listings Items API" and case["operation"] == "putListingsItem"
    assert case["marketplace_id"] == "A1PA6795UKMFR9" and case["country"] == "Germany"
    assert case["request_ids"] == [answer[1]["request_id"], earlier[1]["request_id"]]  # newest first
    assert case["submission_ids"] == [answer[1]["submission_id"]]
    assert answer[1]["request_id"] in case["text"] and "Germany" in case["text"]
    by_run = ReadModel(store).support_case(run_id=run.run_id)
    assert [s["request_id"] for s in by_run["submissions"]] == [answer[1]["request_id"]]
    assert ReadModel(store).support_case(run_id="nope") is None


def test_a_run_goes_interrupted_when_items_stall_and_the_gauges_say_so(store):
    run = SampleRun()
    store.apply(GROUP, Partitions().messages([run.opened(), run.changed("A"), run.changed("B"), run.closed(2)]))
    last_event = run.start.timestamp() + 0.004
    calm = ReadModel(store, stall_seconds=600, clock=lambda: last_event + 60)
    stalled = ReadModel(store, stall_seconds=600, clock=lambda: last_event + 601)
    assert calm.runs()["runs"][0]["status"] == "in_progress"
    assert stalled.runs()["runs"][0]["status"] == "interrupted"
    assert stalled.activity()["in_progress"] is False
    assert stalled.activity()["last_run"]["status"] == "interrupted"
    by_status, pending = stalled.run_gauges()
    assert by_status["interrupted"] == 1 and pending == 2


def test_concurrent_writers_keep_counts_exact(store_factory):
    """Two recorder processes (different partitions, same items): serialised writers, exact counters."""
    stores = [store_factory(), store_factory()]
    stores[0].migrate()
    run = SampleRun()
    changes = [run.changed(f"C-{i}") for i in range(300)]
    outcomes = [run.submitted(f"C-{i}", accepted=i % 2 == 0) for i in range(300)]

    def write(store, events, partition):
        for start in range(0, len(events), 25):
            chunk = events[start:start + 25]
            store.apply(GROUP, [Message(f"topic-{partition}", partition, start + j, k, e)
                                for j, (k, e) in enumerate(chunk)])

    threads = [threading.Thread(target=write, args=(stores[0], changes, 0)),
               threading.Thread(target=write, args=(stores[1], outcomes, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stores[0].apply(GROUP, [Message("topic-2", 0, 0, *run.closed(300))])
    model = ReadModel(stores[0], clock=lambda: 0)
    assert model.items(ItemFilters())["summary"] == {"total": 300, "pending": 0, "error": 150, "finished": 150}
    assert model.runs()["runs"][0]["counts"] == {"total": 300, "pending": 0, "error": 150, "finished": 150}
    with stores[0].read() as s:
        counted = dict(s.execute("SELECT status, COUNT(*) FROM items GROUP BY status"))
    assert counted == {"error": 150, "finished": 150}


# -- payloads and last-finished hashes (retry, publish --changed-only) ------------------------------
def key(reference: str) -> str:
    return f"{SELLER}|{US}|{reference}"


def test_the_latest_payload_and_finished_hash_survive_older_events_arriving_later(store):
    run = SampleRun(mode="production")
    old_change, new_change = run.changed("HB-1"), run.changed("HB-1")
    new_change[1]["attributes_json"] = '{"brand":[{"value":"New"}]}'
    old_done, new_done = run.submitted("HB-1"), run.submitted("HB-1")
    old_done[1]["content_hash"], new_done[1]["content_hash"] = "h-old", "h-new"
    p = Partitions()
    store.apply(GROUP, p.messages([run.opened(), new_change, new_done]))
    store.apply(GROUP, p.messages([old_change, old_done, run.closed(1)]))  # late, older: change nothing
    model = ReadModel(store)
    assert model.last_finished_hashes([key("HB-1"), key("HB-9")], "production") == {key("HB-1"): "h-new"}
    assert model.last_finished_hashes([key("HB-1")], "test") == {}
    [item] = model.run_payloads(run.run_id, "all").items
    assert item["attributes_json"] == '{"brand":[{"value":"New"}]}'
    # ...and a newer event replaces them.
    newest = run.submitted("HB-1")
    newest[1]["content_hash"] = "h-newest"
    store.apply(GROUP, p.messages([newest]))
    assert model.last_finished_hashes([key("HB-1")], "production") == {key("HB-1"): "h-newest"}


def test_run_payloads_by_status_ready_to_publish(store):
    run = SampleRun(mode="preview")
    p = Partitions()
    store.apply(GROUP, p.messages(one_run(run, n=6)))  # HB-000/003 finished, 001/004 invalid, 002/005 failed locally
    model = ReadModel(store)
    errors = model.run_payloads(run.run_id)
    assert errors.mode == "preview" and errors.missing == [] and errors.changed_since == 0
    assert [i["reference"] for i in errors.items] == ["HB-001", "HB-002", "HB-004", "HB-005"]
    first = errors.items[0]
    assert first == {
        "reference": "HB-001", "item_type": "product", "operation": "upsert", "seller_id": SELLER,
        "marketplace_id": US, "product_type": "HAIRBAND", "requirements": "LISTING", "parent_reference": None,
        "attributes_json": ATTRIBUTES_JSON, "changed_at": run.start}
    AvroCodec().encode("CatalogItemChanged", {**run.header(), "mode": "test", **first})  # the wire form takes it
    assert [i["reference"] for i in model.run_payloads(run.run_id, "finished").items] == ["HB-000", "HB-003"]
    assert model.run_payloads(run.run_id, "pending").items == []
    assert len(model.run_payloads(run.run_id, "all").items) == 6
    assert model.run_payloads("run-unknown") is None
    with pytest.raises(BadQuery):
        model.run_payloads(run.run_id, "broken")

    # A later run changed HB-001 again: retrying the first run sends the newer content.
    later = SampleRun(mode="production")
    later.start = run.start + timedelta(hours=1)
    change = later.changed("HB-001")
    change[1]["attributes_json"] = '{"brand":[{"value":"Newer"}]}'
    store.apply(GROUP, p.messages([later.opened(), change, later.closed(1)]))
    again = model.run_payloads(run.run_id)
    assert again.changed_since == 1
    assert next(i for i in again.items if i["reference"] == "HB-001")["attributes_json"] == '{"brand":[{"value":"Newer"}]}'


def test_items_recorded_before_payloads_were_kept_are_reported_missing(store):
    run = SampleRun()
    store.apply(GROUP, Partitions().messages(one_run(run, n=3)))
    with store.write() as s:  # as after upgrading a store whose items predate migration 3
        s.execute("DELETE FROM item_payloads WHERE item_key = ?", (key("HB-001"),))
    found = ReadModel(store).run_payloads(run.run_id)
    assert found.missing == [key("HB-001")]
    assert [i["reference"] for i in found.items] == ["HB-002"]


def test_finished_hashes_of_a_large_file_in_batched_lookups(store):
    run = SampleRun(mode="production")
    events = [run.opened()]
    for i in range(2_500):
        events.append(run.changed(f"SKU-{i:05d}"))
        if i % 2 == 0:
            done = run.submitted(f"SKU-{i:05d}")
            done[1]["content_hash"] = f"h-{i}"
            events.append(done)
    store.apply(GROUP, Partitions().messages(events + [run.closed(2_500)]))
    wanted = [key(f"SKU-{i:05d}") for i in range(3_000)]
    found = ReadModel(store).last_finished_hashes(wanted, "production")
    assert found == {key(f"SKU-{i:05d}"): f"h-{i}" for i in range(0, 2_500, 2)}


def test_since_summaries_match_the_items_in_the_window_as_items_move_on(store):
    # Events 7 s apart span several minutes; outcomes later move items to newer minutes (the
    # per-minute counters follow them). Every window start, on and off minute boundaries, in
    # batches of several sizes: the summary equals a count of the listed items.
    run = SampleRun(step=timedelta(seconds=7))
    events = [run.opened()] + [run.changed(f"HB-{i:02d}", item_type="variant" if i % 3 else "product")
                               for i in range(24)]
    events += [run.submitted(f"HB-{i:02d}", accepted=i % 4 != 0, item_type="variant" if i % 3 else "product")
               for i in range(0, 24, 2)]
    events += [run.validation_failed("HB-05", item_type="variant"), run.changed("HB-07", item_type="variant")]
    messages = Partitions().messages(events)
    for start in range(0, len(messages), 9):
        store.apply("recorder", messages[start:start + 9])
    model = ReadModel(store, clock=lambda: run.start.timestamp())
    for offset_s in [*range(-60, 300, 17), 60, 120, 180]:
        since = (run.start + timedelta(seconds=offset_s)).isoformat()
        for filters in ({}, {"status": "error"}, {"item_type": "variant", "status": "finished"},
                        {"run_id": run.run_id, "status": "pending"}):
            summary, items = all_pages(model, since=since, **filters)
            listed = {s: sum(1 for i in items if i["status"] == s) for s in ("pending", "error", "finished")}
            assert summary == {"total": len(items), **listed}, (offset_s, filters)
    assert all_pages(model, since=run.start.isoformat())[0]["total"] == 24
    with store.read() as s:  # counters left at zero by items that moved on are not kept
        assert s.one("SELECT COUNT(*) FROM item_minute_counts WHERE n = 0")[0] == 0
        assert s.one("SELECT SUM(n) FROM item_minute_counts")[0] == 24


def test_a_store_from_before_the_minute_counters_gets_them_from_its_items(store):
    run = SampleRun(step=timedelta(seconds=13))
    store.apply("recorder", Partitions().messages(one_run(run, n=12)))
    with store.read() as s:
        kept = sorted(s.execute("SELECT minute, run_id, item_type, status, n FROM item_minute_counts"))
    with store.write() as s:  # as a store of schema version 3 was
        s.execute("DROP TABLE item_minute_counts")
        s.execute("DELETE FROM schema_migrations WHERE version = 4")
    assert store.migrate() == [4]
    with store.read() as s:
        assert sorted(s.execute("SELECT minute, run_id, item_type, status, n FROM item_minute_counts")) == kept
    assert len(kept) > 1


def run_view(store: ReadStore, first: SampleRun, second: SampleRun) -> dict:
    """Per run: counts and status, and the references of its members by status in that run."""
    model = ReadModel(store, clock=lambda: first.start.timestamp() + 60)
    out = {}
    for found in model.runs()["runs"]:
        members = {status: sorted(i["reference"] for i in model.run_payloads(found["run_id"], status).items)
                   for status in ("pending", "error", "finished")}
        out["first" if found["run_id"] == first.run_id else "second"] = (found["counts"], found["status"], members)
    return out


@pytest.mark.parametrize("batching", ["one event per batch", "one batch"])
def test_an_item_moving_between_runs_keeps_its_membership_of_each(store, batching):
    """An item's membership of its current run lives in its item row and moves to run_items when it
    leaves; late events of a run it left, and a return to that run, keep both runs exact."""
    first, second = SampleRun(), SampleRun()
    second.start = first.start + timedelta(hours=1)
    partitions = Partitions()

    def apply(*events):
        if batching == "one batch":
            store.apply(GROUP, partitions.messages(list(events)))
        else:
            for event in events:
                store.apply(GROUP, partitions.messages([event]))

    apply(first.opened(), first.changed("X"), first.changed("Y"), first.closed(2),
          second.opened(), second.changed("X"), second.closed(1),
          # late outcomes of the first run, older than X's change in the second
          first.submitted("X", at=first.start + timedelta(minutes=30)),
          first.submitted("Y", accepted=False))
    assert run_view(store, first, second) == {
        "first": ({"total": 2, "pending": 0, "error": 1, "finished": 1}, "finished_with_errors",
                  {"pending": [], "error": ["Y"], "finished": ["X"]}),
        "second": ({"total": 1, "pending": 1, "error": 0, "finished": 0}, "in_progress",
                   {"pending": ["X"], "error": [], "finished": []}),
    }
    model = ReadModel(store)
    assert (model.item("X")["status"], model.item("X")["run_id"]) == ("pending", second.run_id)

    # A first-run outcome newer than everything: X's current run is the first again, and the
    # second run still counts X as pending until its own outcome arrives.
    apply(first.submitted("X", accepted=False, at=second.start + timedelta(minutes=10)))
    assert (model.item("X")["status"], model.item("X")["run_id"]) == ("error", first.run_id)
    view = run_view(store, first, second)
    assert view["first"][0] == {"total": 2, "pending": 0, "error": 2, "finished": 0}
    assert view["second"][2] == {"pending": ["X"], "error": [], "finished": []}
    apply(second.submitted("X", at=second.start + timedelta(minutes=20)))
    assert (model.item("X")["status"], model.item("X")["run_id"]) == ("finished", second.run_id)
    assert run_view(store, first, second) == {
        "first": ({"total": 2, "pending": 0, "error": 2, "finished": 0}, "finished_with_errors",
                  {"pending": [], "error": ["X", "Y"], "finished": []}),
        "second": ({"total": 1, "pending": 0, "error": 0, "finished": 1}, "finished",
                   {"pending": [], "error": [], "finished": ["X"]}),
    }
    assert [r["reference"] for r in model.support_case(run_id=first.run_id)["submissions"]] == ["X", "Y"]


def test_a_version_4_store_moves_current_memberships_into_the_item_rows(store):
    first, second = SampleRun(), SampleRun()
    second.start = first.start + timedelta(hours=1)
    partitions = Partitions()
    store.apply(GROUP, partitions.messages(one_run(first, n=6) + [second.opened(), second.changed("HB-000")]))
    expected = run_view(store, first, second)
    with store.write() as s:  # as a version-4 store kept them: every membership in run_items
        s.execute("INSERT INTO run_items (run_id, item_key, item_type, status, synced_at, latest_event_id, "
                  "change_time, final_time, final_event_id, final_status) "
                  "SELECT run_id, item_key, item_type, CASE WHEN run_final_time IS NULL "
                  "OR run_change_time > run_final_time THEN 'pending' ELSE run_final_status END, synced_at, "
                  "latest_event_id, run_change_time, run_final_time, run_final_event_id, run_final_status FROM items")
        s.execute("UPDATE items SET run_change_time = NULL, run_final_time = NULL, run_final_event_id = NULL, "
                  "run_final_status = NULL")
        s.execute("DELETE FROM schema_migrations WHERE version = 5")
        for column in ("run_change_time", "run_final_time", "run_final_event_id", "run_final_status"):
            s.execute(f"ALTER TABLE items DROP COLUMN {column}")
    assert store.migrate() == [5]
    with store.read() as s:
        assert s.one("SELECT COUNT(*) FROM run_items")[0] == 1  # HB-000 left the first run
    assert run_view(store, first, second) == expected
    store.apply(GROUP, partitions.messages([second.submitted("HB-000"), second.closed(1)]))
    assert run_view(store, first, second)["second"][:2] == (
        {"total": 1, "pending": 0, "error": 0, "finished": 1}, "finished")


def test_a_version_6_store_gets_each_items_run_status_from_its_recorded_times(store):
    first, second = SampleRun(), SampleRun()
    second.start = first.start + timedelta(hours=1)
    partitions = Partitions()
    store.apply(GROUP, partitions.messages(one_run(first, n=6) + [second.opened(), second.changed("HB-000")]))
    expected = run_view(store, first, second)
    with store.write() as s:  # as a version-6 store kept them: no outcome, no stored run status
        s.execute("DELETE FROM schema_migrations WHERE version = 7")
        for column in ("outcome", "run_status"):
            s.execute(f"ALTER TABLE items DROP COLUMN {column}")
    assert store.migrate() == [7]
    assert run_view(store, first, second) == expected
    store.apply(GROUP, partitions.messages([second.submitted("HB-000"), second.closed(1)]))
    assert run_view(store, first, second)["second"][:2] == (
        {"total": 1, "pending": 0, "error": 0, "finished": 1}, "finished")


def test_items_moving_between_runs_give_the_same_runs_in_any_order_and_batching(store_factory):
    import random

    first, second = SampleRun(), SampleRun()
    second.start = first.start + timedelta(minutes=1)
    events = [first.opened(), second.opened()]
    for i in range(12):
        events += [first.changed(f"M-{i:02d}"), second.changed(f"M-{i:02d}")] if i % 3 else [first.changed(f"M-{i:02d}")]
    for i in range(12):  # outcomes interleaved in time across the two runs
        events.append(first.submitted(f"M-{i:02d}", accepted=i % 2 == 0, at=second.start + timedelta(seconds=i)))
        if i % 3 == 1:
            events.append(second.validation_failed(f"M-{i:02d}", at=second.start + timedelta(seconds=i, milliseconds=500)))
    events += [first.closed(12), second.closed(8)]
    views = []
    for seed in range(4):
        store = store_factory()
        store.migrate()
        with store.write() as s:
            for table in ("runs", "items", "run_items", "item_counts", "item_events", "consumer_offsets",
                          "item_payloads", "item_finished_hashes", "item_minute_counts"):
                s.execute(f"DELETE FROM {table}")
        shuffled = list(events) if seed == 0 else random.Random(seed).sample(events, len(events))
        partitions, size = Partitions(), [len(events), 1, 5, 9][seed]
        for start in range(0, len(shuffled), size):
            store.apply(GROUP, partitions.messages(shuffled[start:start + size]))
        model = ReadModel(store, clock=lambda: first.start.timestamp() + 60)
        views.append((run_view(store, first, second), all_pages(model, run_id="all")))
    assert views[0][0]["second"][0] == {"total": 8, "pending": 4, "error": 4, "finished": 0}
    assert all(view == views[0] for view in views[1:])


def test_reference_search_folds_case_beyond_ascii(store):
    run = SampleRun()
    refs = ["ÜBER-100", "über-200", "Straße-7", "ΣΟΦΙΑ-1", "HB-1001"]
    store.apply(GROUP, Partitions().messages([run.opened(), *[run.changed(r) for r in refs], run.closed(len(refs))]))
    model = ReadModel(store)

    def found(text: str) -> list[str]:
        return sorted(i["reference"] for i in model.items(ItemFilters(reference=text, run_id="all"))["items"])

    assert found("ü") == ["ÜBER-100", "über-200"]
    assert found("ÜBER") == ["ÜBER-100", "über-200"]
    assert found("STRASSE") == ["Straße-7"]  # case folding, not just lower-casing
    assert found("σοφια") == ["ΣΟΦΙΑ-1"]
    assert found("hb-1") == ["HB-1001"]
    assert model.item("über-200")["reference"] == "über-200" and model.item("ÜBER-200") is None


def test_a_version_7_store_gets_its_references_folded_for_search(store):
    """Rows migration 2 copied in SQL keep SQLite's case (PostgreSQL's LOWER may be ASCII only):
    migration 8 folds them as the recorder now does."""
    run = SampleRun()
    store.apply(GROUP, Partitions().messages([run.changed("ÄPFEL-9"), run.changed("Plain-1")]))
    with store.write() as s:  # as migration 2 (or a C-locale LOWER) left them
        if s.dialect_name == "sqlite":
            s.execute("UPDATE item_refs SET reference = 'ÄPFEL-9' WHERE reference = 'äpfel-9'")
        else:
            s.execute("UPDATE item_refs SET reference = 'Äpfel-9' WHERE reference = 'äpfel-9'")
        s.execute("DELETE FROM schema_migrations WHERE version >= 8")
        for column in ("request_run_id", "request_time", "listing_state", "listing_note", "listing_checked_at",
                       "feed_id", "feed_message_id"):
            s.execute(f"ALTER TABLE items DROP COLUMN {column}")
    model = ReadModel(store)
    assert store.migrate() == [8, 9, 10, 11]
    assert [i["reference"] for i in model.items(ItemFilters(reference="äpfel", run_id="all"))["items"]] == ["ÄPFEL-9"]
    assert model.item("ÄPFEL-9")["reference"] == "ÄPFEL-9"
    assert [i["reference"] for i in model.items(ItemFilters(reference="PLAIN", run_id="all"))["items"]] == ["Plain-1"]


def test_an_item_skipped_as_unchanged_shows_the_request_of_the_run_that_sent_it(store):
    first, second = SampleRun(mode="production"), SampleRun(mode="production")
    second.start = first.start + timedelta(hours=1)
    partitions = Partitions()
    store.apply(GROUP, partitions.messages([first.opened(), first.changed("HB-1"), first.changed("HB-2"),
                                            first.submitted("HB-1", request_id="req-first-hb1"),
                                            first.submitted("HB-2", request_id="req-first-hb2"), first.closed(2)]))
    store.apply(GROUP, partitions.messages([second.opened(), second.changed("HB-1"), second.changed("HB-2"),
                                            second.unchanged("HB-1"),
                                            second.submitted("HB-2", request_id="req-second-hb2"), second.closed(2)]))
    items = {i["reference"]: i for i in ReadModel(store).items(ItemFilters())["items"]}
    skipped, resent = items["HB-1"], items["HB-2"]
    assert (skipped["run_id"], skipped["outcome"], skipped["resent"]) == (second.run_id, "unchanged", False)
    assert (skipped["request_id"], skipped["request_run_id"]) == ("req-first-hb1", first.run_id)
    assert skipped["request_at"] < skipped["synced_at"]
    assert (resent["outcome"], resent["resent"], resent["request_id"], resent["request_run_id"]) == (
        "accepted", True, "req-second-hb2", second.run_id)


def test_an_unknown_run_is_not_found_and_an_export_reads_every_matching_item(store):
    from catalog_sync.recorder.read_model import NotFound

    run = SampleRun()
    store.apply(GROUP, Partitions().messages([run.opened(), *[run.changed(f"HB-{i:04d}") for i in range(2_345)],
                                              run.closed(2_345)]))
    model = ReadModel(store)
    with pytest.raises(NotFound, match="run-nope"):
        model.items(ItemFilters(run_id="run-nope"))
    with pytest.raises(NotFound):
        model.export_items(ItemFilters(run_id="run-nope"))
    exported = [i["reference"] for i in model.export_items(ItemFilters(reference="hb-1"))]
    assert len(exported) == 1_000 and len(set(exported)) == 1_000  # HB-1000..HB-1999, across export pages
    assert len(list(model.export_items(ItemFilters(limit=5)))) == 2_345


def test_a_support_case_for_selected_items_names_endpoint_and_operation(store):
    test_run, production = SampleRun(mode="test"), SampleRun(mode="production")
    production.start = test_run.start + timedelta(hours=1)
    partitions = Partitions()
    sandbox_answer = test_run.submitted("HB-1", accepted=False, request_id="req-sandbox-1")
    store.apply(GROUP, partitions.messages([test_run.opened(), test_run.changed("HB-1"), sandbox_answer]))
    live = production.submitted("HB-2", accepted=False, marketplace_id="A1PA6795UKMFR9", request_id="req-live-2")
    store.apply(GROUP, partitions.messages([production.opened(), production.changed("HB-2", marketplace_id="A1PA6795UKMFR9"),
                                            live, production.changed("HB-3"), production.submitted("HB-3")]))
    model = ReadModel(store)
    sandbox = model.support_case(items=[f"{SELLER}|{US}|HB-1"])
    assert sandbox["endpoints"] == [("sandbox", "https://sandbox.sellingpartnerapi-na.amazon.com")]
    assert sandbox["request_ids"] == ["req-sandbox-1"] and sandbox["operation"] == "putListingsItem"
    assert "Endpoint: sandbox (https://sandbox.sellingpartnerapi-na.amazon.com)" in sandbox["text"]
    both = model.support_case(items=[f"{SELLER}|{US}|HB-1", f"{SELLER}|A1PA6795UKMFR9|HB-2"])
    assert both["request_ids"] == ["req-live-2", "req-sandbox-1"]
    assert both["endpoints"] == [("production", "https://sellingpartnerapi-eu.amazon.com"),
                                 ("sandbox", "https://sandbox.sellingpartnerapi-na.amazon.com")]
    assert {m["country"] for m in both["marketplaces"]} == {"United States", "Germany"}
    assert "Marketplace: A1PA6795UKMFR9 (Germany)" in both["text"] and "Operation: putListingsItem" in both["text"]
    assert model.support_case(items=["nobody|nowhere|nothing"]) is None


def test_amazons_view_after_acceptance_shows_in_items_runs_and_the_changed_only_hashes(store):
    run = SampleRun(mode="production", start=just_now())
    partitions = Partitions()
    opening = [run.opened(), *(run.changed(r) for r in ("HB-1", "HB-2", "HB-3"))]
    hb1, hb2, hb3 = (run.submitted(r) for r in ("HB-1", "HB-2", "HB-3"))
    store.apply(GROUP, partitions.messages([*opening, hb1, hb2, hb3, run.closed(3)]))
    model = ReadModel(store)
    items = {i["reference"]: i for i in model.items(ItemFilters())["items"]}
    assert {r: (i["status"], i["listing_state"]) for r, i in items.items()} == {
        r: ("finished", "awaiting") for r in ("HB-1", "HB-2", "HB-3")}
    assert model.runs()["runs"][0]["status"] == "finished"
    store.apply(GROUP, partitions.messages([
        run.observed(hb1, "live"), run.observed(hb2, "error", request_id="get-req-hb2"),
        run.observed(hb3, "awaiting", note="neither live nor in error 900 s after acceptance")]))
    items = {i["reference"]: i for i in model.items(ItemFilters())["items"]}
    assert (items["HB-1"]["status"], items["HB-1"]["listing_state"], items["HB-1"]["request_id"]) == \
        ("finished", "live", hb1[1]["request_id"])
    assert items["HB-1"]["listing_checked_at"]
    assert (items["HB-2"]["status"], items["HB-2"]["listing_state"], items["HB-2"]["request_id"]) == \
        ("error", "error", "get-req-hb2")
    assert (items["HB-2"]["error"]["type"], items["HB-2"]["error"]["code"]) == ("amazon_response", "8541")
    assert (items["HB-3"]["status"], items["HB-3"]["listing_state"], items["HB-3"]["listing_note"]) == \
        ("finished", "awaiting", "neither live nor in error 900 s after acceptance")
    run_row = model.runs()["runs"][0]
    assert (run_row["status"], run_row["counts"]["error"], run_row["counts"]["finished"]) == ("finished_with_errors", 1, 2)
    assert model.items(ItemFilters(status="error"))["summary"]["error"] == 1
    keys = [f"{SELLER}|{US}|{r}" for r in ("HB-1", "HB-2")]
    hashes = model.last_finished_hashes(keys, "production")
    assert hashes[keys[0]] == hb1[1]["content_hash"] and hashes.get(keys[1]) != hb2[1]["content_hash"]
    assert [h["event_type"] for h in model.item("HB-2")["history"]][-1] == "ListingObserved"
    # A support case about the run names the look that found the issue and the accepted PUT.
    case = model.support_case(run_id=run.run_id)
    assert {(sub["operation"], sub["request_id"]) for sub in case["submissions"]} == {
        ("getListingsItem", "get-req-hb2"), ("putListingsItem", hb2[1]["request_id"])}
    assert case["operation"] == "getListingsItem, putListingsItem"
    assert [s["operation"] for s in model.support_case(reference="HB-2")["submissions"]] == \
        ["getListingsItem", "putListingsItem"]
    assert [s["operation"] for s in model.support_case(reference="HB-1")["submissions"]] == ["putListingsItem"]
