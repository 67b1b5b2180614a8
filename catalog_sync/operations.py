"""Commands that are not one service's: `broker`, `publish`, `demo`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from catalog_sync.runtime.contract import MODES


def register(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="run everything on this machine with a sample catalog")
    demo.add_argument("--once", action="store_true", help="exit after the sample run completes, with a summary")
    demo.add_argument("--catalog", type=Path, default=None, help="JSON Lines catalog to publish (default: bundled sample)")
    demo.add_argument("--mode", choices=MODES, default="production", help="sync mode of the demo run")
    demo.add_argument("--api-port", type=int, default=None, help="port of the web page and read API (default 8080, or a free one)")
    demo.add_argument("--data-dir", type=Path, default=None, help="where the demo keeps its database and logs (default: a temp dir)")
    demo.add_argument("--timeout", type=float, default=300.0, help="with --once: give up after this many seconds")
    demo.set_defaults(func=_demo)

    broker = subparsers.add_parser("broker", help="run the embedded development broker and print its bootstrap address")
    broker.set_defaults(func=_broker)

    publish = subparsers.add_parser("publish", help="open a sync run, publish a catalog file, close the run; prints the run id")
    publish.add_argument("file", type=Path, help="catalog file: JSON Lines, one item per line (interfaces.md §1)")
    publish.add_argument("--mode", choices=MODES, required=True, help="test: sandbox; preview: VALIDATION_PREVIEW; production")
    publish.add_argument("--skip-invalid", action="store_true", help="publish the valid lines even if others break the contract")
    publish.set_defaults(func=_publish)

    schedule = subparsers.add_parser("schedule", help="publish a catalog file as a new run at a fixed interval")
    schedule.add_argument("source", type=Path, help="catalog file (JSON Lines or CSV), re-read at every run")
    schedule.add_argument("--every", required=True, type=parse_interval, metavar="INTERVAL",
                          help="time between run starts: 90s, 15m, 1h, 1d")
    schedule.add_argument("--mode", choices=MODES, required=True)
    schedule.add_argument("--skip-invalid", action="store_true", help="publish the valid lines of a file with bad lines")
    schedule.add_argument("--runs", type=int, default=None, help="stop after this many runs (default: forever)")
    schedule.set_defaults(func=_schedule)


def parse_interval(text: str) -> float:
    """'90s', '15m', '1h', '1d' (or plain seconds) -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an interval like 90s, 15m, 1h or 1d") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the interval must be positive")
    return seconds


def _broker(args: argparse.Namespace) -> int:
    import signal

    from catalog_sync.runtime.embedded_broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        print(broker.bootstrap_servers, flush=True)
        print(f"# export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers} KAFKA_API_VERSION={broker.api_version}",
              file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def _publish(args: argparse.Namespace) -> int:
    from catalog_sync.publisher import RunPublisher, progress_printer, read_catalog
    from catalog_sync.runtime.config import RuntimeSettings

    try:
        catalog = read_catalog(args.file)
    except (OSError, ValueError) as exc:
        print(f"catalog-sync publish: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    for problem in catalog.problems:
        print(f"{args.file}:{problem.line_no}: {problem.describe()}", file=sys.stderr)
    if catalog.problems and not args.skip_invalid:
        print(f"catalog-sync publish: {len(catalog.problems)} line(s) break the contract; nothing published "
              "(fix them or pass --skip-invalid)", file=sys.stderr)
        return 2
    settings = RuntimeSettings.from_env("publisher", metrics_port=None)
    publisher = RunPublisher(settings)
    try:
        run_id = publisher.publish_run(catalog.items, mode=args.mode, source=args.file.name,
                                       progress=progress_printer(len(catalog.items)))
    finally:
        publisher.close()
    print(f"published {len(catalog.items)} item(s) in run {run_id} (mode {args.mode}"
          + (f", {len(catalog.problems)} invalid line(s) skipped" if catalog.problems else "") + ")",
          file=sys.stderr)
    print(run_id)
    return 0


def _schedule(args: argparse.Namespace) -> int:
    import signal
    import threading
    from datetime import timedelta

    from catalog_sync.publisher import RunPublisher, read_catalog
    from catalog_sync.runtime.config import RuntimeSettings
    from catalog_sync.runtime.events import utc_now

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    publisher = RunPublisher(RuntimeSettings.from_env("scheduler", metrics_port=None))
    runs = 0
    try:
        while not stop.is_set():
            started = utc_now()
            next_run_at = started + timedelta(seconds=args.every)
            try:
                catalog = read_catalog(args.source)
            except (OSError, ValueError) as exc:
                catalog = None
                print(f"catalog-sync schedule: cannot read {args.source}: {exc}; next attempt at {next_run_at:%Y-%m-%d %H:%M:%S}Z", file=sys.stderr)
            if catalog is not None:
                for problem in catalog.problems:
                    print(f"{args.source}:{problem.line_no}: {problem.describe()}", file=sys.stderr)
                if catalog.problems and not args.skip_invalid:
                    print(f"catalog-sync schedule: {len(catalog.problems)} bad line(s); run skipped", file=sys.stderr)
                else:
                    run_id = publisher.publish_run(catalog.items, mode=args.mode, source=args.source.name,
                                                   next_run_at=next_run_at)
                    print(f"{run_id}\t{len(catalog.items)} item(s)\tnext run at {next_run_at:%Y-%m-%dT%H:%M:%S}Z", flush=True)
            runs += 1
            if args.runs is not None and runs >= args.runs:
                break
            stop.wait(max(0.0, (next_run_at - utc_now()).total_seconds()))
    finally:
        publisher.close()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from catalog_sync.demo import run_demo

    return run_demo(args)
