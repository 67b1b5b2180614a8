"""The read store adapter: SQLite (sqlite3, WAL) or PostgreSQL (psycopg 3), one SQL code path.

SQL is written once with `?` placeholders and portable syntax (multi-row VALUES, ON CONFLICT,
RETURNING, row values); the dialect differs only in how a write transaction takes its lock and
how placeholders are spelled. Writers are serialised (SQLite: BEGIN IMMEDIATE; PostgreSQL: a
transaction-level advisory lock per schema), which makes the read-modify-write fold safe with
several recorder processes on one database.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import structlog

from catalog_sync.runtime.events import split_item_key

from .migrations import MIGRATIONS
from .projection import (
    ITEM_EVENTS,
    NO_RUN,
    RUN_EVENTS,
    InvalidEvent,
    ItemEvent,
    ItemState,
    Loaded,
    RunState,
    normalise,
    project,
    search_text,
    to_ms,
    touched,
)

log = structlog.get_logger()
DEFAULT_URL = "sqlite:///catalog-sync.db"
_MAX_PARAMS = 30_000  # under SQLite's 32,766 and PostgreSQL's 65,535 bind parameters
_MAX_ROWS = 1_000
_FEW_ROWS = 50  # PostgreSQL upserts of up to this many rows skip the staging table


class StoreError(RuntimeError):
    """Configuration or schema problem: not worth retrying."""


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or is busy: retry later."""


class PositionsMoved(RuntimeError):
    """The stored offsets of a batch's partitions are not where its writer last left them: the
    store lost commits it had acknowledged (a crash with asynchronous commit, a restore, a failover
    to a replica behind) or another writer moved them. Applying the batch could skip events."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- dialects -------------------------------------------------------------------------------
class _Dialect:
    name = ""
    arrays = False  # id lists as one array parameter
    staging = False  # bulk rows through a COPY-filled temporary table
    begin_write = "BEGIN"
    begin_read = "BEGIN"
    write_lock: str | None = None
    unavailable: tuple[type[BaseException], ...] = ()
    refused: tuple[type[BaseException], ...] = ()  # errors of DDL the server declines

    def sql(self, text: str) -> str:
        return text

    def extension_schemas(self, session) -> dict[str, str]:
        """Extension name -> schema holding it, for optional DDL (`{trgm}`)."""
        return {}

    def connect(self):
        raise NotImplementedError

    def load(self, conn, table: str, cols: str, rows: Sequence[Sequence]) -> None:
        raise NotImplementedError

    def reference_equals(self, reference: str) -> tuple[str, list]:
        """WHERE fragment and its parameters: items whose reference is exactly `reference`."""
        return "reference = ?", [reference]


class _SQLite(_Dialect):
    name = "sqlite"
    begin_write = "BEGIN IMMEDIATE"  # take the write lock up front: no deadlock on upgrade
    begin_read = "BEGIN"
    unavailable = (sqlite3.OperationalError,)

    def __init__(self, path: str):
        self.path = path

    def connect(self):
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA wal_autocheckpoint=10000")  # fewer, larger checkpoints under bulk writes
        return conn


class _Postgres(_Dialect):
    name = "postgresql"
    arrays = True
    staging = True
    begin_write = "BEGIN"
    begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"  # summary and page from one snapshot
    write_lock = "SELECT pg_advisory_xact_lock(hashtext('catalog-sync-recorder:' || current_schema()))"
    # Commits wait for the WAL flush (no `synchronous_commit = off`): a server crash that lost an
    # acknowledged batch while the recorder kept running would never re-consume it, since the
    # consumer seeks to the stored offsets only when partitions are assigned.

    def __init__(self, url: str, schema: str | None = None):
        import psycopg

        self.url = url
        self.schema = schema
        self._psycopg = psycopg
        self.unavailable = (psycopg.OperationalError,)
        self.refused = (psycopg.Error,)
        self._cache: dict[str, str] = {}
        self._types: dict[tuple[str, str], list[int]] = {}  # (table, columns) -> type OIDs for binary COPY

    def extension_schemas(self, session) -> dict[str, str]:
        """pg_trgm where it is installed, else installed into `public` if this role may (it is a
        trusted extension since PostgreSQL 13). Never into the store's own schema: dropping that
        schema would drop the extension under every other schema's indexes."""
        find = ("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'pg_trgm'")
        row = session.one(find)
        if row is None:
            session.execute("SAVEPOINT create_extension")
            try:
                session.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
            except self._psycopg.Error as exc:  # no privilege, not installed, or a concurrent creator
                session.execute("ROLLBACK TO SAVEPOINT create_extension")
                log.warning("pg_trgm unavailable", error=str(exc))
            else:
                session.execute("RELEASE SAVEPOINT create_extension")
            row = session.one(find)
        if row is None:
            return {}
        from psycopg import sql

        return {"trgm": sql.Identifier(row[0]).as_string(None)}

    def sql(self, text: str) -> str:
        converted = self._cache.get(text)
        if converted is None:
            converted = self._cache[text] = text.replace("%", "%%").replace("?", "%s")
        return converted

    def load(self, conn, table: str, cols: str, rows: Sequence[Sequence]) -> None:
        """Append rows with binary COPY (half the client-side cost of text COPY per row, no text
        parsing on the server; it needs the exact column types, read once per table)."""
        types = self._types.get((table, cols))
        if types is None:
            cursor = conn.execute(f"SELECT {cols} FROM {table} WHERE false")
            types = self._types[(table, cols)] = [c.type_code for c in cursor.description]
        with conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            write = copy.write_row
            for row in rows:
                write(row)

    def reference_equals(self, reference: str) -> tuple[str, list]:
        # items has no index on reference (migration 6): the candidates come from item_refs,
        # which holds every reference folded by search_text (migration 8 folded the older rows).
        return ("item_key IN (SELECT item_key FROM item_refs WHERE reference = ?) AND reference = ?",
                [search_text(reference), reference])

    def connect(self):
        conn = self._psycopg.connect(self.url, autocommit=True)
        if self.schema:
            from psycopg import sql

            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return conn


