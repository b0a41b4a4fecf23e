"""The observability profile agrees with the code and with the compose file: every metric the
dashboard and the alerts query is one the processes export (with labels they carry), every
process of the default stack is scraped with its `service` and `component` labels, the collector
sends traces to the trace backend, and each alert has a runbook entry and a unit test.
(`deploy/observability/validate` runs Prometheus's own checks of the same files.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from terrascale.common import metrics

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS = OBSERVABILITY / "prometheus"
GRAFANA = OBSERVABILITY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "terrascale.json"
PROFILE = "observability"

# Series Prometheus makes itself for every target.
BUILTIN_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Labels the scrape configuration adds to every TerraScale series.
TARGET_LABELS = {"job", "instance", "service", "component"}
NOT_METRICS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip
STRING = re.compile(r'"(?:\\.|[^"\\])*"')
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.$])[A-Za-z_:][A-Za-z0-9_:]*")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def exported_series() -> dict[str, set[str]]:
    """Every series name the TerraScale processes expose, with the labels it carries."""
    series: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, kind, labels = value._name, value._type, set(value._labelnames)
        if kind == "counter":
            names = {f"{name}_total", f"{name}_created"}
        elif kind == "histogram":
            names = {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
            series[f"{name}_bucket"] = labels | {"le"}
            names.discard(f"{name}_bucket")
        else:
            names = {name}
        for each in names:
            series[each] = labels
    return series


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (function and keyword names left out)."""
    text = STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    found: set[str] = set()
    for match in IDENTIFIER.finditer(text):
        name = match.group()
        if name in NOT_METRICS or text[match.end() :].lstrip().startswith("("):
            continue
        found.add(name)
    return found


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    return [
        (name, set(MATCHER_LABEL.findall(STRING.sub('""', body))))
        for name, body in SELECTOR.findall(expr)
    ]


def grouping_labels(expr: str) -> set[str]:
    return {
        label.strip()
        for labels in GROUPING.findall(expr)
        for label in labels.split(",")
        if label.strip()
    }


def check_expression(expr: str, where: str) -> None:
    known = exported_series()
    names = metric_names(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    unknown = names - known.keys() - BUILTIN_SERIES
    assert not unknown, f"{where}: {sorted(unknown)} not exported (terrascale.common.metrics)"
    for name, labels in selector_labels(expr):
        allowed = known.get(name, set()) | TARGET_LABELS
        assert labels <= allowed, f"{where}: {name} has no label {sorted(labels - allowed)}"
    every_label = set().union(*known.values()) | TARGET_LABELS | {"le"}
    assert grouping_labels(expr) <= every_label, f"{where}: unknown grouping label in {expr!r}"


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return found


def prometheus_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in panels()
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == "prometheus"
    ]


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]
    ]


def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


def default_services() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in compose()["services"].items() if not spec.get("profiles")}


def scrape_targets() -> dict[str, dict[str, str]]:
    """host:port -> labels, for the TerraScale jobs."""
    targets: dict[str, dict[str, str]] = {}
    for job in load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]:
        if not job["job_name"].startswith("terrascale-"):
            continue
        for group in job["static_configs"]:
            for target in group["targets"]:
                targets[target] = group["labels"]
    return targets


def datasource_uids() -> dict[str, dict[str, Any]]:
    config = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yaml")
    return {source["uid"]: source for source in config["datasources"]}


def test_the_expression_parser_finds_names_and_skips_the_rest() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (service, le) (rate(a_bucket{route!~"/x|y"}[5m])))'
        " / on (service) group_left b_total offset 10m and up == 1"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "up"}
    assert selector_labels(expr) == [("a_bucket", {"route"})]
    assert grouping_labels(expr) == {"service", "le"}


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    sources = datasource_uids()
    graphs = [panel for panel in panels() if panel["type"] != "row"]
    assert graphs
    for panel in graphs:
        assert panel["title"], panel["id"]
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
        assert panel["datasource"]["uid"] in sources, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] in sources, panel["title"]
            assert sources[target["datasource"]["uid"]]["type"] == target["datasource"]["type"]


def test_the_dashboard_filters_by_service() -> None:
    variables = {variable["name"] for variable in dashboard()["templating"]["list"]}
    assert "service" in variables
    assert any("$service" in expr for _, expr in prometheus_queries())


