"""What the dashboard and the alert rules ask Prometheus for: their PromQL, and the metric and label
names in it. A small reader for the PromQL we write, not a full parser: string literals, label
matchers, ranges and grouping clauses are taken apart with regular expressions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import yaml
from deploy_facts import DEPLOY

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan", "atan2"}
# Grafana's variables, replaced by values Prometheus accepts.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$service": ".*"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_LABEL_IN_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")


@dataclass
class Query:
    where: str  # "dashboard: <panel title>" or "alert: <name>"
    expr: str


@dataclass
class Names:
    metrics: set[str] = field(default_factory=set)
    matcher_labels: dict[str, set[str]] = field(default_factory=dict)  # metric -> labels it is filtered on
    grouping_labels: set[str] = field(default_factory=set)


def for_prometheus(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def names(expr: str) -> Names:
    found = Names()
    text = _STRING.sub('""', for_prometheus(expr))
    for metric, body in _MATCHERS.findall(text):
        if metric and metric not in KEYWORDS:
            found.matcher_labels.setdefault(metric, set()).update(_LABEL_IN_MATCHER.findall(body))
    text = _MATCHERS.sub(lambda m: m.group(1) or "", text)
    for _, labels in _GROUPING.findall(text):
        found.grouping_labels.update(label.strip() for label in labels.split(",") if label.strip())
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\boffset\s+\S+", " ", text)
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word in KEYWORDS or text[match.end():].lstrip().startswith("("):
            continue  # an operator, or a function / aggregation call
        found.metrics.add(word)
    return found


def dashboard_queries() -> list[Query]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "catalog-sync.json").read_text())
    queries = [
        Query(f"dashboard: {panel['title']}", target["expr"])
        for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(metric, label): the metric must exist too.
            metric = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            queries.append(Query(f"dashboard variable: {variable['name']}", f"group by ({metric[2]}) ({metric[1]})"))
    return queries


def alert_queries() -> list[Query]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [Query(f"alert: {rule['alert']}", rule["expr"]) for group in rules["groups"] for rule in group["rules"]]
