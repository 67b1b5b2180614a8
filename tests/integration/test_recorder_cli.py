"""`catalog-sync status` over a real SQLite read store: the table, the filters and --json."""

from __future__ import annotations

import argparse
import json

import pytest

from catalog_sync.recorder import entry
from catalog_sync.recorder.store import ReadStore
from tests.support.sample_events import Partitions, SampleRun, just_now


def status(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="catalog-sync")
    entry.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status", *argv])
    return args.func(args)


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'read.db'}"
    store = ReadStore(url)
    store.migrate()
    run = SampleRun(start=just_now())
    events = [run.opened(), *[run.changed(f"HB-{i}") for i in range(4)], run.submitted("HB-0"),
              run.submitted("HB-1", accepted=False), run.validation_failed("HB-2"), run.closed(4)]
    store.apply("recorder", Partitions().messages(events))
    store.close()
    monkeypatch.setenv("READ_STORE_URL", url)
    return run


def test_status_prints_the_register_and_a_readable_table(store_env, capsys):
    assert status([]) == 0
    out = capsys.readouterr().out
    assert "sync running: yes" in out
    assert f"run {store_env.run_id}" in out and "4 total, 1 finished, 2 error, 1 pending" in out
    assert "REFERENCE" in out and "HB-3" in out
    assert "amazon_response 90220: 'condition_type' is required" in out


def test_status_filters_and_json(store_env, capsys):
    assert status(["--status", "error", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"] == {"total": 2, "pending": 0, "error": 2, "finished": 0}
    assert sorted(i["reference"] for i in data["items"]) == ["HB-1", "HB-2"]
    assert data["activity"]["current_run"]["run_id"] == store_env.run_id
    assert status(["--reference", "hb-0", "--json"]) == 0
    assert [i["reference"] for i in json.loads(capsys.readouterr().out)["items"]] == ["HB-0"]


def test_status_explains_a_missing_store_and_bad_filters(tmp_path, monkeypatch, capsys, store_env):
    assert status(["--since", "not-a-time"]) == 2
    assert "since" in capsys.readouterr().err
    monkeypatch.setenv("READ_STORE_URL", f"sqlite:///{tmp_path / 'absent.db'}")
    assert status([]) == 2
    assert "no read store" in capsys.readouterr().err


def test_status_csv_lists_every_matching_item(store_env, capsys):
    import csv
    import io

    assert status(["--csv", "--status", "error", "--limit", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["reference"] for r in rows) == ["HB-1", "HB-2"]  # --limit pages the table, not the export
    assert {r["error_type"] for r in rows} == {"amazon_response", "validation"}


def test_status_of_an_unknown_run_fails_with_a_message(store_env, capsys):
    assert status(["--run-id", "run-does-not-exist"]) == 2
    assert "no run 'run-does-not-exist'" in capsys.readouterr().err
    assert status(["--run-id", "run-does-not-exist", "--csv"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no run" in captured.err


def test_status_tells_accepted_awaiting_amazon_from_live(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'read.db'}"
    store = ReadStore(url)
    store.migrate()
    run = SampleRun(mode="production", start=just_now())
    events = [run.opened(), *[run.changed(f"HB-{i}") for i in range(3)]]
    accepted = [run.submitted(f"HB-{i}") for i in range(3)]
    events += [*accepted, run.closed(3), run.observed(accepted[0], "live"),
               run.observed(accepted[2], "awaiting", note="accepted, awaiting Amazon: neither live nor in error 900 s "
                                                          "after acceptance")]
    store.apply("recorder", Partitions().messages(events))
    store.close()
    monkeypatch.setenv("READ_STORE_URL", url)
    assert status([]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("HB-")}
    assert "finished (live)" in lines["HB-0"]
    assert "finished (accepted, awaiting Amazon)" in lines["HB-1"]
    assert "finished (accepted, awaiting Amazon)" in lines["HB-2"] and "neither live nor in error 900 s" in lines["HB-2"]
