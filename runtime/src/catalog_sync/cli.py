"""`catalog-sync`: one console script for every worker and tool (interfaces.md §3).

Each installed distribution contributes its commands through the `catalog_sync.commands` entry
point, a `register(subparsers)` function: a service's image holds only that service's commands, a
full install all of them. Heavy imports happen inside the command functions so `catalog-sync
--help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from catalog_sync.runtime import __version__

COMMANDS = "catalog_sync.commands"


def build_parser(distributions: set[str] | None = None) -> argparse.ArgumentParser:
    """The command line of what is installed; `distributions` narrows it to the commands of those
    distributions (e.g. what one service's image holds)."""
    parser = argparse.ArgumentParser(
        prog="catalog-sync",
        description="Keeps a product catalog in sync with Amazon listings through Kafka workers.",
    )
    parser.add_argument("--version", action="version", version=f"catalog-sync {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in sorted(entry_points(group=COMMANDS), key=lambda found: found.name):
        if distributions is None or (command.dist and command.dist.name in distributions):
            command.load()(subparsers)
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
