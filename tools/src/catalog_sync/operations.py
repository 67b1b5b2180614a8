"""Commands that are not one service's: `broker`, `topics`, `publish`, `schedule`, `retry`, `demo`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from catalog_sync.runtime.sync_modes import MODES


def register(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="run everything on this machine with a sample catalog")
    demo.add_argument("--once", action="store_true", help="exit after the sample run completes, with a summary")
    demo.add_argument("--catalog", type=Path, default=None, help="JSON Lines catalog to publish (default: bundled sample)")
    demo.add_argument("--mode", choices=MODES, default="production", help="sync mode of the demo run")
    demo.add_argument("--api-port", type=int, default=None, help="port of the web page and read API (default 8080, or a free one)")
    demo.add_argument("--data-dir", type=Path, default=None, help="where the demo keeps its database and logs (default: a temp dir)")
    demo.add_argument("--timeout", type=float, default=300.0, help="with --once: give up after this many seconds")
    demo.add_argument("--kafka", metavar="BOOTSTRAP", default=None,
                      help="run on this Kafka cluster (e.g. the address `make kafka` prints) instead of the embedded "
                           "broker; the demo creates its topics there first (as `catalog-sync topics create`)")
    demo.set_defaults(func=_demo)

    broker = subparsers.add_parser(
        "broker", help="run a development broker and print its bootstrap address",
        description="Runs a broker on this machine until Ctrl-C and prints its bootstrap address. The default "
                    "engine is the embedded one (librdkafka's in-memory mock cluster, pip only); 'apache' runs "
                    "real Apache Kafka (KRaft) from its jars: Java 17+, and Maven the first time to fetch them.")
    broker.add_argument("--engine", choices=("embedded", "apache"), default="embedded",
                        help="embedded: in-memory mock (default); apache: real Apache Kafka from its jars")
    broker.add_argument("--nodes", type=int, choices=(1, 3), default=1,
                        help="apache: combined broker+controller nodes (3: replication factor 3, min.insync.replicas 2)")
    broker.add_argument("--fetch-only", action="store_true",
                        help="apache: fetch the jars into the cache if missing, print their folder and exit")
    broker.set_defaults(func=_broker)

    topics = subparsers.add_parser("topics", help="create catalog-sync's Kafka topics (the workers do not)")
    topics_commands = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_commands.add_parser(
        "create", help="create the topics that are missing (existing ones are left as they are)",
        description="Creates every topic catalog-sync uses (catalog_sync.runtime.topics) that the cluster at "
                    "KAFKA_BOOTSTRAP_SERVERS lacks, with TOPIC_PREFIX, through the admin API: partitions, "
                    "replication factor, min.insync.replicas, dead-letter retention, and compaction for the "
                    "submitter's accepted-hash table.")
    create.add_argument("--partitions", type=int, default=12,
                        help="partitions of the item- and seller-keyed topics: the most replicas a worker "
                             "scales to (default 12; run events and dead letters have 3)")
    create.add_argument("--replication-factor", type=int, default=-1,
                        help="copies of each partition (default: the broker's default.replication.factor; "
                             "3 on a production cluster)")
    create.add_argument("--min-insync-replicas", type=int, default=None,
                        help="replicas that must have a record before it counts as written (acks=all); "
                             "default 2 with --replication-factor 3 or more, else the broker's setting")
    create.set_defaults(func=_topics_create)

    publish = subparsers.add_parser("publish", help="open a sync run, publish a catalog file, close the run; prints the run id")
    publish.add_argument("file", type=Path, help="catalog file: JSON Lines, one item per line (interfaces.md §1)")
    publish.add_argument("--mode", choices=MODES, required=True, help="test: sandbox; preview: VALIDATION_PREVIEW; production")
    publish.add_argument("--skip-invalid", action="store_true", help="publish the valid lines even if others break the contract")
    publish.add_argument("--changed-only", action="store_true", help=CHANGED_ONLY_HELP)
    publish.set_defaults(func=_publish)

    schedule = subparsers.add_parser("schedule", help="publish a catalog file as a new run at a fixed interval")
    schedule.add_argument("source", type=Path, help="catalog file (JSON Lines or CSV), re-read at every run")
    schedule.add_argument("--every", required=True, type=parse_interval, metavar="INTERVAL",
                          help="time between run starts: 90s, 15m, 1h, 1d")
    schedule.add_argument("--mode", choices=MODES, required=True)
    schedule.add_argument("--skip-invalid", action="store_true", help="publish the valid lines of a file with bad lines")
    schedule.add_argument("--runs", type=int, default=None, help="stop after this many runs (default: forever)")
    schedule.add_argument("--changed-only", action="store_true", help=CHANGED_ONLY_HELP)
    schedule.set_defaults(func=_schedule)

    retry = subparsers.add_parser(
        "retry", help="republish a run's error items from their recorded payloads as a new run; prints its id",
        description="Republishes the items of RUN_ID that have the given status in that run, each with the "
                    "latest catalog payload the recorder kept for it (read store: READ_STORE_URL), as a new run.")
    retry.add_argument("run_id", metavar="RUN_ID", help="the run whose items to republish")
    retry.add_argument("--status", choices=("error", "pending", "finished", "all"), default="error",
                       help="which of the run's items (default: error)")
    retry.add_argument("--mode", choices=MODES, default=None, help="sync mode of the new run (default: the original run's)")
    retry.set_defaults(func=_retry)


CHANGED_ONLY_HELP = ("skip items whose content equals what last finished at Amazon on this mode's endpoint "
                     "(read store: READ_STORE_URL)")


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
    if args.engine == "apache":
        return _apache_broker(args)
    from catalog_sync.runtime.embedded_broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        print(broker.bootstrap_servers, flush=True)
        print(f"# export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers} KAFKA_API_VERSION={broker.api_version}",
              file=sys.stderr, flush=True)
        _wait_for_stop()
    return 0


def _wait_for_stop() -> None:
    import signal

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()


def _apache_broker(args: argparse.Namespace) -> int:
    from catalog_sync.runtime.apache_kafka import ApacheKafkaCluster, KafkaUnavailable, fetch_jars

    try:
        if args.fetch_only:
            print(fetch_jars(), flush=True)
            return 0
        cluster = ApacheKafkaCluster(args.nodes)
        print(f"# starting Apache Kafka {cluster.version} ({args.nodes} node(s), data in {cluster.work_dir})",
              file=sys.stderr, flush=True)
        cluster.start()
    except KafkaUnavailable as exc:
        print(f"catalog-sync broker: {exc}", file=sys.stderr)
        return 2
    try:
        print(cluster.bootstrap_servers, flush=True)
        print(f"# ready in {cluster.started_in_s:.1f} s; Ctrl-C stops it and removes its data\n"
              f"# export KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}   (leave KAFKA_API_VERSION unset)",
              file=sys.stderr, flush=True)
        _wait_for_stop()
    finally:
        cluster.close()
    return 0


def _topics_create(args: argparse.Namespace) -> int:
    from catalog_sync.runtime.bus import BusError, create_topics
    from catalog_sync.runtime.config import RuntimeSettings
    from catalog_sync.runtime.topics import topic_plan

    min_insync = args.min_insync_replicas
    if min_insync is None and args.replication_factor >= 3:
        min_insync = 2
    try:
        settings = RuntimeSettings.from_env("topics", metrics_port=None)
        plan = topic_plan(prefix=settings.topic_prefix, partitions=args.partitions, min_insync_replicas=min_insync)
        done = create_topics(settings, plan, replication_factor=args.replication_factor)
    except (BusError, ValueError) as exc:
        print(f"catalog-sync topics create: {exc}", file=sys.stderr)
        return 1
    for name, (partitions, configs) in plan.items():
        settings_text = " ".join(f"{k}={v}" for k, v in sorted(configs.items()))
        print(f"{done[name]:8} {name} partitions={partitions} {settings_text}".rstrip())
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
    items, unchanged = catalog.items, 0
    if args.changed_only:
        try:
            items, unchanged = _changed_only(items, args.mode)
        except _StoreProblem as exc:
            print(f"catalog-sync publish: {exc}", file=sys.stderr)
            return 2
    settings = RuntimeSettings.from_env("publisher", metrics_port=None)
    publisher = RunPublisher(settings)
    try:
        run_id = publisher.publish_run(items, mode=args.mode, source=args.file.name,
                                       progress=progress_printer(len(items)))
    finally:
        publisher.close()
    print(f"published {len(items)} item(s) in run {run_id} (mode {args.mode}"
          + (f", {unchanged} unchanged item(s) skipped" if args.changed_only else "")
          + (f", {len(catalog.problems)} invalid line(s) skipped" if catalog.problems else "") + ")",
          file=sys.stderr)
    print(run_id)
    return 0


class _StoreProblem(Exception):
    """The read store cannot answer (absent, unreachable): the command stops with exit 2."""


@contextlib.contextmanager
def _read_model():
    """The recorder's read model on READ_STORE_URL (migrated, like `status` does), and the default seller."""
    from catalog_sync.recorder.read_model import ReadModel
    from catalog_sync.recorder.settings import RecorderSettings
    from catalog_sync.recorder.store import ReadStore, StoreError, StoreUnavailable

    settings = RecorderSettings.from_env()
    url = settings.read_store_url
    if url.lower().startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).expanduser().exists():
        raise _StoreProblem(f"no read store at {url} (set READ_STORE_URL to the recorder's store)")
    try:
        store = ReadStore(url, schema=settings.read_store_schema, pool_size=1)
    except StoreError as exc:
        raise _StoreProblem(str(exc)) from exc
    try:
        store.migrate()
        yield ReadModel(store), settings.default_seller_id
    except (StoreError, StoreUnavailable) as exc:
        raise _StoreProblem(str(exc)) from exc
    finally:
        store.close()


