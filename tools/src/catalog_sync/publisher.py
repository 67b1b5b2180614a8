"""Publishing a sync run: read a catalog file, check every line against the contract, then
run opened → one CatalogItemChanged per item → run closed (architecture.md, "Runs")."""

from __future__ import annotations

import csv
import json
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from catalog_sync.runtime import topics
from catalog_sync.runtime.bus import BusProducer, ensure_topics
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.contract import ContractError, content_hash, parse_change
from catalog_sync.runtime.events import family_key, item_key, new_header, utc_now
from catalog_sync.runtime.sync_modes import recorded_endpoint


@dataclass
class LineProblem:
    line_no: int
    errors: list[ContractError]

    def describe(self) -> str:
        return "; ".join(f"{e.message}" + (f" [{e.path}]" if e.path else "") for e in self.errors)


@dataclass
class CatalogFile:
    items: list[dict] = field(default_factory=list)  # contract fields, in file order
    problems: list[LineProblem] = field(default_factory=list)


def read_catalog(path: Path) -> CatalogFile:
    """A catalog file: JSON Lines (one item per line) or, for *.csv, CSV with a header row.
    Every bad line is reported by number; nothing is dropped silently."""
    catalog = CatalogFile()
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    try:
        for line_no, obj, problem in rows:
            if problem is not None:
                catalog.problems.append(LineProblem(line_no, [problem]))
                continue
            fields, errors = parse_change(obj, line_no)
            if fields is None:  # parse_change gives fields exactly when there are no errors
                catalog.problems.append(LineProblem(line_no, errors))
            else:
                catalog.items.append(fields)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return catalog


def _jsonl_rows(path: Path):
    with path.open("r", encoding="utf-8", errors="strict") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield line_no, None, ContractError(
                    "contract.json", f"line {line_no}: not valid JSON ({exc.msg} at column {exc.colno})", "")
            except RecursionError:
                yield line_no, None, ContractError("contract.json", f"line {line_no}: JSON nested too deeply", "")


CSV_COLUMNS = ("reference", "item_type", "operation", "seller_id", "marketplace_id", "product_type",
               "requirements", "parent_reference", "attributes", "changed_at")


def _csv_rows(path: Path):
    """CSV with the contract's field names as header; `attributes` holds the attribute JSON; empty
    cells are absent fields. Line numbers count the header as line 1."""
    with path.open("r", encoding="utf-8-sig", errors="strict", newline="") as handle:
        reader = csv.DictReader(handle)
        unknown = [c for c in (reader.fieldnames or []) if c not in CSV_COLUMNS]
        if not reader.fieldnames or "reference" not in reader.fieldnames:
            yield 1, None, ContractError("contract.csv_header", f"line 1: the CSV header must name the columns {', '.join(CSV_COLUMNS)}", "")
            return
        if unknown:
            yield 1, None, ContractError("contract.csv_header", f"line 1: unknown CSV column(s) {', '.join(unknown)}", "")
            return
        for row in reader:
            line_no = reader.line_num
            obj = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            if None in row:
                yield line_no, None, ContractError("contract.csv_row", f"line {line_no}: more cells than header columns", "")
                continue
            if "attributes" in obj:
                try:
                    obj["attributes"] = json.loads(obj["attributes"])
                except json.JSONDecodeError as exc:
                    yield line_no, None, ContractError("contract.json", f"line {line_no}: the attributes cell is not valid JSON ({exc.msg})", "/attributes")
                    continue
                except RecursionError:
                    yield line_no, None, ContractError("contract.json", f"line {line_no}: the attributes cell nests too deeply", "/attributes")
                    continue
            yield line_no, obj, None


def change_hash(fields: dict) -> str | None:
    """The content hash the validator will put on this change's ListingReady (None when its
    attributes cannot be read: the validator rejects those, so they never finish)."""
    try:
        attributes = orjson.loads(fields["attributes_json"])
    except orjson.JSONDecodeError:
        return None
    return content_hash(fields["operation"], fields["product_type"], fields["requirements"], attributes)


def drop_unchanged(items: list[dict], last_finished: Callable[[list[str]], dict[str, str]],
                   default_seller_id: str | None = None) -> tuple[list[dict], int]:
    """`items` without those whose content equals what last finished at Amazon, and how many were
    dropped. `last_finished(item_keys)` answers item key -> hash for the keys that have one (one
    batched lookup for the whole file). Keys use the default seller as the recorder does."""
    keys = [item_key(f["seller_id"] or default_seller_id, f["marketplace_id"], f["reference"]) for f in items]
    finished = last_finished(keys)
    kept = [f for f, key in zip(items, keys, strict=True)
            if key not in finished or change_hash(f) != finished[key]]
    return kept, len(items) - len(kept)


def family_order(items: Iterable[dict]) -> list[dict]:
    """A run's items in the order Amazon needs them: variant deletes first (children go before
    their parent), then categories and products, then variant upserts (a parent before its
    children); file order within each group."""
    def group(fields: dict) -> int:
        if fields["item_type"] != "variant":
            return 1
        return 0 if fields["operation"] == "delete" else 2

    return sorted(items, key=group)  # stable


class RunPublisher:
    """Publishes runs on one producer; `publish_run` returns the run id."""

    def __init__(self, settings: RuntimeSettings, codec: AvroCodec | None = None):
        self.settings = settings
        self.codec = codec or AvroCodec()
        ensure_topics(settings, [settings.topic(t) for t in (topics.CATALOG_RUN_EVENTS, topics.CATALOG_ITEM_CHANGED)])
        self.producer = BusProducer(settings, linger_ms=20)

    def publish_run(
        self,
        items: Iterable[dict],
        *,
        mode: str,
        source: str | None = None,
        next_run_at: datetime | None = None,
        run_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> str:
        run_id = run_id or f"run-{utc_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        run_topic = self.settings.topic(topics.CATALOG_RUN_EVENTS)
        item_topic = self.settings.topic(topics.CATALOG_ITEM_CHANGED)
        opened = {**new_header(run_id), "mode": mode, "endpoint": recorded_endpoint(mode),
                  "started_at": utc_now(), "next_run_at": next_run_at, "source": source}
        # The run must be known before its items: flush the opening before the first item.
        self.producer.send(run_topic, run_id, self.codec.encode("RunOpened", opened))
        self.producer.flush()
        count = 0
        for fields in family_order(items):
            event = {**new_header(run_id), "mode": mode, **fields}
            key = family_key(fields["seller_id"], fields["marketplace_id"], fields["reference"],
                             fields["parent_reference"])
            self.producer.send(item_topic, key, self.codec.encode("CatalogItemChanged", event))
            count += 1
            if count % 5000 == 0:
                self.producer.flush()
                if progress:
                    progress(count)
        self.producer.flush()
        if progress:
            progress(count)
        closed = {**new_header(run_id), "item_count": count, "closed_at": utc_now()}
        self.producer.send(run_topic, run_id, self.codec.encode("RunClosed", closed))
        self.producer.flush()
        return run_id

    def close(self) -> None:
        self.producer.close()


def progress_printer(total: int, stream=sys.stderr) -> Callable[[int], None]:
    """A one-line progress bar on a terminal, nothing otherwise."""

    def show(done: int) -> None:
        if not stream.isatty() or total == 0:
            return
        width = 30
        filled = int(width * done / total)
        stream.write(f"\rpublishing [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show
