"""`catalog-sync validate FILE.jsonl`: offline validation, no Kafka (interfaces.md §3).

One JSON line out per input line, in input order. The file is read twice: first to find lines
that are not JSON at all (then nothing is validated: exit 2 naming every such line), then to
validate, streaming results so a 100,000-line file needs no memory for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import orjson

from catalog_sync.runtime.contract import change_to_check

from .validation import ItemValidator

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2
# Unreadable lines named before giving up listing them.
REPORTED_LINES = 20


class UnreadableInput(Exception):
    pass


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise UnreadableInput(f"cannot read {path}: {exc.strerror or exc}") from exc


def check_readable(path: Path) -> None:
    """Raise UnreadableInput naming every line that is not a JSON value."""
    bad = []
    for number, line in _lines(path):
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            bad.append(f"line {number}: not valid JSON ({exc})")
    if bad:
        more = f"\n... and {len(bad) - REPORTED_LINES} more" if len(bad) > REPORTED_LINES else ""
        raise UnreadableInput(f"{path}: {len(bad)} unreadable line(s)\n" + "\n".join(bad[:REPORTED_LINES]) + more)


def validate_file(path: Path, validator: ItemValidator, default_seller_id: str | None, out: TextIO) -> int:
    """Write one result line per item to `out`; the exit code (0 all valid, 1 any invalid)."""
    check_readable(path)
    exit_code = EXIT_VALID
    for number, line in _lines(path):
        obj = orjson.loads(line)
        result = validate_object(obj, number, validator, default_seller_id)
        if not result["valid"]:
            exit_code = EXIT_INVALID
        out.write(_one_line(orjson.dumps(result).decode()) + "\n")
    return exit_code


def validate_object(obj: object, line_no: int | None, validator: ItemValidator, default_seller_id: str | None) -> dict:
    fields, contract_errors = change_to_check(obj, line_no)
    reference = obj.get("reference") if isinstance(obj, dict) else None
    marketplace_id = obj.get("marketplace_id") if isinstance(obj, dict) else None
    errors = [e.as_dict() for e in contract_errors]
    if fields is not None:  # still checkable: every schema and rule error too, each place once
        reported = {e.path for e in contract_errors}
        seller_id = fields.get("seller_id") or default_seller_id
        errors += [i.as_dict() for i in validator.validate(fields, seller_id=seller_id).issues if i.path not in reported]
    return {"reference": reference, "marketplace_id": marketplace_id, "valid": not errors, "errors": errors}


# JSON escapes control characters but not these, which some line readers (str.splitlines,
# JavaScript) treat as line breaks: escaped, so each result stays on its own line.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)
