"""Every metric the dashboard and the alert rules query is one the services really register.

The names are not listed here: each service's metrics classes (a class named *Metrics taking a
`registry`) are built on a fresh CollectorRegistry and the registry says what it would export.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry
from promql_names import alert_queries, dashboard_queries, names

PACKAGES = ("catalog_sync.runtime", "catalog_sync.validator", "catalog_sync.submitter", "catalog_sync.recorder")
# Series Prometheus makes itself for every target, and the target labels it adds.
SCRAPE_SERIES = {"up"}
TARGET_LABELS = {"job", "instance"}


@dataclass(frozen=True)
class Exported:
    family: str
    kind: str  # counter, gauge, histogram, summary, ...
    labels: frozenset[str]


def metrics_factories(package_name: str) -> list[type]:
    package = importlib.import_module(package_name)
    factories = []
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package_name}.{module_info.name}")
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and cls.__module__ == module.__name__ and cls.__name__.endswith("Metrics")):
                continue
            params = inspect.signature(cls).parameters
            if "registry" in params:
                factories.append(cls)
    return factories


def build(factory: type, service: str, collaborators: dict) -> CollectorRegistry:
    """The factory on a fresh registry, given the service name and any collaborator it asks for
    (the recorder's store gauges need a read model to exist at all)."""
    registry = CollectorRegistry()
    kwargs = {"registry": registry}
    for name in inspect.signature(factory).parameters:
        if name == "service":
            kwargs[name] = service
        elif name in collaborators:
            kwargs[name] = collaborators[name]()
    missing = [n for n, p in inspect.signature(factory).parameters.items()
               if n not in kwargs and p.default is inspect.Parameter.empty]
    assert not missing, f"{factory.__qualname__} needs {missing}: the test does not know how to build it"
    factory(**kwargs)
    return registry


def exported(registry: CollectorRegistry) -> dict[str, Exported]:
    """Sample name -> what it belongs to. Labelled metrics without children expose no samples, so
    their label names come from the metric objects (prometheus_client has no public accessor);
    custom collectors are asked to collect."""
    out = {}
    for collector, sample_names in registry._collector_to_names.items():
        if hasattr(collector, "_labelnames"):  # Counter, Gauge, Histogram, ...
            labels = frozenset(collector._labelnames)
            family, kind = collector._name, collector._type
            for name in sample_names:
                if name == family and kind in ("counter", "histogram", "summary"):
                    continue  # registered under the family name, but only suffixed series are exposed
                out[name] = Exported(family, kind, labels | ({"le"} if name == f"{family}_bucket" else set()))
        else:
            for metric in collector.collect():
                for sample in metric.samples:
                    known = out.get(sample.name)
                    labels = frozenset(sample.labels) | (known.labels if known else frozenset())
                    out[sample.name] = Exported(metric.name, metric.type, labels)
    return out


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> dict[str, Exported]:
    from catalog_sync.recorder.read_model import ReadModel
    from catalog_sync.recorder.store import ReadStore

    store = ReadStore(f"sqlite:///{tmp_path_factory.mktemp('store') / 'read.db'}")
    store.migrate()
    collaborators = {"model": lambda: ReadModel(store)}
    found: dict[str, Exported] = {}
    try:
        for package in PACKAGES:
            service = package.rsplit(".", 1)[1]
            factories = metrics_factories(package)
            assert factories, f"no *Metrics class with a `registry` parameter in {package}"
            for factory in factories:
                found.update(exported(build(factory, service, collaborators)))
    finally:
        store.close()
    return found


QUERIES = dashboard_queries() + alert_queries()


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_queried_metrics_are_exported(query, registered):
    used = names(query.expr)
    unknown = used.metrics - set(registered) - SCRAPE_SERIES
    assert not unknown, f"{query.where} queries {sorted(unknown)}, which no service registers"
    for metric, labels in used.matcher_labels.items():
        allowed = TARGET_LABELS | (registered[metric].labels if metric in registered else set())
        assert labels <= allowed, f"{query.where}: {metric} has no label {sorted(labels - allowed)}"
    known = TARGET_LABELS.union(*(registered[m].labels for m in used.metrics if m in registered))
    assert used.grouping_labels <= known, (
        f"{query.where} groups by {sorted(used.grouping_labels - known)}, a label none of its metrics has"
    )


def test_no_metric_is_labelled_by_seller_or_item(registered):
    """The quota panel's premise, and the style guide's rule: unbounded labels stay in the logs."""
    forbidden = {"seller", "seller_id", "sku", "reference", "request_id", "event_id", "run_id"}
    offenders = {name: sorted(e.labels & forbidden) for name, e in registered.items() if e.labels & forbidden}
    assert not offenders


def test_the_api_serves_metrics_where_prometheus_scrapes_it(tmp_path):
    """prometheus.yml scrapes the API at :8080/metrics; without it the target is down and
    CatalogSyncWorkerDown fires for the api job."""
    from fastapi.testclient import TestClient

    from catalog_sync.recorder.api import create_app
    from catalog_sync.recorder.read_model import ReadModel
    from catalog_sync.recorder.store import ReadStore

    store = ReadStore(f"sqlite:///{tmp_path / 'read.db'}")
    store.migrate()
    try:
        with TestClient(create_app(ReadModel(store), api_token="secret")) as client:
            response = client.get("/metrics")  # no token: Prometheus scrapes without one
        assert response.status_code == 200
        assert "recorder_runs" in response.text
    finally:
        store.close()
