"""Issue 20, item 2: the metrics tell the truth.

One run of known content goes through the whole pipeline (separate processes): N items of which k
fail local validation, d undecodable messages on the workers' topics, Amazon answering 503 r times
and 429 t times for two SKUs (so the submitter retries), a 400 and INVALID answers. Afterwards every
counter of every worker equals the ground truth taken from the catalog, the broker's topics and the
Amazon emulator's request log, and every worker observed its processing-duration histogram once per
message. With Debian's `prometheus` server scraping the workers during the run, every query of the
Grafana dashboard, asked over Prometheus' HTTP API, returns data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalog_sync.runtime.bus import TopicReader, ensure_topics
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.processes import free_port
from tests.faults.fault_pipeline import (
    LOCAL_INVALID,
    listings_requests,
    make_catalog,
    start_stack,
    wait_until_drained,
)
from tests.support.background import wait_until
from tests.support.broker import publish_raw, unique_prefix
from tests.support.requirements import require

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "catalog-sync.json"
ITEMS = 200
THROTTLED_SKU, THROTTLES = "HB-00010", 3  # answered 429 three times, then normally
FAILING_SKU, FAILURES = "HB-00011", 2  # answered 503 twice, then normally
GARBAGE = {"catalog.item.changed": 2, "listing.ready": 3, "listing.submission.completed": 1}
WORKERS = ("validator", "submitter", "recorder")
SCRAPE_S = 1


def samples(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample a worker serves: (name, sorted labels) -> value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def picked(found: dict, name: str, **labels) -> dict[tuple, float]:
    """Samples of `name` whose labels include `labels`, keyed by their other labels; a process's
    loops (service and service-reconciliation) summed."""
    out: dict[tuple, float] = {}
    for (sample, sample_labels), value in found.items():
        as_dict = dict(sample_labels)
        if sample == name and all(as_dict.get(k) == v for k, v in labels.items()):
            key = tuple(v for k, v in sample_labels if k not in labels and k != "service")
            out[key] = out.get(key, 0.0) + value
    return out


def listing_gets(stack) -> list[dict]:
    requests = httpx.get(f"{stack.emulator_url}/_emulator/requests", timeout=60).json()["requests"]
    return [r for r in requests if r.get("operation") == "getListingsItem"]


def topic_counts(settings: RuntimeSettings, topic: str) -> int:
    """Records on a topic (prefixed name), read from its beginning."""
    ensure_topics(settings, [topic])
    reader = TopicReader(settings, [topic])
    try:
        n, idle = 0, 0
        while idle < 3:  # three empty polls after the end: the topic is read
            got = reader.poll(timeout_ms=500)
            n += len(got)
            idle = 0 if got else idle + 1
        return n
    finally:
        reader.close()


class Prometheus:
    """Debian's prometheus server scraping the workers every SCRAPE_S second(s)."""

    def __init__(self, targets: dict[str, int]):
        self.folder = Path(tempfile.mkdtemp(prefix="catalog-sync-prometheus-"))
        self.port = free_port()
        config = {"global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
                  "scrape_configs": [{"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                                     for name, port in targets.items()]}
        (self.folder / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        self.log = (self.folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [shutil.which("prometheus"), f"--config.file={self.folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(self._ready, timeout_s=60, message="prometheus to start")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(self.folder / 'prometheus.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30).json()
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def targets_up(self) -> bool:
        answer = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        active = answer["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def finished_run(kafka, tmp_path_factory):
    """The run, finished, with its ground truth; Prometheus scraped it throughout when installed."""
    folder = tmp_path_factory.mktemp("metric-truth")
    prefix = unique_prefix()
    env = {**kafka.env(prefix), "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
           "LOG_FORMAT": "json"}
    stack = start_stack(folder, env)
    prometheus = None
    try:
        ports = {name: int(stack.processes[name].env["METRICS_PORT"]) for name in WORKERS}
        if shutil.which("prometheus"):
            prometheus = Prometheus({**ports, "api": stack.api_port})
            wait_until(prometheus.targets_up, timeout_s=60, message="prometheus scraping every worker")
        for sku, status, times in ((THROTTLED_SKU, 429, THROTTLES), (FAILING_SKU, 503, FAILURES)):
            httpx.post(f"{stack.emulator_url}/_emulator/script", json={"status": status, "times": times, "sku": sku},
                       timeout=10).raise_for_status()
        settings = RuntimeSettings.from_env("truth", env)
        for topic, n in GARBAGE.items():
            publish_raw(settings, topic, [(f"junk-{i}", b"\x00not avro") for i in range(n)])
        catalog = make_catalog(ITEMS)
        run_id = stack.publish(catalog.write(folder / "catalog.jsonl"), "production")
        run = stack.wait_for_run(run_id, timeout_s=240)
        yield {"stack": stack, "catalog": catalog, "run": run, "ports": ports, "settings": settings,
               "prefix": prefix, "prometheus": prometheus}
    finally:
        if prometheus is not None:
            prometheus.close()
        stack.stop()


def truth(finished_run) -> dict[str, dict]:
    """What each worker's counters must say, from the catalog, the topics and Amazon's log."""
    settings, prefix = finished_run["settings"], finished_run["prefix"]
    catalog = finished_run["catalog"]
    on = {t: topic_counts(settings, prefix + t) for t in
          ("catalog.run.events", "catalog.item.changed", "listing.validation.failed", "listing.ready",
           "listing.submission.completed", "listing.state.observed", "validator.dlq", "submitter.dlq",
           "recorder.dlq")}
    invalid = catalog.counts()[LOCAL_INVALID]
    ready = on["listing.ready"] - GARBAGE["listing.ready"]
    completed = on["listing.submission.completed"] - GARBAGE["listing.submission.completed"]
    requests = listings_requests(finished_run["stack"])
    # The submitter's reconciliation loop looks at accepted listings with getListingsItem.
    statuses = Counter((r["operation"], str(r["status"])) for r in requests + listing_gets(finished_run["stack"]))
    items_sent = len({(r["seller_id"], r["sku"]) for r in requests})
    g_changed, g_ready, g_completed = (GARBAGE[t] for t in GARBAGE)
    t = lambda name: prefix + name  # noqa: E731
    # Keys are the labels' values in the order of their names (outcome, reason before topic).
    processed = {
        "validator": {("ok", t("catalog.item.changed")): ITEMS, ("dead_letter", t("catalog.item.changed")): g_changed},
        "submitter": {("ok", t("listing.ready")): ready, ("dead_letter", t("listing.ready")): g_ready,
                      # its reconciliation loop (service="submitter-reconciliation") reads the outcomes
                      ("ok", t("listing.submission.completed")): completed,
                      ("dead_letter", t("listing.submission.completed")): g_completed},
        "recorder": {("ok", t("catalog.run.events")): 2, ("ok", t("catalog.item.changed")): ITEMS,
                     ("dead_letter", t("catalog.item.changed")): g_changed,
                     ("ok", t("listing.validation.failed")): invalid,
                     ("ok", t("listing.submission.completed")): completed,
                     ("dead_letter", t("listing.submission.completed")): g_completed,
                     ("ok", t("listing.state.observed")): on["listing.state.observed"]},
    }
    return {
        "topics": on, "invalid": invalid, "ready": ready, "completed": completed,
        "processed": processed,
        "consumed": {w: {(topic,): sum(v for (_, tp), v in p.items() if tp == topic) for (_, topic) in p}
                     for w, p in processed.items()},
        "produced": {"validator": {(t("listing.validation.failed"),): invalid, (t("listing.ready"),): ready},
                     "submitter": {(t("listing.submission.completed"),): completed,
                                   (t("listing.state.observed"),): on["listing.state.observed"],
                                   **({(t("listing.accepted.hashes"),): on_hashes}
                                      if (on_hashes := topic_counts(settings, t("listing.accepted.hashes"))) else {})},
                     "recorder": {}},
        "dead_letters": {"validator": {("not_avro", t("catalog.item.changed")): g_changed},
                         "submitter": {("not_avro", t("listing.ready")): g_ready,
                                       ("not_avro", t("listing.submission.completed")): g_completed},
                         "recorder": {("not_avro", t("catalog.item.changed")): g_changed,
                                      ("not_avro", t("listing.submission.completed")): g_completed}},
        "dlq_topics": {w: on[f"{w}.dlq"] for w in WORKERS},
        "spapi_requests": {k: float(v) for k, v in statuses.items()},
        "throttled": statuses.get(("putListingsItem", "429"), 0) + statuses.get(("deleteListingsItem", "429"), 0),
        "retries": len(requests) - items_sent,
        "projected": {("CatalogItemChanged",): ITEMS, ("ValidationFailed",): invalid,
                      ("SubmissionCompleted",): completed, ("RunOpened",): 1, ("RunClosed",): 1,
                      **({("ListingObserved",): on["listing.state.observed"]} if on["listing.state.observed"] else {})},
    }


def test_every_counter_of_every_worker_equals_the_ground_truth(finished_run):
    # The reconciliation's looks at accepted listings go on after the run is finished: the truth is
    # read once every group has committed all its input.
    wait_until_drained(finished_run["stack"], timeout_s=120)
    expected = truth(finished_run)
    ports = finished_run["ports"]
    assert expected["throttled"] == THROTTLES and expected["retries"] >= THROTTLES + FAILURES, \
        "the run did not contain the throttles and retries it was built with"
    # Undecodable outcomes are dead-lettered twice: by the recorder and by the submitter's reconciliation.
    assert expected["invalid"] > 0 and sum(expected["dlq_topics"].values()) == 2 * GARBAGE["catalog.item.changed"] \
        + GARBAGE["listing.ready"] + 2 * GARBAGE["listing.submission.completed"]

    def as_float(d):
        return {k: float(v) for k, v in d.items() if v}

    def compare() -> dict:
        wrong = {}
        found = {w: samples(ports[w]) for w in WORKERS}
        for w in WORKERS:
            checks = {
                "processed": (picked(found[w], "pipeline_messages_processed_total"), expected["processed"][w]),
                "consumed": (picked(found[w], "pipeline_messages_consumed_total"), expected["consumed"][w]),
                "produced": (picked(found[w], "pipeline_messages_produced_total"), expected["produced"][w]),
                "dead_letters": (picked(found[w], "pipeline_dead_letters_total"), expected["dead_letters"][w]),
                # observed once per message handled, whatever its outcome
                "duration_count": (picked(found[w], "pipeline_processing_duration_seconds_count"),
                                   {(): sum(expected["processed"][w].values())}),
            }
            for name, (got, want) in checks.items():
                if as_float(got) != as_float(want):
                    wrong[f"{w} {name}"] = (as_float(got), as_float(want))
        submitter, recorder = found["submitter"], found["recorder"]
        spapi = {
            "spapi_requests_total": (picked(submitter, "spapi_requests_total"), expected["spapi_requests"]),
            "spapi_throttled_total": (picked(submitter, "spapi_throttled_total"), {(): expected["throttled"]}),
            "spapi_retries_total": (picked(submitter, "spapi_retries_total"), {(): expected["retries"]}),
            "spapi_request_duration_seconds_count": (
                {(): sum(picked(submitter, "spapi_request_duration_seconds_count").values())},
                {(): sum(expected["spapi_requests"].values())}),
            "recorder_events_projected_total": (picked(recorder, "recorder_events_projected_total"),
                                                expected["projected"]),
            "recorder_events_skipped_total": (picked(recorder, "recorder_events_skipped_total"), {}),
        }
        for name, (got, want) in spapi.items():
            if as_float(got) != as_float(want):
                wrong[name] = (as_float(got), as_float(want))
        return wrong

    last: dict = {}

    def settled() -> bool:
        nonlocal last
        last = compare()
        return not last

    try:
        wait_until(settled, timeout_s=60, interval_s=0.5, message="the counters to equal the ground truth")
    except TimeoutError:
        pytest.fail("counters differ from the ground truth (got, expected):\n"
                    + "\n".join(f"{k}: {v}" for k, v in last.items()))
    assert expected["dlq_topics"] == {w: sum(expected["dead_letters"][w].values()) for w in WORKERS}


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every dashboard target, with Grafana's variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    substitutions = {"$__rate_interval": "1m", "$__range": "10m", "$service": ".*"}
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                for variable, value in substitutions.items():
                    expr = expr.replace(variable, value)
                out.append((panel["title"], expr))
    return out


@pytest.mark.prometheus
def test_every_dashboard_query_returns_data_from_a_real_prometheus(finished_run):
    require(shutil.which("prometheus") is not None,
            "Debian's prometheus server is not installed (bash .ci/install-tools.sh installs it)")
    prometheus = finished_run["prometheus"]
    queries = dashboard_queries()
    assert len(queries) >= 25
    for title, expr in queries:
        assert "$" not in expr, f"{title}: a Grafana variable left unfilled in {expr}"

    def empty() -> list[tuple[str, str]]:
        return [(title, expr) for title, expr in queries if not prometheus.query(expr)]

    missing: list = []

    def all_answer() -> bool:
        nonlocal missing
        missing = empty()
        return not missing

    try:  # rates need two scrapes after the last change; a few seconds at most
        wait_until(all_answer, timeout_s=30, interval_s=SCRAPE_S, message="every panel's query to return data")
    except TimeoutError:
        pytest.fail("dashboard queries without data:\n" + "\n".join(f"{t}: {e}" for t, e in missing))
