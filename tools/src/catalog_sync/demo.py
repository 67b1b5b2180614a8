"""`catalog-sync demo`: the whole pipeline on one machine.

Embedded broker (in this process) → SP-API emulator, validator, submitter, recorder and the read
API as child processes → the sample catalog published as one run → the page's URL printed.
With --once it waits for the run to complete, prints a summary and exits (0 when the run finished).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import httpx

from catalog_sync.runtime.embedded_broker import EmbeddedBroker
from catalog_sync.runtime.processes import ServiceProcess, free_port

DEMO_SELLER = "A3DEMOSELLER01"
DEMO_CREDENTIALS = {
    # The demo's emulator knows exactly the accounts its submitter uses (--accounts-from-env reads
    # these, or SPAPI_ACCOUNTS_FILE, as the submitter does): a token works for its seller only.
    "LWA_CLIENT_ID": "amzn1.application-oa2-client.demo",
    "LWA_CLIENT_SECRET": "demo-client-secret",
    "LWA_REFRESH_TOKEN": "Atzr|demo-refresh-token",
    "SELLER_ID": DEMO_SELLER,
}


def sample_catalog() -> Path:
    return Path(str(resources.files("catalog_sync") / "samples" / "catalog.jsonl"))


def _port(preferred: int | None) -> int:
    if preferred:
        return preferred
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 8080))
            return 8080
        except OSError:
            return free_port()


def _wait_http(url: str, process: ServiceProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.name} did not answer {url} within {timeout_s}s")
        time.sleep(0.1)


class DemoStack:
    """Starts and stops every piece; usable by tests too."""

    def __init__(self, data_dir: Path, api_port: int | None = None, extra_env: dict[str, str] | None = None,
                 emulator_args: list[str] | None = None, kafka_env: dict[str, str] | None = None,
                 scale: dict[str, int] | None = None):
        """`kafka_env` points the stack at an existing broker (tests); otherwise it embeds one.
        `scale` starts several processes of a worker (consumer group members), e.g. {"submitter": 2}."""
        self.data_dir = data_dir
        self.kafka_env = kafka_env
        self.api_port = _port(api_port)
        self.emulator_port = free_port()
        self.extra_env = extra_env or {}
        self.emulator_args = emulator_args or []
        self.scale = scale or {}
        self.broker: EmbeddedBroker | None = None
        self.processes: dict[str, ServiceProcess] = {}
        self._api: httpx.Client | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def env(self) -> dict[str, str]:
        kafka_env = self.kafka_env
        if kafka_env is None:
            if self.broker is None:
                raise RuntimeError("the demo stack has no broker: start() it first, or give it kafka_env")
            kafka_env = self.broker.env()
        return {
            **kafka_env,
            "READ_STORE_URL": f"sqlite:///{self.data_dir / 'catalog-sync.db'}",
            "SPAPI_ENDPOINT": self.emulator_url,
            "SPAPI_SANDBOX_ENDPOINT": f"{self.emulator_url}/sandbox",
            "LWA_TOKEN_URL": f"{self.emulator_url}/auth/o2/token",
            **DEMO_CREDENTIALS,
            "API_PORT": str(self.api_port),
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "LOG_FORMAT": "json",
            **self.extra_env,
        }

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.kafka_env is None:
            self.broker = EmbeddedBroker()
        env = self.env()
        create_stack_topics(env)
        emulator = self._start("amazon-emulator", ["amazon-emulator", "--port", str(self.emulator_port),
                                                   *self.emulator_config_args(env), *self.emulator_args], env)
        for worker in ("validator", "submitter", "recorder"):
            for index in range(self.scale.get(worker, 1)):
                name = worker if index == 0 else f"{worker}-{index + 1}"
                self._start(name, [worker], {**env, "METRICS_PORT": str(free_port())})
        api = self._start("api", ["api"], {**env, "METRICS_PORT": "off"})
        _wait_http(f"{self.emulator_url}/_emulator/requests", emulator)
        _wait_http(f"{self.api_url}/api/activity", api)

    @staticmethod
    def emulator_config_args(env: dict[str, str]) -> list[str]:
        """The emulator knows the accounts and product types the workers are given, read from the
        same environment (no secret on a command line)."""
        args = ["--accounts-from-env"]
        if env.get("PRODUCT_TYPES_DIR"):
            args += ["--product-types-dir", env["PRODUCT_TYPES_DIR"]]
        return args

    def api_get(self, path: str, **params) -> dict:
        """GET the read API's JSON over one kept-alive client: pollers ask many times a second, and
        a new client per request builds an SSL context each time."""
        if self._api is None:
            self._api = httpx.Client(base_url=self.api_url, timeout=10)
        response = self._api.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> ServiceProcess:
        process = ServiceProcess(name, args, env, self.data_dir / "logs").start()
        self.processes[name] = process
        return process

    def publish(self, catalog: Path, mode: str) -> str:
        from catalog_sync.publisher import RunPublisher, read_catalog
        from catalog_sync.runtime.config import RuntimeSettings

        parsed = read_catalog(catalog)
        if parsed.problems:
            raise ValueError(f"{catalog}: {len(parsed.problems)} line(s) break the contract")
        settings = RuntimeSettings.from_env("publisher", self.env(), metrics_port=None)
        publisher = RunPublisher(settings)
        try:
            return publisher.publish_run(parsed.items, mode=mode, source=catalog.name)
        finally:
            publisher.close()

    def find_run(self, run_id: str, newest: int = 50) -> dict | None:
        """The run as the read API shows it, if it is one of the `newest` runs."""
        return next((run for run in self.api_get("/api/runs", limit=newest)["runs"] if run["run_id"] == run_id), None)

    def wait_for_run(self, run_id: str, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.find_run(run_id)
            if run is not None and run["status"] != "in_progress":
                return run
            for process in self.processes.values():
                if not process.running:
                    raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not complete within {timeout_s}s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        for process in reversed(list(self.processes.values())):
            process.stop()
        if self.broker is not None:
            self.broker.close()
            self.broker = None


def _summary(stack: DemoStack, run: dict) -> str:
    counts = run["counts"]
    lines = [
        f"run {run['run_id']}: {run['status']} — {counts['total']} items: {counts['finished']} finished, "
        f"{counts['error']} error, {counts['pending']} pending (mode {run['mode']}, endpoint {run['endpoint']})",
    ]
    items = stack.api_get("/api/items", run_id=run["run_id"], limit=100)["items"]
    for item in items:
        error = item.get("error")
        detail = f"{error['type']}: {error['code']} {error['message']}" if error else "ok"
        lines.append(f"  {item['item_type']:<8} {item['reference']:<24} {item['status']:<9} "
                     f"request_id={item.get('request_id') or '-':<36} {detail}"[:220])
    return "\n".join(lines)


def export_line(stack: DemoStack) -> str:
    """`export ...` of what a command in another shell needs to reach this demo's broker and store."""
    env = stack.env()
    names = ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_API_VERSION", "READ_STORE_URL")
    return "export " + " ".join(f"{name}={shlex.quote(env[name])}" for name in names if env.get(name))


