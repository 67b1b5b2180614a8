"""`make bench`: every benchmark group in one run; prints a table and writes bench-results.json.

Figure names are fixed by interfaces.md §6. Each group module has `run(results: dict) -> None`;
a group that cannot run here (e.g. ../shared absent) records nothing and says why.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ["kafka_passthrough", "validator", "submitter", "bulk_lane", "recorder", "pipeline"]
TARGETS = {
    "validator_worker_events_per_s": (">=", 5000),
    "submitter_single_seller_plan_ratio": (">=", 0.99),
    "submitter_single_seller_steady_429": ("<=", 0),
    "submitter_multi_seller_requests_per_s": (">=", 1000),
    "recorder_sqlite_events_per_s": (">=", 20000),
    "recorder_postgres_events_per_s": (">=", 20000),
    "api_items_p99_ms": ("<=", 50),
    "e2e_100k_seconds": ("<=", 60),
}


# Ratios of two figures measured in the same run (interfaces.md §6): comparable across machines.
RATIOS = {
    "validator_worker_vs_passthrough_ratio": ("validator_worker_events_per_s", "kafka_passthrough_events_per_s"),
    "e2e_vs_passthrough_ratio": ("e2e_items_per_s", "kafka_passthrough_events_per_s"),
    "recorder_vs_copy_ratio": ("recorder_postgres_events_per_s", "recorder_postgres_copy_events_per_s"),
    # interfaces.md §6: end to end on real Apache Kafka against the embedded mock, both in one run.
    "e2e_real_kafka_vs_mock_ratio": ("e2e_real_kafka_items_per_s", "e2e_items_per_s"),
}
GOALS = {
    "validator_vs_jsonschema_ratio": (">=", 100),
    "validator_worker_vs_passthrough_ratio": (">=", 0.5),
    "e2e_vs_passthrough_ratio": (">=", 0.5),
    "submitter_vs_sequential_sdk_ratio": (">=", 20),
    "recorder_vs_copy_ratio": (">=", 0.5),
    "worker_rss_growth_ratio": ("<=", 1.2),
    "bulk_lane_speedup": (">=", 50),
}


def machine() -> dict:
    memory_gib = None
    try:
        with open("/proc/meminfo") as handle:
            memory_gib = round(int(handle.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gib": memory_gib, "python": platform.python_version(),
            "platform": platform.platform(), "python_reference_ms": python_reference_ms()}


def python_reference_ms() -> float:
    """Milliseconds for a fixed pure-Python workload (dicts, strings, JSON, sorting: the kind of
    work every worker does), best of 5. The same code measured on the same VM has given rates
    more than 2x apart on different days; figures from two runs compare only after scaling by
    this (a higher reference is a slower machine)."""
    import json as json_module

    def workload() -> None:
        rows = [{"reference": f"SKU-{i:06d}", "status": ("pending", "finished", "error")[i % 3], "n": i}
                for i in range(20_000)]
        text = json_module.dumps(rows)
        parsed = json_module.loads(text)
        counts: dict[str, int] = {}
        for row in parsed:
            counts[row["status"]] = counts.get(row["status"], 0) + len(row["reference"].split("-")[1])
        sorted(parsed, key=lambda r: (r["status"], r["reference"]))

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        workload()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def verdict(name: str, value: float) -> str:
    if name not in TARGETS and name not in GOALS:
        return ""
    op, target = TARGETS.get(name) or GOALS[name]
    ok = value >= target if op == ">=" else value <= target
    return f"{'ok  ' if ok else 'MISS'} (target {op} {target:,})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("groups", nargs="*", default=GROUPS, help=f"groups to run (default: all of {GROUPS})")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results.json")
    args = parser.parse_args()
    sys.path[0] = str(ROOT)  # not benchmarks/: its module names must not shadow packages
    results: dict = {}
    if args.output.exists():  # running some groups keeps the other groups' last figures
        results.update(json.loads(args.output.read_text()))
    failed = []
    measured: dict = {}  # this run's figures: ratios are only taken between figures of one run
    for group in args.groups:
        started = time.monotonic()
        print(f"== {group}", flush=True)
        try:
            importlib.import_module(f"benchmarks.{group}").run(measured)
        except Exception:
            traceback.print_exc()
            failed.append(group)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    for name, (numerator, denominator) in RATIOS.items():
        if measured.get(numerator) and measured.get(denominator):
            measured[name] = round(measured[numerator] / measured[denominator], 3)
            print(f"{name}: {measured[numerator]:,} / {measured[denominator]:,} = {measured[name]}")
    results.update(measured)
    results["machine"] = machine()
    args.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nmachine: {results['machine']['cores']} cores, Python reference workload "
          f"{results['machine']['python_reference_ms']} ms (higher = slower machine)")
    print(f"\n{'figure':<42} {'value':>14}  target")
    for name in sorted(k for k in results if k != "machine"):
        value = results[name]
        print(f"{name:<42} {value:>14,.3f}  {verdict(name, value)}")
    print(f"\nwritten to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