def _changed_only(items: list[dict], mode: str) -> tuple[list[dict], int]:
    """`items` minus those whose content last finished at Amazon on `mode`'s endpoint (preview
    compares with production, where its run would land)."""
    from catalog_sync.publisher import drop_unchanged
    from catalog_sync.runtime.sync_modes import recorded_endpoint

    with _read_model() as (model, default_seller):
        return drop_unchanged(items, lambda keys: model.last_finished_hashes(keys, recorded_endpoint(mode)),
                              default_seller)


def _retry(args: argparse.Namespace) -> int:
    from catalog_sync.publisher import RunPublisher, progress_printer
    from catalog_sync.runtime.config import RuntimeSettings

    try:
        with _read_model() as (model, _):
            found = model.run_payloads(args.run_id, args.status)
    except _StoreProblem as exc:
        print(f"catalog-sync retry: {exc}", file=sys.stderr)
        return 2
    what = "" if args.status == "all" else f"{args.status} "
    if found is None:
        print(f"catalog-sync retry: no run {args.run_id} in the read store", file=sys.stderr)
        return 2
    if found.missing:
        print(f"catalog-sync retry: {len(found.missing)} {what}item(s) of {args.run_id} have no recorded payload "
              f"(recorded before payloads were kept), e.g. {found.missing[0]}", file=sys.stderr)
    if not found.items:
        print(f"catalog-sync retry: run {args.run_id} has no {what}items to republish; nothing published",
              file=sys.stderr)
        return 2
    mode = args.mode or found.mode
    if mode is None:
        print(f"catalog-sync retry: the mode of run {args.run_id} is not recorded; give --mode", file=sys.stderr)
        return 2
    publisher = RunPublisher(RuntimeSettings.from_env("publisher", metrics_port=None))
    try:
        run_id = publisher.publish_run(found.items, mode=mode, source=f"retry of {args.run_id}",
                                       progress=progress_printer(len(found.items)))
    finally:
        publisher.close()
    print(f"published {len(found.items)} {what}item(s) of {args.run_id} in run {run_id} (mode {mode}"
          + (f"; {found.changed_since} with a newer change since, sent as changed" if found.changed_since else "")
          + ")", file=sys.stderr)
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
                    try:
                        items, unchanged = (_changed_only(catalog.items, args.mode) if args.changed_only
                                            else (catalog.items, 0))
                    except _StoreProblem as exc:  # the recorder may be restarting: try again next time
                        print(f"catalog-sync schedule: {exc}; run skipped", file=sys.stderr)
                    else:
                        run_id = publisher.publish_run(items, mode=args.mode, source=args.source.name,
                                                       next_run_at=next_run_at)
                        print(f"{run_id}\t{len(items)} item(s)\tnext run at {next_run_at:%Y-%m-%dT%H:%M:%S}Z"
                              + (f"\t{unchanged} unchanged skipped" if args.changed_only else ""), flush=True)
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
