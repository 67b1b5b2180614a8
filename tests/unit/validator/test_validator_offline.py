"""`catalog-sync validate FILE.jsonl` (interfaces.md §3)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from validator_fixtures import US, complete_hairband

from catalog_sync.validator.offline import UnreadableInput, validate_file


def line(**fields):
    base = {"reference": "HB-1", "item_type": "product", "seller_id": "A1SELLER", "marketplace_id": US,
            "product_type": "HAIRBAND", "attributes": complete_hairband()}
    base.update(fields)
    return json.dumps(base)


def run(tmp_path, lines, validator):
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    code = validate_file(path, validator, None, out)
    return code, [json.loads(x) for x in out.getvalue().splitlines()]


def test_all_valid_exits_zero(tmp_path, bundled_validator):
    code, results = run(tmp_path, [line(), line(reference="HB-2")], bundled_validator)
    assert code == 0
    assert results == [{"reference": "HB-1", "marketplace_id": US, "valid": True, "errors": []},
                       {"reference": "HB-2", "marketplace_id": US, "valid": True, "errors": []}]


def test_one_line_per_input_in_order_with_all_errors(tmp_path, bundled_validator):
    broken = complete_hairband()
    del broken["brand"]
    broken["externally_assigned_product_identifier"][0]["value"] = "4006381333932"
    code, results = run(tmp_path, [line(reference="A"), line(reference="B", attributes=broken), "",
                                   line(reference="C", item_type="widget")], bundled_validator)
    assert code == 1
    assert [r["reference"] for r in results] == ["A", "B", "C"]
    assert [(e["code"], e["path"]) for e in results[1]["errors"]] == [
        ("schema.required", "/attributes/brand"),
        ("gtin.check_digit", "/attributes/externally_assigned_product_identifier/0/value"),
    ]
    assert [e["code"] for e in results[2]["errors"]] == ["contract.enum"]


def test_a_contract_error_comes_with_the_product_types_errors_when_the_item_can_still_be_checked(
        tmp_path, bundled_validator):
    # A variant without parent_reference, also missing a required attribute: both, in one run.
    broken = complete_hairband()
    del broken["brand"]
    code, (result,) = run(tmp_path, [line(item_type="variant", attributes=broken, changed_at="soon", colour=1)],
                          bundled_validator)
    assert code == 1
    found = [(e["code"], e["path"]) for e in result["errors"]]
    assert ("contract.required", "/parent_reference") in found and ("contract.time", "/changed_at") in found
    assert ("contract.unknown_field", "/colour") in found
    assert ("schema.required", "/attributes/brand") in found
    assert [path for _, path in found].count("/parent_reference") == 1  # not again as a variant rule


def test_an_item_that_cannot_be_checked_reports_its_contract_errors_only(tmp_path, bundled_validator):
    code, (result,) = run(tmp_path, [line(product_type=None, reference=7)], bundled_validator)
    assert code == 1 and {e["code"] for e in result["errors"]} <= {"contract.required", "contract.type"}


def test_unreadable_lines_are_named_and_nothing_is_validated(tmp_path, bundled_validator):
    path = tmp_path / "items.jsonl"
    path.write_text(line() + "\n{not json\n" + line() + "\n[1,\n")
    out = io.StringIO()
    with pytest.raises(UnreadableInput) as caught:
        validate_file(path, bundled_validator, None, out)
    assert "line 2" in str(caught.value) and "line 4" in str(caught.value)
    assert out.getvalue() == ""


# The command as a user runs it, in its own process: stdout carries only results, stderr the
# problems, and the exit code says which. (Wired into `catalog-sync` by catalog_sync.cli.)
COMMAND = """
import argparse, sys
from catalog_sync.validator import entry
parser = argparse.ArgumentParser(prog="catalog-sync")
entry.register(parser.add_subparsers(dest="command"))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def validate_command(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("PRODUCT_TYPES_DIR", "SELLER_ID", "PRODUCT_TYPES_SOURCE")}
    return subprocess.run([sys.executable, "-c", COMMAND, "validate", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=60)


def test_the_command_prints_results_and_exit_codes(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(line(seller_id=None) + "\n" + line(seller_id=None, reference="HB-2", attributes={}) + "\n")
    done = validate_command(good, "--seller-id", "A2SELLER")
    assert done.returncode == 1
    results = [json.loads(x) for x in done.stdout.splitlines()]
    assert [(r["reference"], r["valid"]) for r in results] == [("HB-1", True), ("HB-2", False)]

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"reference": "x"}\n\xff\xfe\n')
    done = validate_command(bad)
    assert (done.returncode, done.stdout) == (2, "")
    assert "line 2" in done.stderr

    done = validate_command(tmp_path / "missing.jsonl")
    assert done.returncode == 2 and "cannot read" in done.stderr
