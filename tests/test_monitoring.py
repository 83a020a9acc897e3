"""The monitoring assets in deploy/monitoring/ hold together: promtool accepts the rules and runs their
unit tests, the dashboard is well formed, and neither names a metric that a live server does not export.

The live check starts a real server over moto's S3 and serves an original, a preview and a
conversion first, so that the series created on first use exist. It then reads the metric names out
of every PromQL expression (the rules' and the dashboard's) and compares them with the exposition.
"""

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.s3 import MotoS3, s3_env

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "deploy" / "monitoring"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts.test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed")

# Series that Prometheus makes itself, not the server.
PROMETHEUS_OWN = {"up"}
# PromQL words that are not metric names: aggregations, binary operators, modifiers, constants.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "and", "or", "unless", "atan2", "start", "end", "inf", "nan",
}
# Grouping clauses list label names, not metrics: `by (route, le)`, `on (instance)`, `group_left (x)`.
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
# One token: a duration (5m, 1h30m), a number (1e3, 0.5), a name, or one other character.
TOKEN = re.compile(r"""
    (?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*\b)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | \S
""", re.VERBOSE)
LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")
# The dashboard's Grafana variables, as Prometheus would see them once Grafana has substituted them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$job": ".*", "$instance": ".*"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and label names left out)."""
    text = STRING.sub('""', expr)  # a label value may contain anything
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery windows
    text = GROUPING.sub(" ", text)
    tokens = [(m.lastgroup, m.group(0)) for m in TOKEN.finditer(text)]
    names = set()
    for i, (kind, token) in enumerate(tokens):
        if kind != "name" or token in PROMQL_WORDS:
            continue
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if following != "(":  # a function call otherwise
            names.add(token)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics text exposition offers, declared families with no sample yet included.

    A family with no sample (a counter of cache errors that never happened) still has its `# TYPE`
    line; its series names are the family's name with the suffixes of its type.
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}.get(kind, ("",))
            names.update(name + suffix for suffix in suffixes)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def rule_expressions() -> list[str]:
    """Every `expr` of the alert rules."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard, parsed."""
    parsed: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return parsed


def data_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows only group them), nested ones included."""
    for panel in board["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_expressions() -> list[str]:
    """Every PromQL query of the dashboard's panels, Grafana's variables substituted."""
    exprs = [target["expr"] for panel in data_panels(dashboard()) for target in panel["targets"]]
    substituted = []
    for expr in exprs:
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        substituted.append(expr)
    return substituted


def template_metric_names() -> set[str]:
    """Metric names the dashboard's template variables query (`label_values(metric, label)`)."""
    queries = [str(variable.get("definition", "")) for variable in dashboard()["templating"]["list"]]
    return {match.group(1) for query in queries for match in LABEL_VALUES.finditer(query)}


def names_missing(expressions: Iterable[str], exported: set[str]) -> set[str]:
    """Metric names the expressions use that the server does not export."""
    used = set().union(*(metric_names(expr) for expr in expressions)) - PROMETHEUS_OWN
    return used - exported


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    """Run promtool (bounded in time), capturing its output."""
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# ---- PromQL name extraction, on known expressions (the live check depends on it) ----

def test_metric_names_skips_functions_labels_keywords_and_durations() -> None:
    expr = ('histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{job=~"x|y", le!="1"}[5m] offset 1h30m)))'
            ' / on (instance) group_left (tier) b_total > bool 1e3 and c unless d:recorded{x="rate(z)"}')
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "d:recorded"}


def test_metric_names_finds_a_bare_name_and_one_in_brackets() -> None:
    assert metric_names("up == 0") == {"up"}
    assert metric_names("max_over_time(preview_proxy_ready[10m])") == {"preview_proxy_ready"}


def test_exported_names_expand_declared_families() -> None:
    exposition = ("# TYPE h histogram\n# TYPE c_total counter\n# TYPE g gauge\ng{a=\"1\"} 1.0\n"
                  "h_bucket{le=\"+Inf\"} 0.0\n")
    assert exported_names(exposition) == {"h_bucket", "h_sum", "h_count", "c_total", "g"}


# ---- rules ----

@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts and fired == alerts and quiet == alerts, (alerts, fired, quiet)


def test_every_alert_says_what_and_how_bad() -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert "for" in rule, f"{rule['alert']} would page on a single evaluation"


# ---- dashboard ----

def test_dashboard_panels_have_a_data_source_and_queries() -> None:
    board = dashboard()
    panels = list(data_panels(board))
    assert len(panels) >= 10
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"]), "panel ids repeat"
    for panel in panels:
        assert panel.get("datasource", {}).get("type") == "prometheus", panel["title"]
        assert panel.get("targets"), f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip() and target.get("refId"), panel["title"]


def test_dashboard_covers_what_an_operator_asks() -> None:
    """Each question the dashboard must answer has a panel whose queries use the metric that answers it."""
    used = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
    wanted = {
        "requests and latency by route": {"preview_proxy_requests_total",
                                          "preview_proxy_request_duration_seconds_bucket"},
        "hit ratio per tier": {"preview_proxy_cache_requests_total"},
        "bytes and evictions": {"preview_proxy_upstream_bytes_total", "preview_proxy_cache_evictions_total"},
        "cache size against capacity": {"preview_proxy_cache_size_bytes", "preview_proxy_cache_capacity_bytes"},
        "provider latency": {"preview_proxy_upstream_duration_seconds_bucket"},
        "errors and circuit state": {"preview_proxy_cache_errors_total", "preview_proxy_upstream_circuit_state"},
        "render queue": {"preview_proxy_render_queue_depth"},
        "process memory": {"preview_proxy_process_resident_memory_bytes"},
        "each process's CPU and descriptors": {"preview_proxy_process_cpu_seconds_total",
                                                "preview_proxy_process_open_fds"},
        "bytes served by tier and result": {"preview_proxy_served_bytes_total"},
        "links file taken": {"preview_proxy_links_reload_success"},
        "what each node runs": {"preview_proxy_build_info"},
    }
    absent = {question: names - used for question, names in wanted.items() if names - used}
    assert not absent, absent


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, as the expression of a recording rule (it has no plain PromQL check)."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(dashboard_expressions())]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# ---- against a live server ----

def test_rules_and_dashboard_name_only_exported_metrics(
        start_server: StartServer, moto: MotoS3, bucket: str, photos: list[Path]) -> None:
    moto.put(bucket, "photo.jpg", photos[0].read_bytes(), "image/jpeg")
    server = start_server(**s3_env(moto.endpoint))
    # Serve each kind of answer once, so that every series created on first use exists.
    for path in (f"/{bucket}/photo.jpg", f"/previews/q/rs:fill:64:64:0/plain/{bucket}/photo.jpg",
                 f"/image-converter/convert/{bucket}/photo.jpg"):
        status, _, _ = fetch(server, path)
        assert status == 200, path
    assert fetch(server, f"/{bucket}/absent-{uuid.uuid4().hex}.jpg")[0] == 404
    status, _, body = fetch(server, "/metrics")
    assert status == 200
    exported = exported_names(body.decode())

    expressions = rule_expressions() + dashboard_expressions()
    used = set().union(*(metric_names(expr) for expr in expressions)) | template_metric_names()
    assert len(used) >= 15, used  # the extraction found the metrics, not nothing
    assert used - PROMETHEUS_OWN - exported == set()
    # The check can fail: a misspelt metric in one more query is caught.
    assert names_missing([*expressions, "rate(preview_proxy_request_total[5m])"], exported) == {
        "preview_proxy_request_total"}
