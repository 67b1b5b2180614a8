"""`catalog-sync submitter`: listing.ready -> Amazon SP-API -> listing.submission.completed."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("submitter", help="run the submitter worker (scale by starting more)",
                                   description=__doc__)
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    import structlog

    from catalog_sync.runtime.logs import configure_logging
    from catalog_sync.submitter.service import run
    from catalog_sync.submitter.settings import SubmitterSettings

    settings = SubmitterSettings.from_env()  # a ConfigError is reported by the command line
    configure_logging("submitter", settings.runtime.log_format, settings.runtime.log_level)
    structlog.get_logger().info("submitter configuration", **settings.describe())
    if not len(settings.accounts):
        structlog.get_logger().warning("no SP-API accounts configured: every item will fail with no_credentials")
    run(settings)
    return 0
