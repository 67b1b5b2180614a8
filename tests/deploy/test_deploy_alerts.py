"""deploy/prometheus: alert rules pass their promtool unit tests; the scrape config finds every service."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from deploy_facts import DEPLOY, WORKERS

from catalog_sync.runtime.config import DEFAULT_METRICS_PORTS

PROMETHEUS = DEPLOY / "prometheus"


def promtool_run(promtool, *args, cwd=PROMETHEUS) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.promtool
def test_rules_are_valid(promtool):
    result = promtool_run(promtool, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
def test_alert_unit_tests_pass(promtool):
    result = promtool_run(promtool, "test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert alerts <= fires, f"never shown firing: {sorted(alerts - fires)}"
    assert alerts <= quiet, f"never shown quiet: {sorted(alerts - quiet)}"


def test_alerts_carry_severity_and_text_for_the_on_call():
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


@pytest.mark.promtool
def test_scrape_config_is_valid_and_covers_every_service(promtool, tmp_path):
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    # In the container the rules sit at /etc/prometheus; promtool resolves them beside the config.
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config["rule_files"] = ["alerts.yml"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    result = promtool_run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    ports = {job["job_name"]: job["dns_sd_configs"][0]["port"] for job in config["scrape_configs"]}
    assert ports == {**{name: DEFAULT_METRICS_PORTS[name] for name in WORKERS}, "api": 8080}
    # CatalogSyncWorkerDown notices a job with no target left only for the jobs it names.
    worker_down = next(
        rule["expr"] for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"] if rule["alert"] == "CatalogSyncWorkerDown"
    )
    for job in ports:
        assert f'absent(up{{job="{job}"}})' in worker_down, job