@pytest.mark.parametrize(("title", "expr"), prometheus_queries())
def test_dashboard_queries_use_exported_metrics(title: str, expr: str) -> None:
    check_expression(expr, f"panel {title!r}")


def test_the_dashboard_shows_every_exported_metric() -> None:
    used = set().union(*(metric_names(expr) for _, expr in prometheus_queries()))
    families = {name.removesuffix("_bucket").removesuffix("_total") for name in used}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            assert value._name in families, f"{value._name} is on no panel"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alerts_use_exported_metrics(rule: dict[str, Any]) -> None:
    check_expression(rule["expr"], f"alert {rule['alert']}")


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alerts_have_a_duration_a_severity_and_a_runbook(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert annotations["description"]
    path, _, anchor = annotations["runbook"].partition("#")
    assert path == "deploy/observability/README.md"
    headings = re.findall(r"^#+\s+(.+?)\s*$", (ROOT / path).read_text(), flags=re.MULTILINE)
    anchors = {
        re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-") for heading in headings
    }
    assert anchor in anchors, f"{rule['alert']}: no heading #{anchor} in {path}"


def test_every_alert_has_a_unit_test() -> None:
    tests = load_yaml(PROMETHEUS / "alerts_test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= tested
    assert names <= fired, "each alert must be shown to fire, not only to stay silent"


def test_every_process_of_the_default_stack_is_scraped_with_its_labels() -> None:
    targets = scrape_targets()
    expected: dict[str, dict[str, str]] = {}
    for name, spec in default_services().items():
        environment = spec.get("environment") or {}
        if "PORT" not in environment:
            continue  # PostgreSQL, Redis, the key generator and nginx export no metrics
        worker = "worker" in (spec.get("command") or [])
        expected[f"{name}:{environment['PORT']}"] = {
            "service": environment["OTEL_SERVICE_NAME"],
            "component": "worker" if worker else "api",
        }
    assert len(expected) == 9  # five services, four workers
    assert targets == expected


def test_processes_have_healthchecks_and_export_no_traces_by_default() -> None:
    for name, spec in default_services().items():
        environment = spec.get("environment") or {}
        if "PORT" in environment:
            assert "healthcheck" in spec, name
        # Passed through from the host only when set there: the default stack exports nothing.
        assert environment.get("OTLP_ENDPOINT") is None, name


def test_the_profile_holds_the_observability_stack_with_pinned_images() -> None:
    services = compose()["services"]
    profiled = {name for name, spec in services.items() if spec.get("profiles")}
    assert profiled == {"otel-collector", "jaeger", "prometheus", "loki", "alloy", "grafana"}
    for name in profiled:
        assert services[name]["profiles"] == [PROFILE], name
    for name, spec in services.items():
        image = spec["image"]
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        assert tag, f"{name}: {image} is not pinned"
        assert tag != "latest", f"{name}: {image} is not pinned"
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} is missing"


def test_the_collector_sends_otlp_traces_to_the_trace_backend() -> None:
    config = load_yaml(OBSERVABILITY / "otel-collector.yaml")
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    pipeline = config["service"]["pipelines"]["traces"]
    assert "otlp" in pipeline["receivers"]
    assert set(pipeline["processors"]) <= config["processors"].keys()
    assert pipeline["exporters"]
    backends = {
        config["exporters"][exporter]["endpoint"].rpartition(":")[0]
        for exporter in pipeline["exporters"]
    }
    assert "jaeger" in backends
    assert compose()["services"]["jaeger"]["profiles"] == [PROFILE]


def test_grafana_datasources_point_at_the_profile_and_link_traces_and_logs() -> None:
    sources = datasource_uids()
    assert {source["type"] for source in sources.values()} == {"prometheus", "jaeger", "loki"}
    services = compose()["services"]
    for source in sources.values():
        assert urlsplit(source["url"]).hostname in services, source["name"]
    jaeger = next(source for source in sources.values() if source["type"] == "jaeger")
    assert sources[jaeger["jsonData"]["tracesToLogsV2"]["datasourceUid"]]["type"] == "loki"
    loki = next(source for source in sources.values() if source["type"] == "loki")
    links = loki["jsonData"]["derivedFields"]
    assert any(sources[link["datasourceUid"]]["type"] == "jaeger" for link in links)
    line = '{"event": "request", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "level": "info"}'
    regex = next(link["matcherRegex"] for link in links)
    match = re.search(regex, line)
    assert match is not None
    assert match.group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
