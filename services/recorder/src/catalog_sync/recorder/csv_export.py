"""Items as CSV, for `GET /api/items.csv` and `catalog-sync status --csv`: one header line, then
one line per item the filters select (all of them, not a page), streamed as it is read."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

COLUMNS = ("reference", "item_type", "seller_id", "marketplace_id", "status", "outcome", "resent", "run_id",
           "synced_at", "endpoint", "request_id", "request_run_id", "request_at", "submission_id", "error_type",
           "error_code", "error_message", "note", "listing_state", "listing_note")
_ROWS_PER_CHUNK = 500
# A spreadsheet runs a cell that starts with one of these as a formula: such a value gets a leading
# apostrophe (OWASP's advice for CSV injection), which spreadsheets show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _row(item: dict) -> list[str]:
    error = item.get("error") or {}
    values = {**item, "error_type": error.get("type"), "error_code": error.get("code"),
              "error_message": error.get("message")}
    return [_cell(values.get(column)) for column in COLUMNS]


def csv_chunks(items: Iterable[dict]) -> Iterator[str]:
    """The CSV text in chunks of a few hundred lines (RFC 4180: CRLF line ends, quoted as needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for n, item in enumerate(items, 1):
        writer.writerow(_row(item))
        if n % _ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
