"""Versioned schema of the read store, applied in order at start (one transaction per version).

The same DDL runs on SQLite and PostgreSQL: times are epoch milliseconds (BIGINT), JSON is TEXT.
Never edit a released version: add a new one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


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
)
