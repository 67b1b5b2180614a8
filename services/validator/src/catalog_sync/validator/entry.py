"""Command line of the validator: `catalog-sync validate FILE.jsonl` and `catalog-sync validator`.

Heavy imports live inside the command functions so `catalog-sync --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    validate = subparsers.add_parser(
        "validate", help="validate a JSONL file of catalog changes offline (no Kafka)",
        description="Validate catalog changes against their product type schemas and catalog-sync's rules. "
                    "Prints one JSON line per input line, in order, with every error of the item. "
                    "Exit 0: all valid; 1: some invalid; 2: the input cannot be read.",
    )
    validate.add_argument("file", type=Path, metavar="FILE.jsonl", help="one catalog change (JSON object) per line")
    validate.add_argument("--product-types-dir", type=Path, default=None,
                          help="folder of <PRODUCT_TYPE>.json schemas (default: PRODUCT_TYPES_DIR, else the bundled samples)")
    validate.add_argument("--seller-id", default=None, help="seller for items without one (default: SELLER_ID)")
    validate.set_defaults(func=validate_command)

    worker = subparsers.add_parser(
        "validator", help="run the validator worker (catalog.item.changed → listing.ready / listing.validation.failed)",
    )
    worker.add_argument("--product-types-dir", type=Path, default=None,
                        help="folder of <PRODUCT_TYPE>.json schemas (default: PRODUCT_TYPES_DIR, else the bundled samples)")
    worker.set_defaults(func=worker_command)


def _settings(args: argparse.Namespace, **overrides):
    from .settings import ValidatorSettings

    if args.product_types_dir is not None:
        overrides["product_types_dir"] = args.product_types_dir
    return ValidatorSettings.from_env(**overrides)


def validate_command(args: argparse.Namespace) -> int:
    from catalog_sync.runtime.config import ConfigError
    from catalog_sync.runtime.logs import configure_logging

    from .offline import EXIT_UNREADABLE, UnreadableInput, validate_file
    from .service import build_schemas
    from .validation import ItemValidator

    # stdout carries the results: logs go to stderr, warnings only.
    configure_logging("validator", "auto", "WARNING")
    overrides = {"default_seller_id": args.seller_id} if args.seller_id else {}
    try:
        settings = _settings(args, **overrides)
    except ConfigError as exc:
        print(f"catalog-sync validate: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    validator = ItemValidator(build_schemas(settings))
    try:
        return validate_file(args.file, validator, settings.default_seller_id, sys.stdout)
    except UnreadableInput as exc:
        print(f"catalog-sync validate: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE


def worker_command(args: argparse.Namespace) -> int:
    import structlog

    from catalog_sync.runtime.config import RuntimeSettings, mask_secrets
    from catalog_sync.runtime.logs import configure_logging

    from .service import SERVICE, run

    runtime = RuntimeSettings.from_env(SERVICE)
    configure_logging(SERVICE, runtime.log_format, runtime.log_level)
    settings = _settings(args)
    structlog.get_logger().info("validator configuration", runtime=mask_secrets(runtime), validator=mask_secrets(settings))
    run(runtime, settings)
    return 0
