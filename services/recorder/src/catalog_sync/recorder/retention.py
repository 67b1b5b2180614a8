"""Retention of the read store: history and runs older than a horizon go, in small transactions,
so the store stays bounded while the page, `retry` and `publish --changed-only` keep what they read.

What is kept whatever its age:
- every item row, its latest payload (what `retry` republishes; one row per item already) and its
  last finished content hash per endpoint (what `--changed-only` compares with);
- the newest `keep_runs` runs, every run still in progress, and every run that is some item's
  current run, with their memberships and counters (the runs list, run filters, `retry RUN_ID`);
- the history events an item or a kept membership points at (its latest event, its final event,
  its final event in its current run): item details and support cases still find them.
What goes, once older than `history_days`: other runs with their memberships and counters, and
history events nothing points at.

History doubles as the de-duplication record of events, so the horizon must exceed the Kafka
topics' retention (7 days by default): an event redelivered after its history row went would be
applied again (harmless for item status, which folds by event time, but counted again in its run).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .store import ReadStore

DAY_MS = 86_400_000
# History rows older than the cutoff (`?`) that neither an item nor a kept membership points at,
# of the items listed after `item_key` (the caller appends IN (...)).
_UNREFERENCED_OLD = (
    "event_time < ? "
    "AND NOT EXISTS (SELECT 1 FROM items i WHERE i.item_key = item_events.item_key "
    "AND item_events.event_id IN (i.latest_event_id, i.final_event_id, i.run_final_event_id)) "
    "AND NOT EXISTS (SELECT 1 FROM run_items ri WHERE ri.run_id = item_events.run_id "
    "AND ri.item_key = item_events.item_key AND ri.final_event_id = item_events.event_id) AND item_key")


@dataclass(frozen=True)
class RetentionPolicy:
    history_days: float = 90.0
    keep_runs: int = 500
    batch_size: int = 2_000  # rows per transaction: short write locks beside the projection


@dataclass
class Pruned:
    runs: int = 0
    memberships: int = 0
    events: int = 0

    def __bool__(self) -> bool:
        return bool(self.runs or self.memberships or self.events)

    def add(self, other: Pruned) -> None:
        self.runs += other.runs
        self.memberships += other.memberships
        self.events += other.events


class Pruner:
    """Walks the store in small batches; `step` does one, `run` goes until nothing is left."""

    def __init__(self, store: ReadStore, policy: RetentionPolicy, clock=time.time) -> None:
        self.store = store
        self.policy = policy
        self._clock = clock
        self._after_item = ""  # keyset position of the history walk, item by item

    def run(self) -> Pruned:
        total = Pruned()
        while True:
            done = self.step()
            total.add(done)
            if not done and self._after_item == "":
                return total

    def step(self) -> Pruned:
        cutoff = int(self._clock() * 1000 - self.policy.history_days * DAY_MS)
        done = self._prune_runs(cutoff)
        done.add(self._prune_history(cutoff))
        return done

    def _prune_runs(self, cutoff: int) -> Pruned:
        done = Pruned()
        with self.store.write() as s:
            runs = [r[0] for r in s.execute(
                "SELECT r.run_id FROM runs r WHERE r.status <> 'in_progress' "
                "AND COALESCE(r.finished_at, r.last_event_at, r.started_at, 0) < ? "
                "AND r.run_id NOT IN (SELECT k.run_id FROM runs k ORDER BY k.started_at DESC, k.run_id DESC LIMIT ?) "
                "AND NOT EXISTS (SELECT 1 FROM items i WHERE i.run_id = r.run_id) "
                "ORDER BY r.started_at, r.run_id LIMIT ?",
                (cutoff, self.policy.keep_runs, max(1, self.policy.batch_size // 100)))]
            for run_id in runs:
                done.memberships += s.one("SELECT COUNT(*) FROM run_items WHERE run_id = ?", (run_id,))[0]
                for table in ("run_items", "item_counts", "item_minute_counts", "runs"):
                    s.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            done.runs = len(runs)
        return done

    def _prune_history(self, cutoff: int) -> Pruned:
        """History of the next batch of items (keyset on item_key): old events nothing points at."""
        with self.store.write() as s:
            keys = [r[0] for r in s.execute("SELECT item_key FROM items WHERE item_key > ? ORDER BY item_key LIMIT ?",
                                            (self._after_item, self.policy.batch_size))]
            if not keys:
                self._after_item = ""  # a full pass is done: the next step starts again
                return Pruned()
            self._after_item = keys[-1]
            # Counted, then deleted, under the same write lock: the same rows.
            counted = s.select_in("SELECT COUNT(*) FROM item_events WHERE " + _UNREFERENCED_OLD, keys,
                                  params=(cutoff,))
            s.select_in("DELETE FROM item_events WHERE " + _UNREFERENCED_OLD, keys, params=(cutoff,))
        return Pruned(events=sum(row[0] for row in counted))
