"""deploy/grafana: the dashboard Grafana provisions, its queries, and the provisioning around it."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from deploy_facts import DEPLOY
from promql_names import dashboard_queries, for_prometheus, names

GRAFANA = DEPLOY / "grafana"


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((GRAFANA / "dashboards" / "catalog-sync.json").read_text())


def visible_panels(dashboard):
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_panels_fit_the_grid_without_overlapping(dashboard):
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_panel_queries_the_chosen_prometheus(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in visible_panels(dashboard):
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]


def test_the_dashboard_answers_the_operators_questions(dashboard):
    """Issue 6: each question has a panel querying the metric that answers it."""
    queried = {}
    for panel in visible_panels(dashboard):
        for target in panel["targets"]:
            for metric in names(target["expr"]).metrics:
                queried.setdefault(metric, []).append(panel)
    for metric in (
        "pipeline_messages_processed_total",  # throughput and outcomes
        "validator_errors_total",  # validation errors by code
        "spapi_requests_total",  # Amazon HTTP statuses
        "spapi_throttled_total",  # 429s
        "spapi_quota_wait_seconds_total",  # quota use
        "spapi_request_duration_seconds_bucket",  # latency p50/p99
        "pipeline_consumer_lag_messages",  # lag
        "recorder_runs",  # runs in progress / interrupted
        "recorder_items_pending",
    ):
        assert metric in queried, f"no panel queries {metric}"
    for panel in queried["spapi_quota_wait_seconds_total"]:
        assert "seller label" in panel["description"], "the quota panel must say why it is not per seller"


@pytest.mark.promtool
def test_every_query_is_valid_promql(promtool, tmp_path):
    # promtool parses PromQL only inside rule files: one recording rule per dashboard query.
    rules = [{"record": f"dashboard:query{i}", "expr": for_prometheus(q.expr)} for i, q in enumerate(dashboard_queries())]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", "queries.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_points_grafana_at_prometheus_and_the_dashboard(compose, dashboard):
    (datasource,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    prometheus_port = compose["services"]["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "catalog-sync.yml").read_text())["providers"]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/catalog-sync.json"
    assert dashboard["uid"] == "catalog-sync"