def create_stack_topics(env: dict[str, str]) -> None:
    """Every topic, before the workers start (they refuse to start without theirs): created with 4
    partitions on a real broker; the embedded broker, which cannot create topics, makes them on the
    first request naming them."""
    from catalog_sync.runtime.bus import ensure_topics
    from catalog_sync.runtime.config import RuntimeSettings
    from catalog_sync.runtime.topics import topic_plan

    settings = RuntimeSettings.from_env("demo", env, metrics_port=None)
    plan = topic_plan(prefix=settings.topic_prefix, partitions=4)
    ensure_topics(settings, list(plan), partitions=4, configs={name: configs for name, (_, configs) in plan.items()})


def create_demo_topics(kafka_env: dict[str, str]) -> str:
    """The demo's topics on a real cluster, from the one definition (4 partitions, the cluster's
    replication factor and min.insync.replicas); the embedded broker makes them as they are used."""
    from catalog_sync.runtime.bus import create_topics
    from catalog_sync.runtime.config import RuntimeSettings
    from catalog_sync.runtime.topics import topic_plan

    settings = RuntimeSettings.from_env("demo", kafka_env, metrics_port=None)
    done = create_topics(settings, topic_plan(prefix=settings.topic_prefix, partitions=4))
    created = sum(1 for state in done.values() if state == "created")
    return f"{created} created, {len(done) - created} already there"


def run_demo(args: argparse.Namespace) -> int:
    catalog = args.catalog or sample_catalog()
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="catalog-sync-demo-")) if temporary else args.data_dir
    kafka_env = None
    if getattr(args, "kafka", None):
        kafka_env = {"KAFKA_BOOTSTRAP_SERVERS": args.kafka}
        from catalog_sync.runtime.bus import BusError

        try:
            created = create_demo_topics(kafka_env)
        except BusError as exc:
            print(f"catalog-sync demo: cannot create the topics on {args.kafka}: {exc}", file=sys.stderr)
            return 1
        print(f"catalog-sync demo: topics on {args.kafka}: {created}", flush=True)
    stack = DemoStack(data_dir, args.api_port, kafka_env=kafka_env)
    print(f"catalog-sync demo: starting {'' if kafka_env else 'broker, '}Amazon emulator and workers "
          f"(logs in {data_dir / 'logs'})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        stack.start()
        run_id = stack.publish(catalog, args.mode)
        print(f"published {catalog.name} as run {run_id}", flush=True)
        print(f"web page:   {stack.api_url}/", flush=True)
        print(f"read API:   {stack.api_url}/api/activity  (OpenAPI at {stack.api_url}/docs)", flush=True)
        print(f"emulator:   {stack.emulator_url}/_emulator/requests", flush=True)
        print(f"terminal:   READ_STORE_URL=sqlite:///{data_dir / 'catalog-sync.db'} catalog-sync status", flush=True)
        print(f"broker:     {stack.env()['KAFKA_BOOTSTRAP_SERVERS']} ({'yours' if kafka_env else 'embedded'}; "
              f"Kafka protocol {stack.env().get('KAFKA_API_VERSION') or 'negotiated'})", flush=True)
        # One line to paste into another shell: then `catalog-sync publish FILE --mode test` adds a
        # run to this demo, and a Kafka tool can attach to the same broker.
        print(f"to publish more runs or attach a Kafka tool, in another shell:\n  {export_line(stack)}", flush=True)
        if args.once:
            run = stack.wait_for_run(run_id, args.timeout)
            print(_summary(stack, run), flush=True)
            return 0 if run["status"] in ("finished", "finished_with_errors") else 1
        print("running; press Ctrl-C to stop", flush=True)
        while all(p.running for p in stack.processes.values()):
            time.sleep(1)
        print("a service exited; stopping the demo", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        if temporary and args.once and not os.environ.get("CATALOG_SYNC_KEEP_DEMO"):
            shutil.rmtree(data_dir, ignore_errors=True)
