"""`catalog-sync`: one console script for every worker and tool (interfaces.md §3).

The composition root: each service contributes its commands through `register(subparsers)`;
heavy imports happen inside the command functions so `catalog-sync --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from catalog_sync import __version__


def build_parser() -> argparse.ArgumentParser:
    from catalog_sync import operations
    from catalog_sync.amazon_emulator import entry as emulator_entry
    from catalog_sync.recorder import entry as recorder_entry
    from catalog_sync.submitter import entry as submitter_entry
    from catalog_sync.validator import entry as validator_entry

    parser = argparse.ArgumentParser(
        prog="catalog-sync",
        description="Keeps a product catalog in sync with Amazon listings through Kafka workers.",
    )
    parser.add_argument("--version", action="version", version=f"catalog-sync {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    operations.register(subparsers)
    validator_entry.register(subparsers)
    submitter_entry.register(subparsers)
    recorder_entry.register(subparsers)
    emulator_entry.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from catalog_sync.runtime.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except ConfigError as exc:
        print(f"catalog-sync {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
