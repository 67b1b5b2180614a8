"""`catalog-sync validate FILE` on garbage: a file with any line that is not JSON exits 2 naming
every such line; a file of JSON lines answers one result per line (exit 0 or 1). Never a
traceback, whatever the bytes."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog_sync.cli import main

GOOD = {"reference": "HB-1", "item_type": "product", "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND",
        "seller_id": "A3SELLER", "attributes": {"item_name": [{"value": "Band"}]}}
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=10)
json_lines = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(st.sampled_from(list(GOOD) + ["parent_reference", "operation", "changed_at", "x"]), json_values,
                    max_size=6).map(lambda d: json.dumps({**GOOD, **d})),
    st.just(json.dumps(GOOD)),
    st.just('{"reference": 123456789012345678901234567890123, "marketplace_id": 1e308}'),
    st.just(json.dumps({**GOOD, "attributes": json.loads("{\"a\":" * 900 + "1" + "}" * 900)})),
).map(str.encode)
garbage_lines = st.one_of(
    st.binary(min_size=1, max_size=40).filter(lambda b: b.strip() and not _is_json(b)),
    st.sampled_from([b"\xff\xfe\x00{", b'{"reference": "\xc3\x28"}', b'{"reference": "\\ud800"}', b"[" * 5000,
                     b"{" * 2000, b'{"a": NaN}', b"1e999", b"\x00" * 10, b"<html><body>502</body></html>",
                     b'{"reference": "HB-1",}', b'"' + b"x" * 1_000_000]),
)


def _is_json(line: bytes) -> bool:
    import orjson

    try:
        orjson.loads(line)
        return True
    except orjson.JSONDecodeError:
        return False


def run_validate(capsys, path) -> tuple[int, str, str]:
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def clean(line: bytes) -> bytes:
    return line.replace(b"\n", b" ").replace(b"\r", b" ")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(good=st.lists(json_lines, max_size=4), bad=st.lists(garbage_lines, min_size=1, max_size=3), data=st.data())
def test_a_file_with_unreadable_lines_exits_2_naming_each(capsys, tmp_path_factory, good, bad, data):
    lines = list(good)
    bad_numbers = []
    for line in bad:
        at = data.draw(st.integers(0, len(lines)))
        lines.insert(at, line)
    body = [clean(line) for line in lines]
    bad_numbers = [i + 1 for i, line in enumerate(body) if not _is_json(line) and line.strip()]
    path = tmp_path_factory.mktemp("v") / "garbage.jsonl"
    path.write_bytes(b"\n".join(body) + b"\n")
    code, out, err = run_validate(capsys, path)
    assert code == 2, err
    assert out == "", "nothing is validated when a line cannot be read"
    named = [int(n) for n in re.findall(r"^line (\d+):", err, re.MULTILINE)]
    assert named == bad_numbers[:20]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=st.lists(json_lines, min_size=1, max_size=6))
def test_a_file_of_json_lines_gets_one_result_per_line(capsys, tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("v") / "items.jsonl"
    path.write_bytes(b"\n".join(clean(line) for line in lines) + b"\n")
    code, out, err = run_validate(capsys, path)
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == len(lines)
    assert code == (0 if all(r["valid"] for r in results) else 1), err
    for result in results:
        assert result["valid"] == (not result["errors"])
        assert all(e["code"] and e["message"] and isinstance(e["path"], str) for e in result["errors"])


@pytest.mark.parametrize("content", [None, "dir"])
def test_a_missing_file_or_a_folder_exits_2(capsys, tmp_path, content):
    path = tmp_path / "nope.jsonl"
    if content == "dir":
        path.mkdir()
    code, out, err = run_validate(capsys, path)
    assert code == 2 and str(path) in err


def test_the_installed_command_on_binary_garbage_exits_2_without_a_traceback(tmp_path):
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8\xff\n" + b"{" * 3000 + b"\n")
    done = subprocess.run([sys.executable, "-m", "catalog_sync", "validate", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert re.findall(r"^line (\d+):", done.stderr, re.MULTILINE) == ["2", "3", "4", "5"]