def dialect_for(url: str, schema: str | None = None) -> _Dialect:
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        if schema:
            raise StoreError("a schema name applies to PostgreSQL only")
        path = url[len("sqlite:///"):] if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise StoreError(f"READ_STORE_URL={url!r}: expected sqlite:///relative.db or sqlite:////absolute.db")
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return _SQLite(str(Path(path).expanduser()) if path != ":memory:" else path)
    if scheme in ("postgresql", "postgres"):
        return _Postgres(url, schema)
    raise StoreError(f"READ_STORE_URL={url!r}: expected sqlite:///... or postgresql://...")


# -- sessions -------------------------------------------------------------------------------
class Session:
    """One connection inside one transaction; `execute` returns all rows as tuples."""

    def __init__(self, dialect: _Dialect, conn, staged: set[str]):
        self._dialect = dialect
        self._conn = conn
        self._staged = staged  # staging tables this connection has created
        self._filled: set[str] = set()  # staging tables holding rows in this transaction

    def execute(self, sql: str, params: Sequence = ()) -> list[tuple]:
        cursor = self._conn.execute(self._dialect.sql(sql), params)
        return cursor.fetchall() if cursor.description is not None else []

    def one(self, sql: str, params: Sequence = ()) -> tuple | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def reference_equals(self, reference: str) -> tuple[str, list]:
        return self._dialect.reference_equals(reference)

    @property
    def dialect_name(self) -> str:
        return self._dialect.name

    def append(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        """Plain INSERT of rows known to be new (the caller checked keys under the write lock):
        COPY on PostgreSQL, one prepared statement run over the rows on SQLite."""
        if not rows:
            return
        cols = ", ".join(columns)
        if self._dialect.staging:
            self._dialect.load(self._conn, table, cols, rows)
            return
        self._conn.executemany(f"INSERT INTO {table} ({cols}) VALUES ({','.join('?' * len(columns))})", rows)

    # Bulk writes: ONE shared statement per table (INSERT ... <rows> ON CONFLICT ...); only the row
    # source differs. PostgreSQL: rows are COPYed into a per-connection temporary staging table
    # (emptied by every commit) and selected from it (long VALUES lists cost more in psycopg's
    # Python-side query parsing than the server spends on the rows). SQLite, and a few rows on
    # PostgreSQL (runs, counters, offsets: one round trip instead of three), VALUES lists within
    # the parameter limit.
    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence], tail: str = "") -> list[tuple]:
        """INSERT INTO `table` (columns) <rows> `tail` (e.g. ON CONFLICT ... RETURNING ...)."""
        if not rows:
            return []
        cols = ", ".join(columns)
        if self._dialect.staging and len(rows) > _FEW_ROWS:
            stage = f"stage_{table}"
            if stage not in self._staged:
                self.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
                             f"SELECT {cols} FROM {table} WHERE 1 = 0")
                self._staged.add(stage)
            elif stage in self._filled:  # a second load in one transaction: start empty
                self.execute(f"DELETE FROM {stage}")
            self._filled.add(stage)
            self._dialect.load(self._conn, stage, cols, rows)
            return self.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} WHERE true {tail}")
        width = len(columns)
        per_statement = max(1, min(_MAX_ROWS, _MAX_PARAMS // width))
        group = "(" + ",".join("?" * width) + ")"
        out: list[tuple] = []
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            out.extend(self.execute(f"INSERT INTO {table} ({cols}) VALUES {','.join([group] * len(chunk))} {tail}",
                                    [value for row in chunk for value in row]))
        return out

    def select_in(self, head: str, values: Sequence, tail: str = "", params: Sequence = ()) -> list[tuple]:
        """`head` IN (values) `tail`: `head` ends with the compared column; `params` bind before."""
        values = list(values)
        if not values:
            return []
        if self._dialect.arrays:
            # The list travels as one JSON text (orjson, in C): psycopg's list dumper is Python code
            # and cost more than the query it feeds.
            return self.execute(f"{head} = ANY(ARRAY(SELECT json_array_elements_text(CAST(? AS json)))) {tail}",
                                [*params, orjson.dumps(values).decode()])
        out: list[tuple] = []
        for start in range(0, len(values), _MAX_ROWS):
            chunk = values[start:start + _MAX_ROWS]
            out.extend(self.execute(f"{head} IN ({','.join('?' * len(chunk))}) {tail}", [*params, *chunk]))
        return out

    def select_pairs_in(self, head: str, first: str, second: str, pairs: Sequence[tuple[str, str]]) -> list[tuple]:
        """`head` WHERE (first, second) IN (pairs), asked as `first = ? AND second IN (...)` per
        distinct first value: SQLite plans a row-value IN list as a full table scan."""
        groups: dict[str, list[str]] = {}
        for a, b in pairs:
            groups.setdefault(a, []).append(b)
        out: list[tuple] = []
        for a, bs in groups.items():
            out.extend(self.select_in(f"{head} WHERE {first} = ? AND {second}", bs, params=(a,)))
        return out


class _Pool:
    """A few connections shared by threads (the API's thread pool, the worker, metrics scrapes)."""

    def __init__(self, dialect: _Dialect, size: int):
        self._dialect = dialect
        self._idle: queue.LifoQueue = queue.LifoQueue()  # (connection, staging tables it created)
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self):
        self._slots.acquire()
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = (self._dialect.connect(), set())
            yield conn
        except BaseException:
            if conn is not None:
                _close_quietly(conn[0])  # state unknown after an error: do not reuse it
                conn = None
            raise
        finally:
            if conn is not None:
                self._idle.put(conn)
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                _close_quietly(self._idle.get_nowait()[0])
            except queue.Empty:
                return


def _close_quietly(conn) -> None:
    with suppress(Exception):
        conn.close()


# -- the store ------------------------------------------------------------------------------
@dataclass
class ApplyResult:
    applied: Counter = field(default_factory=Counter)  # event kind -> events folded
    duplicates: int = 0          # same event_id seen before: ignored
    already_applied: int = 0     # offset below the stored position: a replayed batch
    latest_event_ms: int | None = None  # newest event time of the batch (projection lag)


_ITEM_COLUMNS = ("item_key", "seller_id", "marketplace_id", "reference", "item_type", "run_id", "status",
                 "synced_at", "latest_event_id", "change_time", "final_time", "final_event_id", "final_status",
                 "endpoint", "request_id", "submission_id", "error_json", "issues_json",
                 # the membership of the current run (run_id), where it differs from the item's own fold
                 "run_change_time", "run_final_time", "run_final_event_id", "run_final_status", "outcome", "run_status",
                 "request_run_id", "request_time", "listing_state", "listing_note", "listing_checked_at", "feed_id",
                 "feed_message_id")
_RUN_ITEM_COLUMNS = ("run_id", "item_key", "item_type", "status", "synced_at", "latest_event_id", "change_time",
                     "final_time", "final_event_id", "final_status")
RUN_COLUMNS = tuple(f.name for f in fields(RunState))  # a runs row is a RunState: RunState(*row)
_HISTORY_COLUMNS = ("event_id", "item_key", "event_type", "event_time", "run_id", "recorded_at", "details_json")
_REF_COLUMNS = ("item_key", "reference")  # reference folded by search_text: what reference search matches
_PAYLOAD_COLUMNS = ("item_key", "item_type", "operation", "product_type", "requirements", "parent_reference",
                    "attributes_json", "changed_at", "run_id", "event_time", "event_id")
_HASH_COLUMNS = ("item_key", "endpoint", "content_hash", "run_id", "event_time", "event_id")
_COUNT_COLUMNS = ("run_id", "item_type", "status", "n")
_MINUTE_COUNT_COLUMNS = ("minute", "run_id", "item_type", "status", "n")
_OFFSET_COLUMNS = ("consumer_group", "topic", "partition_id", "next_offset", "updated_at")


# The members of one run (both `?`: the run id) as (item_key, status, final_time, final_event_id):
# item rows whose current run it is, plus the memberships of items that have left it.
RUN_MEMBERS = (
    "(SELECT item_key, run_status AS status, run_final_time AS final_time, run_final_event_id AS final_event_id "
    "FROM items WHERE run_id = ? "
    "UNION ALL SELECT ri.item_key, ri.status, ri.final_time, ri.final_event_id FROM run_items ri WHERE ri.run_id = ? "
    "AND NOT EXISTS (SELECT 1 FROM items i WHERE i.item_key = ri.item_key AND i.run_id = ri.run_id))")


def _upsert_tail(columns: Sequence[str], key: Sequence[str], fixed: Sequence[str] = ()) -> str:
    """`fixed`: columns that never change after the insert; left out of SET so SQLite does not
    rewrite the index entries on them."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key and c not in fixed)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


_ITEMS_UPSERT = _upsert_tail(_ITEM_COLUMNS, ("item_key",), ("seller_id", "marketplace_id", "reference"))
_RUN_ITEMS_UPSERT = _upsert_tail(_RUN_ITEM_COLUMNS, ("run_id", "item_key"))
_RUNS_UPSERT = _upsert_tail(RUN_COLUMNS, ("run_id",))
# Latest-wins rows: a stored row is replaced only by a newer event (out-of-order delivery).
_PAYLOADS_UPSERT = (_upsert_tail(_PAYLOAD_COLUMNS, ("item_key",))
                    + " WHERE (excluded.event_time, excluded.event_id) > (item_payloads.event_time, item_payloads.event_id)")
_HASHES_UPSERT = (_upsert_tail(_HASH_COLUMNS, ("item_key", "endpoint"))
                  + " WHERE (excluded.event_time, excluded.event_id) > "
                    "(item_finished_hashes.event_time, item_finished_hashes.event_id)")


class ReadStore:
    def __init__(self, url: str = DEFAULT_URL, *, schema: str | None = None, pool_size: int = 8):
        """`schema`: PostgreSQL schema holding the tables (created if missing); default search_path."""
        self.url = url
        self.dialect = dialect_for(url, schema)
        self._pool = _Pool(self.dialect, pool_size)

    @property
    def kind(self) -> str:
        return self.dialect.name

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Session]:
        try:
            with self._pool.connection() as (conn, staged):
                session = Session(self.dialect, conn, staged)
                session.execute(self.dialect.begin_write if write else self.dialect.begin_read)
                try:
                    if write and self.dialect.write_lock:
                        session.execute(self.dialect.write_lock)
                    yield session
                except BaseException:
                    with suppress(Exception):
                        session.execute("ROLLBACK")
                    raise
                session.execute("COMMIT")
        except self.dialect.unavailable as exc:
            raise StoreUnavailable(f"read store unavailable: {exc}") from exc

    def read(self):
        """A read-only transaction (one snapshot) for the API and the CLI."""
        return self._transaction(write=False)

    def write(self):
        return self._transaction(write=True)

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied now."""
        applied_now = []
        if self.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 34, 0):
            raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old: the read store needs 3.34 or newer "
                             "(FTS5 trigram tokenizer, for reference search)")
        with self.write() as s:
            s.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                      "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        for migration in MIGRATIONS:
            with self.write() as s:  # the write lock makes concurrent starters wait, then skip
                if s.one("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)):
                    continue
                statements, optional = migration.for_dialect(self.dialect.name)
                for statement in statements:
                    s.execute(statement)
                self._optional(s, optional)
                if migration.rewrite is not None:
                    migration.rewrite(s)
                s.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                          (migration.version, migration.name, _now_ms()))
                applied_now.append(migration.version)
        known = max(m.version for m in MIGRATIONS)
        with self.read() as s:
            newest = s.one("SELECT MAX(version) FROM schema_migrations")[0]
        if newest is not None and newest > known:
            raise StoreError(f"the read store has schema version {newest}, newer than this program ({known})")
        return applied_now

    def _optional(self, s: Session, statements: Sequence[str]) -> None:
        """Statements the store works without (slower): each in a savepoint, skipped if refused."""
        if not statements:
            return
        names = self.dialect.extension_schemas(s)
        skipped: tuple[type[BaseException], ...] = (KeyError, *self.dialect.refused)
        for statement in statements:
            s.execute("SAVEPOINT optional_ddl")
            try:
                s.execute(statement.format(**names))
            except skipped as exc:
                s.execute("ROLLBACK TO SAVEPOINT optional_ddl")
                log.warning("optional index not created: searches scan instead", statement=statement,
                            error=str(exc) if not isinstance(exc, KeyError) else f"extension {exc} unavailable")
            else:
                s.execute("RELEASE SAVEPOINT optional_ddl")

    def schema_versions(self) -> list[int]:
        with self.read() as s:
            return [r[0] for r in s.execute("SELECT version FROM schema_migrations ORDER BY version")]

    # -- offsets ----------------------------------------------------------------------------
    def offsets(self, group: str, partitions: Iterable[tuple[str, int]] | None = None) -> dict[tuple[str, int], int]:
        """Stored next offsets of a consumer group (all, or those of `partitions`)."""
        with self.read() as s:
            rows = s.execute("SELECT topic, partition_id, next_offset FROM consumer_offsets WHERE consumer_group = ?",
                             (group,))
        found = {(t, p): o for t, p, o in rows}
        if partitions is None:
            return found
        return {tp: found[tp] for tp in ((t, p) for t, p in partitions) if tp in found}

    # -- the write path -----------------------------------------------------------------------
    def apply(self, group: str, messages: Sequence, default_seller_id: str | None = None,
              expected: Mapping[tuple[str, int], int] | None = None) -> ApplyResult:
        """Project a batch of decoded messages (topic, partition, offset, schema, event) in ONE
        transaction together with the consumer offsets: a crash leaves both or neither.

        `expected`: the stored offset the caller last read or wrote for each partition, i.e. where
        its consumer's reading of the batch's partitions began. When the store holds another one
        for any of them, nothing is written and PositionsMoved is raised: the caller must seek to
        the stored offsets, or the events between them would be skipped.

        Messages below the stored offset were applied before (a replayed batch) and are skipped;
        item events whose event_id is already in the history are duplicates and change nothing."""
        item_events: list[tuple[object, ItemEvent]] = []
        run_events: list[tuple[object, str, dict]] = []
        for m in messages:  # normalise outside the lock: invalid events fail before any write
            if m.schema in ITEM_EVENTS:
                item_events.append((m, normalise(m.schema, m.event, default_seller_id)))
            elif m.schema in RUN_EVENTS:
                run_events.append((m, m.schema, m.event))
            else:
                raise InvalidEvent(f"the recorder does not project {m.schema}")
        result = ApplyResult()
        with self.write() as s:
            stored = self._stored_offsets(s, group, {(m.topic, m.partition) for m in messages})
            if expected is not None:
                moved = {tp: (expected.get(tp), stored.get(tp, 0)) for tp in {(m.topic, m.partition) for m in messages}
                         if expected.get(tp) != stored.get(tp, 0)}
                if moved:
                    raise PositionsMoved("stored offsets differ from those last seen (expected, stored): "
                                         + ", ".join(f"{t}/{p}: {e}, {o}" for (t, p), (e, o) in sorted(moved.items())))

            def fresh(m) -> bool:
                return m.offset >= stored.get((m.topic, m.partition), 0)

            new_items = [e for m, e in item_events if fresh(m)]
            new_runs = [(kind, ev) for m, kind, ev in run_events if fresh(m)]
            result.already_applied = len(messages) - len(new_items) - len(new_runs)
            loaded, archived = self._load(s, *touched(new_items, new_runs))  # duplicates' rows too: harmless
            unique = self._record_history(s, new_items, loaded.items)
            result.duplicates = len(new_items) - len(unique)
            # What was stored before the fold (`project` updates `loaded` in place and adds to it).
            before = _Stored({k: i.run_id for k, i in loaded.items.items()}, archived,
                             {k for k, i in loaded.items.items() if i.change_time is not None},
                             {k for k, i in loaded.items.items() if i.final_time is not None})
            projected = project(loaded, unique, new_runs)
            self._save(s, projected, before, loaded.run_items)
            self._save_offsets(s, group, messages)
            result.applied = projected.applied
        times = [e.time for e in unique] + [_event_ms(ev) for _, ev in new_runs]
        result.latest_event_ms = max(times) if times else None
        return result

    @staticmethod
    def _stored_offsets(s: Session, group: str, partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        if not partitions:
            return {}
        rows = s.execute("SELECT topic, partition_id, next_offset FROM consumer_offsets WHERE consumer_group = ?",
                         (group,))
        return {(t, p): o for t, p, o in rows if (t, p) in partitions}

    @staticmethod
    def _record_history(s: Session, events: list[ItemEvent], items: dict[str, ItemState]) -> list[ItemEvent]:
        """Append history rows for events not recorded before; the others are duplicates.

        An item's row and its history are written in one transaction, and the item's synced_at is
        the newest time of its recorded events: an event newer than that (or of an item not stored
        yet) cannot be in the history, so only older ones are looked up. Writers hold the write
        lock: what is absent here is still absent when the rows are appended."""
        by_id: dict[str, ItemEvent] = {}
        for e in events:
            by_id.setdefault(e.event_id, e)
        if not by_id:
            return []
        doubtful = {e.item_key for e in by_id.values()
                    if (item := items.get(e.item_key)) is not None and e.time <= item.synced_at}
        fresh = list(by_id.values())
        if doubtful:
            seen = set(s.select_in("SELECT item_key, event_id FROM item_events WHERE item_key", sorted(doubtful)))
            fresh = [e for e in fresh if (e.item_key, e.event_id) not in seen]
        now = _now_ms()
        dumps = orjson.dumps
        s.append("item_events", _HISTORY_COLUMNS,
                 [(e.event_id, e.item_key, e.kind, e.time, e.run_id, now, dumps(e.details).decode()) for e in fresh])
        return fresh

    @staticmethod
    def _load(s: Session, item_keys: set[str], run_item_keys: set[tuple[str, str]],
              run_ids: set[str]) -> tuple[Loaded, set[tuple[str, str]]]:
        """The rows a batch touches, and which memberships came from run_items (the others that
        are loaded came from their item row)."""
        loaded = Loaded()
        if item_keys:
            for row in s.select_in(f"SELECT {', '.join(_ITEM_COLUMNS)} FROM items WHERE item_key", sorted(item_keys)):
                state, member = _item_from_row(row)
                loaded.items[state.item_key] = state
                if member is not None:
                    assert state.run_id is not None  # an item has a current membership only in a run
                    loaded.run_items[(state.run_id, state.item_key)] = member
        # Memberships of runs the item has left. They are written with the item row: an item not
        # stored has none.
        run_item_keys = {k for k in run_item_keys if k[1] in loaded.items and k not in loaded.run_items}
        archived: set[tuple[str, str]] = set()
        if run_item_keys:
            for row in s.select_pairs_in(f"SELECT {', '.join(_RUN_ITEM_COLUMNS)} FROM run_items", "run_id", "item_key",
                                         sorted(run_item_keys)):
                archived.add((row[0], row[1]))
                loaded.run_items[(row[0], row[1])] = _run_item_from_row(row)
        if run_ids:
            for row in s.select_in(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id", sorted(run_ids)):
                run = RunState(*row)
                run.opened = bool(run.opened)
                loaded.runs[run.run_id] = run
        return loaded, archived

    @staticmethod
    def _save(s: Session, p, stored: _Stored, members: dict[tuple[str, str], ItemState]) -> None:
        """Rows the batch created are appended (COPY / one prepared INSERT: no conflict handling,
        the write lock guarantees they are still absent); rows that existed are upserted.
        `members`: every membership the batch knows (loaded or created), by (run, item)."""
        if p.items:
            dumps = orjson.dumps
            new: list[tuple] = []
            old: list[tuple] = []
            for key, i in p.items.items():
                m = members[(i.run_id, key)] if i.run_id else _NO_MEMBER
                (old if key in stored.run_of else new).append((
                    i.item_key, i.seller_id, i.marketplace_id, i.reference, i.item_type, i.run_id, i.status,
                    i.synced_at, i.latest_event_id, i.change_time, i.final_time, i.final_event_id, i.final_status,
                    i.endpoint, i.request_id, i.submission_id,
                    dumps(i.error).decode() if i.error is not None else None,
                    dumps(i.issues).decode() if i.issues else None,
                    m.change_time, m.final_time, m.final_event_id, m.final_status, i.outcome,
                    m.status if i.run_id else None, i.request_run_id, i.request_time, i.listing_state,
                    i.listing_note, i.listing_checked_at, i.feed_id, i.feed_message_id))
            s.append("items", _ITEM_COLUMNS, new)
            s.insert_rows("items", _ITEM_COLUMNS, old, _ITEMS_UPSERT)
            # The reference search index gets each item once, when it first appears.
            s.append("item_refs", _REF_COLUMNS, [(row[0], search_text(row[3])) for row in new])
        # An item's payload and hash rows are written with its item row and the change or final
        # event they come from: an item whose row shows no such event has no such row yet, and
        # those are appended; the others are upserted newest-wins.
        if p.payloads:
            new, old = [], []
            for key, e in p.payloads.items():
                (old if key in stored.changed else new).append((key, e.item_type, *e.payload, e.run_id, e.time, e.event_id))
            s.append("item_payloads", _PAYLOAD_COLUMNS, new)
            s.insert_rows("item_payloads", _PAYLOAD_COLUMNS, old, _PAYLOADS_UPSERT)
        if p.finished_hashes:
            new, old = [], []
            for (key, endpoint), e in p.finished_hashes.items():
                (old if key in stored.finished else new).append((key, endpoint, e.finished_hash, e.run_id, e.time,
                                                             e.event_id))
            s.append("item_finished_hashes", _HASH_COLUMNS, new)
            s.insert_rows("item_finished_hashes", _HASH_COLUMNS, old, _HASHES_UPSERT)
        # Memberships outside the item rows: runs the item left in this batch, and runs other than
        # its current one that the batch's events belong to. Appended where the lookup found no row
        # (or the item is new), upserted where a row exists or may (an old current membership may
        # have an outdated row from an earlier stay of the item in that run).
        outside = {k for k in p.run_items if p.items[k[1]].run_id != k[0]}
        outside.update((old_run, key) for key, old_run in stored.run_of.items()
                       if old_run and key in p.items and p.items[key].run_id != old_run)
        if outside:
            new, old = [], []
            for key in sorted(outside):
                i = members[key]
                may_exist = key in stored.archived or stored.run_of.get(key[1]) == key[0]
                (old if may_exist else new).append((
                    key[0], i.item_key, i.item_type, i.status, i.synced_at, i.latest_event_id, i.change_time,
                    i.final_time, i.final_event_id, i.final_status))
            s.append("run_items", _RUN_ITEM_COLUMNS, new)
            s.insert_rows("run_items", _RUN_ITEM_COLUMNS, old, _RUN_ITEMS_UPSERT)
        if p.runs:
            rows: list[tuple] = [(r.run_id, r.mode, r.endpoint, r.source, r.started_at, r.next_run_at, int(r.opened), r.closed_at,
                     r.item_count, r.changes_received, r.total, r.pending, r.error, r.finished, r.last_event_at,
                     r.finished_at, r.status) for r in p.runs.values()]
            s.insert_rows("runs", RUN_COLUMNS, rows,
                          _RUNS_UPSERT)
        if p.item_count_deltas:
            rows = [(run_id, item_type, status, n) for (run_id, item_type, status), n in
                    sorted(p.item_count_deltas.items())]
            s.insert_rows("item_counts", _COUNT_COLUMNS, rows,
                          "ON CONFLICT (run_id, item_type, status) DO UPDATE SET n = item_counts.n + excluded.n")
        if p.item_minute_deltas:
            rows = [(*key, n) for key, n in sorted(p.item_minute_deltas.items())]
            s.insert_rows("item_minute_counts", _MINUTE_COUNT_COLUMNS, rows,
                          "ON CONFLICT (minute, run_id, item_type, status) DO UPDATE SET n = item_minute_counts.n + excluded.n")
            # Items move on to newer minutes: drop the counters they leave at zero.
            emptied = [key[0] for key, n in p.item_minute_deltas.items() if n < 0]
            if emptied:
                s.execute("DELETE FROM item_minute_counts WHERE minute BETWEEN ? AND ? AND n = 0",
                          (min(emptied), max(emptied)))

    @staticmethod
    def _save_offsets(s: Session, group: str, messages: Sequence) -> None:
        positions: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic, m.partition)
            positions[key] = max(positions.get(key, 0), m.offset + 1)
        if not positions:
            return
        now = _now_ms()
        rows = [(group, t, p, o, now) for (t, p), o in sorted(positions.items())]
        # Never move backwards: a replayed older batch must not undo a newer position.
        s.insert_rows("consumer_offsets", _OFFSET_COLUMNS, rows, "ON CONFLICT (consumer_group, topic, partition_id) DO UPDATE SET "
                              "next_offset = CASE WHEN excluded.next_offset > consumer_offsets.next_offset "
                              "THEN excluded.next_offset ELSE consumer_offsets.next_offset END, "
                              "updated_at = excluded.updated_at")


@dataclass(frozen=True)
class _Stored:
    run_of: dict[str, str | None]   # stored item key -> its current run before the batch
    archived: set[tuple[str, str]]  # (run, item) memberships found in run_items
    changed: set[str]   # stored items with a catalog change folded in: they may have a payload row
    finished: set[str]  # stored items with a final event folded in: they may have hash rows


_NO_MEMBER = ItemState("", "", "", "", "")


def _event_ms(event: dict) -> int:
    return to_ms(event.get("event_time")) or 0


def _item_from_row(row: tuple) -> tuple[ItemState, ItemState | None]:
    """The item, and its membership of its current run (None without a run). The run's latest
    event is the item's latest, so only the change and final fields are the run's own."""
    (item_key, seller, marketplace, reference, item_type, run_id, _status, synced_at, latest_event_id, change_time,
     final_time, final_event_id, final_status, endpoint, request_id, submission_id, error_json, issues_json,
     run_change_time, run_final_time, run_final_event_id, run_final_status, outcome, _run_status, request_run_id,
     request_time, listing_state, listing_note, listing_checked_at, feed_id, feed_message_id) = row
    item = ItemState(item_key, seller, marketplace, reference, item_type, run_id, synced_at, latest_event_id,
                     change_time, final_time, final_event_id, final_status, endpoint, request_id, submission_id,
                     orjson.loads(error_json) if error_json else None,
                     orjson.loads(issues_json) if issues_json else [], outcome, request_run_id, request_time,
                     listing_state, listing_note, listing_checked_at, feed_id, feed_message_id)
    member = ItemState(item_key, seller, marketplace, reference, item_type, run_id, synced_at, latest_event_id,
                       run_change_time, run_final_time, run_final_event_id, run_final_status) if run_id else None
    return item, member


def _run_item_from_row(row: tuple) -> ItemState:
    (run_id, item_key, item_type, _status, synced_at, latest_event_id, change_time, final_time, final_event_id,
     final_status) = row
    seller, marketplace, reference = split_item_key(item_key)
    return ItemState(item_key, seller, marketplace, reference, item_type, run_id, synced_at, latest_event_id,
                     change_time, final_time, final_event_id, final_status)


__all__ = ["DEFAULT_URL", "NO_RUN", "RUN_COLUMNS", "RUN_MEMBERS", "ApplyResult", "ReadStore", "Session", "StoreError", "StoreUnavailable"]
