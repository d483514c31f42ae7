"""The dashboard, the alert rules and their tests name only metrics the bot really exports.

Dashboards and alerts fail silently when a metric is renamed (an empty panel, an alert that can
never fire), so every `alura_bot_*` name they use is checked against `Metrics().names()`. The
files are read with the standard library only (no YAML parser in the project's dependencies).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.metrics import HISTOGRAM_SUFFIXES, Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "alura-bot.json"
ALERTS = DEPLOY / "alerts.yml"
ALERT_TESTS = DEPLOY / "alerts.test.yml"
DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
METRIC = re.compile(r"(?<![A-Za-z0-9_:])alura_bot_[a-z0-9_]+")


def family(name: str) -> str:
    """A series name as the family `names()` lists (histograms' `_bucket/_count/_sum` dropped)."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def walk_queries(node: Any) -> Iterator[str]:
    """Every PromQL string in the dashboard: panel targets and templating queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from walk_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_queries(item)


def yaml_values(text: str, key: str) -> list[str]:
    """Values of `key:` in a YAML file, single-line or block scalars (`>-`, `|`)."""
    lines = text.splitlines()
    values = []
    pattern = re.compile(rf"^(\s*)(?:-\s+)?{re.escape(key)}:\s*(.*)$")
    for i, line in enumerate(lines):
        m = pattern.match(line)
        if not m:
            continue
        indent, rest = len(m.group(1)), m.group(2).strip()
        if rest and rest[0] in ">|":
            block = []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                block.append(nxt.strip())
            values.append(" ".join(block).strip())
        else:
            values.append(rest.strip("'\""))
    return values


def used_in_dashboard() -> set[str]:
    return {m for q in walk_queries(dashboard()) for m in METRIC.findall(q)}


def alert_exprs() -> list[str]:
    return yaml_values(ALERTS.read_text(), "expr")


def used_in_alerts() -> set[str]:
    return {m for expr in alert_exprs() for m in METRIC.findall(expr)}


def used_in_alert_tests() -> set[str]:
    return {m for s in yaml_values(ALERT_TESTS.read_text(), "series") for m in METRIC.findall(s)}


EXPORTED = Metrics().names()


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("dashboard", used_in_dashboard()),
        ("alerts.yml", used_in_alerts()),
        ("alerts.test.yml", used_in_alert_tests()),
    ],
)
def test_every_metric_name_used_is_exported(source: str, names: set[str]) -> None:
    assert names, f"no alura_bot_* names found in {source}: is the parser still right?"
    unknown = sorted(n for n in names if family(n) not in EXPORTED)
    assert not unknown, f"{source} uses metrics the bot does not export: {unknown}"


def test_histograms_are_queried_by_their_series() -> None:
    """`histogram_quantile` needs `_bucket`; a bare histogram name selects nothing."""
    histograms = {
        name
        for name in EXPORTED
        if {name + s for s in HISTOGRAM_SUFFIXES} <= Metrics().series_names()
    }
    for query in walk_queries(dashboard()):
        for name in METRIC.findall(query):
            assert name not in histograms, f"{name} used without _bucket/_count/_sum: {query}"


def test_parser_sees_every_alert_expression() -> None:
    alerts = re.findall(r"^\s*- alert:\s*(\w+)", ALERTS.read_text(), flags=re.M)
    exprs = alert_exprs()
    assert len(exprs) == len(alerts) >= 7
    assert all(exprs), "an empty expression was parsed"


def test_dashboard_shows_what_issue_8_asks_for() -> None:
    used = {family(n) for n in used_in_dashboard()}
    assert {
        "alura_bot_realized_pnl_usd",
        "alura_bot_unrealized_pnl_usd",
        "alura_bot_equity_usd",
        "alura_bot_open_sessions",
        "alura_bot_decisions_total",
        "alura_bot_api_request_duration_seconds",
        "alura_bot_api_errors_total",
        "alura_bot_api_requests_total",
        "alura_bot_last_tick_timestamp_seconds",
    } <= used
    queries = list(walk_queries(dashboard()))
    assert any("histogram_quantile(0.5," in q and "endpoint" in q for q in queries)
    assert any("histogram_quantile(0.99," in q and "endpoint" in q for q in queries)
    assert any('code="429"' in q for q in queries)
    assert any("by (verdict)" in q for q in queries)
    assert any("by (asset)" in q for q in queries)


def test_dashboard_panels_are_well_formed() -> None:
    uid = re.search(r"^\s*uid:\s*(\S+)", DATASOURCE.read_text(), flags=re.M)
    assert uid is not None
    board = dashboard()
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": uid.group(1)}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)) and refs, p["title"]
    assert board["uid"] == "alura-bot"


def test_every_alert_has_a_test_that_makes_it_fire() -> None:
    alerts = set(re.findall(r"^\s*- alert:\s*(\w+)", ALERTS.read_text(), flags=re.M))
    fired: set[str] = set()
    quiet: set[str] = set()
    for block in re.split(r"^\s*- eval_time:", ALERT_TESTS.read_text(), flags=re.M)[1:]:
        name = re.search(r"alertname:\s*(\w+)", block)
        assert name is not None
        (fired if "exp_labels:" in block else quiet).add(name.group(1))
    assert alerts <= fired, f"alerts never shown firing: {sorted(alerts - fired)}"
    assert alerts <= quiet, f"alerts never shown quiet: {sorted(alerts - quiet)}"


def test_compose_mounts_files_that_exist() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    paths = set(re.findall(r"\./(?:deploy|config)/[\w./-]+", compose))
    assert paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"compose.yaml mounts missing files: {missing}"
