"""Command line of the recorder: `catalog-sync recorder` (the worker), `catalog-sync api` (read API
and web page) and `catalog-sync status` (the same view in a terminal).

Heavy imports live inside the command functions so `catalog-sync --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from catalog_sync.runtime.contract import ITEM_TYPES


def register(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser(
        "recorder", help="run the recorder worker (pipeline events → read store)",
        description="Projects run, catalog, validation and submission events into the read store "
                    "(READ_STORE_URL: sqlite:///path.db or postgresql://...).")
    worker.set_defaults(func=recorder_command)

    api = subparsers.add_parser(
        "api", help="serve the read API and the web page",
        description="Serves /api/* (OpenAPI at /docs) and the web page at / from the read store. "
                    "Set API_TOKEN to require 'Authorization: Bearer <token>' on /api/*.")
    api.add_argument("--host", default=None, help="interface to listen on (default API_HOST, else 127.0.0.1)")
    api.add_argument("--port", type=int, default=None, help="port (default API_PORT, else 8080; 0 picks a free one)")
    api.set_defaults(func=api_command)

    status = subparsers.add_parser(
        "status", help="show the activity register and item statuses",
        description="The activity register, recent runs and the item table, read from the read store. "
                    "Filters are those of GET /api/items.")
    status.add_argument("--reference", help="items whose reference contains this text")
    status.add_argument("--status", default="all", choices=("all", "error", "pending", "finished"))
    status.add_argument("--type", dest="item_type", choices=ITEM_TYPES)
    status.add_argument("--since", help="ISO-8601 time: items synced at or after it, across runs")
    status.add_argument("--run-id", help="a run id, or 'all' (default: the last run)")
    status.add_argument("--limit", type=int, default=25, help="items to show (default 25)")
    status.add_argument("--cursor", help="next page (printed under the table)")
    status.add_argument("--runs", type=int, default=5, help="recent runs to list (default 5; 0 hides them)")
    output = status.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    output.add_argument("--csv", action="store_true",
                        help="print every item the filters select as CSV (no page limit; what GET /api/items.csv gives)")
    status.set_defaults(func=status_command)

    prune = subparsers.add_parser(
        "prune", help="apply the read store's retention now",
        description="Deletes history and runs older than RECORDER_RETENTION_DAYS (default 90), keeping the newest "
                    "RECORDER_KEEP_RUNS runs (default 500), runs still in progress or still some item's current run, "
                    "every item, its latest payload and its last finished content hash. The recorder does the "
                    "same in the background every RECORDER_PRUNE_EVERY_S seconds.")
    prune.add_argument("--days", type=float, default=None, help="history horizon in days (default RECORDER_RETENTION_DAYS)")
    prune.add_argument("--keep-runs", type=int, default=None, help="newest runs to keep (default RECORDER_KEEP_RUNS)")
    prune.set_defaults(func=prune_command)


def recorder_command(args: argparse.Namespace) -> int:
    from catalog_sync.runtime.config import RuntimeSettings
    from catalog_sync.runtime.logs import configure_logging

    from .service import SERVICE, run
    from .settings import RecorderSettings

    runtime = RuntimeSettings.from_env(SERVICE)
    configure_logging(SERVICE, runtime.log_format, runtime.log_level)
    run(runtime, RecorderSettings.from_env())
    return 0


def prune_command(args: argparse.Namespace) -> int:
    from catalog_sync.runtime.config import ConfigError

    from .retention import Pruner
    from .service import open_store
    from .settings import RecorderSettings

    overrides = {k: v for k, v in (("retention_days", args.days), ("keep_runs", args.keep_runs)) if v is not None}
    try:
        settings = RecorderSettings.from_env(**overrides)  # flags get the variables' checks
    except ConfigError as exc:
        print(f"catalog-sync prune: {exc}", file=sys.stderr)
        return 2
    if settings.retention is None:
        print("catalog-sync prune: retention is off (RECORDER_RETENTION_DAYS=0); nothing to do", file=sys.stderr)
        return 0
    store = open_store(settings)
    try:
        pruned = Pruner(store, settings.retention).run()
    finally:
        store.close()
    print(f"pruned {pruned.runs} run(s), {pruned.memberships} run membership(s), {pruned.events} history event(s) "
          f"older than {settings.retention_days:g} days (newest {settings.keep_runs} runs kept)")
    return 0


def api_command(args: argparse.Namespace) -> int:
    import os
    import socket

    import uvicorn

    from catalog_sync.runtime.config import env_choice, mask_secrets
    from catalog_sync.runtime.logs import configure_logging

    from .api import create_app
    from .read_model import ReadModel
    from .service import open_store
    from .settings import RecorderSettings

    overrides = {k: v for k, v in (("api_host", args.host), ("api_port", args.port)) if v is not None}
    settings = RecorderSettings.from_env(**overrides)
    configure_logging("api", env_choice(os.environ, "LOG_FORMAT", "auto", ("auto", "json", "console")))
    import structlog

    structlog.get_logger().info("api starting", settings=mask_secrets(settings))
    store = open_store(settings)
    app = create_app(ReadModel(store, stall_seconds=settings.stall_seconds), api_token=settings.api_token)
    config = uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning",
                            access_log=False)

    class AnnouncingServer(uvicorn.Server):
        """Announces the real address (port 0 picks a free one) once the socket is bound."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            for s in self.servers:
                for sock in s.sockets:
                    host, port = sock.getsockname()[:2]
                    print(f"read API and web page on http://{host}:{port}/ (OpenAPI at /docs)", flush=True)

    server = AnnouncingServer(config)
    try:
        server.run()
    finally:
        store.close()
    return 0


def status_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    import orjson

    from .read_model import BadQuery, ItemFilters, NotFound, ReadModel
    from .settings import RecorderSettings
    from .store import ReadStore, StoreUnavailable
    from .terminal import render_status

    settings = RecorderSettings.from_env()
    url = settings.read_store_url
    if url.lower().startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        print(f"catalog-sync status: no read store at {url} (set READ_STORE_URL; the recorder creates it)",
              file=sys.stderr)
        return 2
    store = ReadStore(url, schema=settings.read_store_schema, pool_size=1)
    try:
        store.migrate()
        model = ReadModel(store, stall_seconds=settings.stall_seconds)
        filters = ItemFilters(reference=args.reference, status=args.status, item_type=args.item_type,
                              since=args.since, run_id=args.run_id, limit=args.limit, cursor=args.cursor)
        if args.csv:
            from .csv_export import csv_chunks

            for chunk in csv_chunks(model.export_items(filters)):
                sys.stdout.write(chunk)
            return 0
        activity = model.activity()
        runs = model.runs(args.runs)["runs"] if args.runs > 0 else []
        items = model.items(filters)
    except (BadQuery, NotFound) as exc:
        print(f"catalog-sync status: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"catalog-sync status: {exc}", file=sys.stderr)
        return 3
    finally:
        store.close()
    if args.json:
        sys.stdout.write(orjson.dumps({"activity": activity, "runs": runs, **items}).decode() + "\n")
    else:
        import shutil

        width = shutil.get_terminal_size((120, 20)).columns if sys.stdout.isatty() else None
        print(render_status(activity, runs, items, width))
    return 0
