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


def _demo(args: argparse.Namespace) -> int:
    from catalog_sync.demo import run_demo

    return run_demo(args)
