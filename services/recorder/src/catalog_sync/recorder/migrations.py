"""Versioned schema of the read store, applied in order at start (one transaction per version).

The same DDL runs on SQLite and PostgreSQL: times are epoch milliseconds (BIGINT), JSON is TEXT.
Never edit a released version: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .projection import search_text


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    # Where the dialects cannot share DDL (full-text / trigram indexes): statements per dialect name.
    dialect_statements: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Tried after the rest, each in a savepoint, and skipped with a warning if the server refuses:
    # an index that needs an extension the database may not offer. `{trgm}` names the schema of
    # pg_trgm (the store finds or creates it, or skips these statements).
    optional: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Run after the statements, in the same transaction, for a data change SQL cannot express
    # (Python's Unicode case folding). Receives the store's session.
    rewrite: Callable | None = None

    def for_dialect(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(statements, optional statements) this dialect runs."""
        extra = dict(self.dialect_statements).get(name, ())
        return self.statements + extra, dict(self.optional).get(name, ())


def _refold_references(s) -> None:
    """item_refs holds each reference as search_text() folds it: the read model folds the searched
    text the same way. Migration 2 filled it in SQL: SQLite kept each reference's case, PostgreSQL's
    LOWER follows the database's locale (ASCII only under the C locale). Both fold ASCII as Python
    does, so only references with other characters are rewritten."""
    if s.dialect_name == "sqlite":  # an FTS5 table: its rowid is the only way to one row
        rows = s.execute("SELECT rowid, reference FROM item_refs "
                         "WHERE length(CAST(reference AS BLOB)) <> length(reference)")
        for rowid, reference in rows:
            if search_text(reference) != reference:
                s.execute("UPDATE item_refs SET reference = ? WHERE rowid = ?", (search_text(reference), rowid))
        return
    rows = s.execute("SELECT item_key, reference FROM item_refs WHERE octet_length(reference) <> char_length(reference)")
    for key, reference in rows:
        if search_text(reference) != reference:  # through the index on reference (migration 6)
            s.execute("UPDATE item_refs SET reference = ? WHERE reference = ? AND item_key = ?",
                      (search_text(reference), reference, key))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, items, history, counters, offsets", (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            mode TEXT,
            endpoint TEXT,
            source TEXT,
            started_at BIGINT,
            next_run_at BIGINT,
            opened INTEGER NOT NULL DEFAULT 0,
            closed_at BIGINT,
            item_count BIGINT,
            changes_received BIGINT NOT NULL DEFAULT 0,
            total BIGINT NOT NULL DEFAULT 0,
            pending BIGINT NOT NULL DEFAULT 0,
            error BIGINT NOT NULL DEFAULT 0,
            finished BIGINT NOT NULL DEFAULT 0,
            last_event_at BIGINT,
            finished_at BIGINT,
            status TEXT NOT NULL
        )""",
        "CREATE INDEX ix_runs_started ON runs (started_at, run_id)",
        # Current state per (seller, marketplace, reference): what the item table shows.
        """CREATE TABLE items (
            item_key TEXT PRIMARY KEY,
            seller_id TEXT NOT NULL,
            marketplace_id TEXT NOT NULL,
            reference TEXT NOT NULL,
            item_type TEXT NOT NULL,
            run_id TEXT,
            status TEXT NOT NULL,
            synced_at BIGINT NOT NULL,
            latest_event_id TEXT NOT NULL,
            change_time BIGINT,
            final_time BIGINT,
            final_event_id TEXT,
            final_status TEXT,
            endpoint TEXT,
            request_id TEXT,
            submission_id TEXT,
            error_json TEXT,
            issues_json TEXT
        )""",
        # Keyset pagination is newest first on (synced_at, item_key); these serve the filters.
        # The run index carries status and type so those filters are checked without table reads.
        "CREATE INDEX ix_items_run ON items (run_id, synced_at, item_key, status, item_type)",
        "CREATE INDEX ix_items_run_status ON items (run_id, status, synced_at, item_key)",
        "CREATE INDEX ix_items_synced ON items (synced_at, item_key, status, item_type)",
        "CREATE INDEX ix_items_reference ON items (reference)",
        # Per-run membership: keeps a run's counts and completion after its items move on.
        """CREATE TABLE run_items (
            run_id TEXT NOT NULL,
            item_key TEXT NOT NULL,
            item_type TEXT NOT NULL,
            status TEXT NOT NULL,
            synced_at BIGINT NOT NULL,
            latest_event_id TEXT NOT NULL,
            change_time BIGINT,
            final_time BIGINT,
            final_event_id TEXT,
            final_status TEXT,
            PRIMARY KEY (run_id, item_key)
        )""",
        # Every item event once (event_id is the de-duplication key); history reads oldest first.
        """CREATE TABLE item_events (
            event_id TEXT PRIMARY KEY,
            item_key TEXT NOT NULL,
            event_type TEXT NOT NULL,
            event_time BIGINT NOT NULL,
            run_id TEXT,
            recorded_at BIGINT NOT NULL,
            details_json TEXT NOT NULL
        )""",
        "CREATE INDEX ix_item_events_item ON item_events (item_key, event_time)",
        "CREATE INDEX ix_item_events_run ON item_events (run_id, event_type)",
        # Items per (run, type, status), maintained with the items: summaries without counting rows.
        """CREATE TABLE item_counts (
            run_id TEXT NOT NULL,
            item_type TEXT NOT NULL,
            status TEXT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (run_id, item_type, status)
        )""",
        # Kafka positions, written in the same transaction as the projection they produced.
        """CREATE TABLE consumer_offsets (
            consumer_group TEXT NOT NULL,
            topic TEXT NOT NULL,
            partition_id INTEGER NOT NULL,
            next_offset BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (consumer_group, topic, partition_id)
        )""",
    )),
    # History keyed by (item_key, event_time, event_id): one index that de-duplicates, serves the
    # history reads and keeps an item's rows together, instead of a random-order index on the uuid
    # event_id (the costliest part of recording an event) plus a second one per item. The
    # history-by-run index served nothing the read model asks.
    # Substring search on references (interfaces.md §5: `reference` matches any part) through a
    # trigram index on a side table written once per new item, so item updates (every outcome)
    # do not pay for it.
    Migration(2, "history keyed per item; reference trigram search", (
        """CREATE TABLE item_events_v2 (
            event_id TEXT NOT NULL,
            item_key TEXT NOT NULL,
            event_type TEXT NOT NULL,
            event_time BIGINT NOT NULL,
            run_id TEXT,
            recorded_at BIGINT NOT NULL,
            details_json TEXT NOT NULL
        )""",
        "INSERT INTO item_events_v2 (event_id, item_key, event_type, event_time, run_id, recorded_at, details_json) "
        "SELECT event_id, item_key, event_type, event_time, run_id, recorded_at, details_json FROM item_events "
        "ORDER BY item_key, event_time, event_id",
        "DROP TABLE item_events",
        "ALTER TABLE item_events_v2 RENAME TO item_events",
        "CREATE UNIQUE INDEX ux_item_events_item ON item_events (item_key, event_time, event_id)",
    ), dialect_statements=(
        ("sqlite", (
            # FTS5's trigram tokenizer (SQLite >= 3.34) folds case; item_key is carried, not indexed.
            "CREATE VIRTUAL TABLE item_refs USING fts5(reference, item_key UNINDEXED, tokenize='trigram', "
            "detail='none')",
            "INSERT INTO item_refs (reference, item_key) SELECT reference, item_key FROM items",
        )),
        ("postgresql", (
            # Lower-cased once here; looked up by the LIKE pattern the read model builds.
            "CREATE TABLE item_refs (item_key TEXT NOT NULL, reference TEXT NOT NULL)",
            "INSERT INTO item_refs (item_key, reference) SELECT item_key, LOWER(reference) FROM items",
        )),
    ), optional=(
        ("postgresql", (
            "CREATE INDEX ix_item_refs_trgm ON item_refs USING gin (reference {trgm}.gin_trgm_ops)",
        )),
    )),
    # What `retry` republishes and `publish --changed-only` compares with. One row per item (not per
    # event: the history keeps sizes, not attribute JSON), replaced only by a newer event (event_time,
    # event_id), so a late older event changes nothing. Items recorded before this version have no
    # payload until their next change.
    Migration(3, "latest catalog payload per item; content hash last finished at Amazon", (
        """CREATE TABLE item_payloads (
            item_key TEXT PRIMARY KEY,
            item_type TEXT NOT NULL,
            operation TEXT NOT NULL,
            product_type TEXT,
            requirements TEXT,
            parent_reference TEXT,
            attributes_json TEXT NOT NULL,
            changed_at BIGINT,
            run_id TEXT,
            event_time BIGINT NOT NULL,
            event_id TEXT NOT NULL
        )""",
        # Per endpoint: the sandbox (test) and production hold different listings. Only outcomes
        # after which Amazon holds the content are kept (accepted, deleted, unchanged; nothing in
        # preview mode, which persists nothing).
        """CREATE TABLE item_finished_hashes (
            item_key TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            run_id TEXT,
            event_time BIGINT NOT NULL,
            event_id TEXT NOT NULL,
            PRIMARY KEY (item_key, endpoint)
        )""",
    )),
    # Items per minute of their latest event, next to item_counts: the page's "since" filter
    # counts its whole window (a million items: tens of milliseconds of index scan) from these
    # rows plus the items of the window's first, partial minute.
    Migration(4, "item counts per minute of the latest event", (
        """CREATE TABLE item_minute_counts (
            minute BIGINT NOT NULL,
            run_id TEXT NOT NULL,
            item_type TEXT NOT NULL,
            status TEXT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (minute, run_id, item_type, status)
        )""",
        "INSERT INTO item_minute_counts (minute, run_id, item_type, status, n) "
        "SELECT synced_at / 60000, COALESCE(run_id, ''), item_type, status, COUNT(*) FROM items "
        "GROUP BY synced_at / 60000, COALESCE(run_id, ''), item_type, status",
    )),
    # An item's membership of its current run (the run of its latest event) moves into its own row:
    # recording an event then writes one row, not two. run_items keeps the memberships of runs the
    # item has left (written as it leaves, and updated by late events of those runs); where both
    # hold a pair, the item row is the current one. The membership's other fields equal the item's
    # (its latest event is the run's latest): only what the run's own events decide is kept apart.
    Migration(5, "membership of the current run in the item row", (
        "ALTER TABLE items ADD COLUMN run_change_time BIGINT",
        "ALTER TABLE items ADD COLUMN run_final_time BIGINT",
        "ALTER TABLE items ADD COLUMN run_final_event_id TEXT",
        "ALTER TABLE items ADD COLUMN run_final_status TEXT",
        "UPDATE items SET run_change_time = ri.change_time, run_final_time = ri.final_time, "
        "run_final_event_id = ri.final_event_id, run_final_status = ri.final_status "
        "FROM run_items ri WHERE ri.run_id = items.run_id AND ri.item_key = items.item_key",
        "DELETE FROM run_items WHERE EXISTS "
        "(SELECT 1 FROM items i WHERE i.item_key = run_items.item_key AND i.run_id = run_items.run_id)",
    )),
    # PostgreSQL writes a new entry in every index of `items` on each item update (the status and
    # time columns change, so no update is HOT); the exact-reference index moves to item_refs,
    # written once per item. SQLite updates only the indexes of the columns that change and keeps
    # its index on items.
    Migration(6, "exact reference lookups through item_refs on PostgreSQL", (), dialect_statements=(
        ("postgresql", (
            "CREATE INDEX ix_item_refs_reference ON item_refs (reference)",
            "DROP INDEX ix_items_reference",
        )),
    )),
    # The outcome of the final event (accepted, deleted, preview_not_sent, ...): the item table
    # words what happened from it, e.g. a delete a preview run did not send. Older rows: NULL.
    # The status of the item in its current run, as the projection computed it: queries read it
    # instead of repeating the status rule in SQL (this backfill is the rule's last copy there).
    Migration(7, "outcome of the final event and status in the current run, in the item row", (
        "ALTER TABLE items ADD COLUMN outcome TEXT",
        "ALTER TABLE items ADD COLUMN run_status TEXT",
        "UPDATE items SET run_status = CASE WHEN run_id IS NULL THEN NULL "
        "WHEN run_final_time IS NULL OR run_change_time > run_final_time THEN 'pending' "
        "ELSE run_final_status END",
    )),
    # Reference search folds case in Python on both dialects (SQLite's LOWER and LIKE fold ASCII
    # only): the rows written before are folded again the same way.
    Migration(8, "references in item_refs folded by Python's Unicode case folding", (), rewrite=_refold_references),
    # The run and time of the submission whose x-amzn-RequestId an item shows: an item a later run
    # skipped as unchanged keeps that request, and the page must not show it as this run's. Rows
    # from before: the item's own run and final time, except where the last outcome was unchanged
    # (that run is not known; the page says "an earlier run").
    Migration(9, "run and time of the request an item shows", (
        "ALTER TABLE items ADD COLUMN request_run_id TEXT",
        "ALTER TABLE items ADD COLUMN request_time BIGINT",
        "UPDATE items SET request_run_id = run_id, request_time = final_time "
        "WHERE request_id IS NOT NULL AND (outcome IS NULL OR outcome <> 'unchanged')",
    )),
    # Amazon's view of a listing after ACCEPTED (ListingObserved): "accepted, awaiting Amazon",
    # live, or error, with a note when the looking stopped undecided. Rows from before: NULL (their
    # acceptances were never looked at).
    Migration(10, "Amazon's view of an accepted listing in the item row", (
        "ALTER TABLE items ADD COLUMN listing_state TEXT",
        "ALTER TABLE items ADD COLUMN listing_note TEXT",
        "ALTER TABLE items ADD COLUMN listing_checked_at BIGINT",
    )),
    # The JSON_LISTINGS_FEED and message an item was sent in (the bulk lane); NULL for items sent
    # item by item and for rows from before.
    Migration(11, "feed and message an item was sent in", (
        "ALTER TABLE items ADD COLUMN feed_id TEXT",
        "ALTER TABLE items ADD COLUMN feed_message_id BIGINT",
    )),
)
