"""The Kubernetes manifests (deploy/k8s) as rendered by `kubectl kustomize`: policies every
overlay must keep, checked against the services' own code (scripts, ports, settings), so a
manifest that drifts from either fails here. deploy/k8s/validate checks the schemas."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from terrascale.common.events import EventSettings
from terrascale.graph.config import GraphSettings
from terrascale.launcher.cli import DURABLE_VALKEY
from terrascale.launcher.services import SERVICES
from terrascale.notifications.config import NotificationSettings
from terrascale.posts.config import PostSettings
from terrascale.timelines.config import TimelineSettings
from terrascale.users.config import UserSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
UID = 10001
PRESTOP_SECONDS = 5
# Engines per process: the Timeline Service has a second, read-only pool (README, budget).
ENGINES = {"timeline-service": 2}
# Who calls whom over HTTP, from the services' config.py (USER_SERVICE_URL, POST_SERVICE_URL).
CALLS = {
    ("graph-service", "user-service"),
    ("timeline-service", "user-service"),
    ("timeline-service", "post-service"),
}
SETTINGS = (
    UserSettings,
    GraphSettings,
    PostSettings,
    TimelineSettings,
    NotificationSettings,
    EventSettings,
)

Doc = dict[str, Any]

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not on PATH: it renders the overlays (kubectl kustomize)",
)


@cache
def render(overlay: str) -> tuple[Doc, ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> tuple[Doc, ...]:
    return render(request.param)


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    matches = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def workloads(docs: tuple[Doc, ...]) -> Iterator[Doc]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc


def pod_spec(workload: Doc) -> Doc:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Doc) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def component(doc: Doc) -> str | None:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def is_terrascale(workload: Doc) -> bool:
    """Runs one of our images (the datastores of the dev overlay do not)."""
    return any("terrascale/" in c["image"] for c in pod_spec(workload)["containers"])


def app_container(workload: Doc) -> Doc:
    (container,) = pod_spec(workload)["containers"]
    return container


def matches(selector: Doc, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a set of labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def settings(docs: tuple[Doc, ...]) -> dict[str, str]:
    (config,) = [
        doc
        for doc in of_kind(docs, "ConfigMap")
        if doc["metadata"]["name"].startswith("terrascale-config-")
    ]
    return config["data"]


def env_value(container: Doc, name: str) -> str | None:
    for variable in container.get("env", []):
        if variable["name"] == name:
            return variable.get("value")
    return None


def deployment_with_hpa(docs: tuple[Doc, ...]) -> Iterator[tuple[Doc, Doc]]:
    hpas = {
        doc["spec"]["scaleTargetRef"]["name"]: doc
        for doc in of_kind(docs, "HorizontalPodAutoscaler")
    }
    for deployment in of_kind(docs, "Deployment"):
        if component(deployment) in ("api", "worker"):
            yield deployment, hpas[deployment["metadata"]["name"]]


# --- every container ----------------------------------------------------------------------


def test_every_container_has_cpu_and_memory_requests_and_limits(docs: tuple[Doc, ...]) -> None:
    for workload in workloads(docs):
        spec = pod_spec(workload)
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert set(resources.get(kind, {})) >= {"cpu", "memory"}, f"{where}: {kind}"


def test_every_container_is_locked_down(docs: tuple[Doc, ...]) -> None:
    for workload in workloads(docs):
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec.get("automountServiceAccountToken") is False, name
        pod = spec.get("securityContext", {})
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert pod.get("runAsNonRoot") is True, name
        for container in spec["containers"]:
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, name
            assert context.get("readOnlyRootFilesystem") is True, name
            assert context.get("capabilities", {}).get("drop") == ["ALL"], name
            assert "add" not in context.get("capabilities", {}), name
            if is_terrascale(workload):
                # The images' user; repeated on the container for scanners that look only there.
                assert pod.get("runAsUser") == context.get("runAsUser") == UID, name
                assert context.get("runAsNonRoot") is True, name
                assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", name


def test_terrascale_pods_have_a_memory_backed_tmp(docs: tuple[Doc, ...]) -> None:
    """PROMETHEUS_MULTIPROC_DIR is under /tmp, and the root filesystem is read-only."""
    for workload in filter(is_terrascale, workloads(docs)):
        volumes = {volume["name"]: volume for volume in pod_spec(workload)["volumes"]}
        mounts = app_container(workload)["volumeMounts"]
        (mount,) = [m for m in mounts if m["mountPath"] == "/tmp"]  # noqa: S108 - a tmpfs
        empty_dir = volumes[mount["name"]].get("emptyDir")
        assert empty_dir is not None, workload["metadata"]["name"]
        assert empty_dir.get("medium") == "Memory"
        assert empty_dir.get("sizeLimit"), "a memory-backed volume without a limit can eat the node"


def test_long_running_containers_have_probes(docs: tuple[Doc, ...]) -> None:
    for workload in workloads(docs):
        if workload["kind"] == "Job":
            continue
        for container in pod_spec(workload)["containers"]:
            name = f"{workload['metadata']['name']}/{container['name']}"
            assert "livenessProbe" in container, name
            assert "readinessProbe" in container, name
            if is_terrascale(workload):
                ports = {port["name"] for port in container["ports"]}
                for probe, path in (
                    ("startupProbe", "/health"),
                    ("livenessProbe", "/health"),  # never restarted for a database outage
                    ("readinessProbe", "/ready"),
                ):
                    assert container[probe]["httpGet"]["path"] == path, f"{name} {probe}"
                    assert container[probe]["httpGet"]["port"] in ports, f"{name} {probe}"


def test_grace_period_outlasts_the_graceful_drain(docs: tuple[Doc, ...]) -> None:
    graceful = int(settings(docs)["GRACEFUL_TIMEOUT_SECONDS"])
    for deployment in filter(is_terrascale, of_kind(docs, "Deployment")):
        grace = pod_spec(deployment).get("terminationGracePeriodSeconds", 30)
        assert grace > graceful + PRESTOP_SECONDS, deployment["metadata"]["name"]


# --- the services' own code ---------------------------------------------------------------


def scripts(service: str) -> set[str]:
    project = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())
    return set(project["project"]["scripts"])


def test_each_service_matches_the_launcher(docs: tuple[Doc, ...]) -> None:
    """Ports, databases, workers and the signing key as tools/launcher (and compose) have them;
    the API runs `serve`, the worker `worker`, the Job `migrate`, with the service's own script."""
    for spec in SERVICES:
        (script,) = scripts(spec.name)
        api = named(docs, "Deployment", spec.name)
        container = app_container(api)
        assert container["command"] == [script, "serve"]
        assert [p["containerPort"] for p in container["ports"]] == [spec.port]
        assert env_value(container, "PORT") == str(spec.port)
        assert env_value(container, "POSTGRES_DB") == spec.database
        service = named(docs, "Service", spec.name)
        assert [p["port"] for p in service["spec"]["ports"]] == [spec.port]

        job = named(docs, "Job", f"{spec.name}-migrate")
        assert app_container(job)["command"] == [script, "migrate"]
        assert env_value(app_container(job), "POSTGRES_DB") == spec.database
        assert container["image"] == app_container(job)["image"]

        workers = [
            doc
            for doc in of_kind(docs, "Deployment")
            if component(doc) == "worker" and pod_labels(doc)["app.kubernetes.io/name"] == spec.name
        ]
        assert len(workers) == int(spec.has_worker), spec.name
        for worker in workers:
            assert app_container(worker)["command"] == [script, "worker"]
            assert app_container(worker)["image"] == container["image"]
            assert env_value(app_container(worker), "POSTGRES_DB") == spec.database

        for workload in [api, job, *workers]:
            secrets = {
                volume["secret"]["secretName"]
                for volume in pod_spec(workload)["volumes"]
                if "secret" in volume
            }
            signs = workload is api and spec.signs_tokens
            assert ("terrascale-jwt-private-key" in secrets) == signs, workload["metadata"]["name"]
            assert "terrascale-jwt-public-key" in secrets


def test_every_setting_given_is_one_a_service_reads(docs: tuple[Doc, ...]) -> None:
    """A misspelt variable would be ignored silently (extra="ignore")."""
    known = {name.upper() for model in SETTINGS for name in model.model_fields}
    for name in settings(docs):
        assert name in known, name
    for workload in filter(is_terrascale, workloads(docs)):
        for variable in app_container(workload).get("env", []):
            assert variable["name"] in known, variable["name"]


def test_key_files_are_where_the_settings_point(docs: tuple[Doc, ...]) -> None:
    public = Path(settings(docs)["JWT_PUBLIC_KEY_FILE"])
    for workload in filter(is_terrascale, workloads(docs)):
        container = app_container(workload)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        files = {public: "terrascale-jwt-public-key"}
        if private := env_value(container, "JWT_PRIVATE_KEY_FILE"):
            files[Path(private)] = "terrascale-jwt-private-key"
        for path, secret in files.items():
            volume = volumes[mounts[str(path.parent)]]
            assert volume["secret"]["secretName"] == secret
            assert path.name in secret.replace("terrascale-", "").replace("-", "_")


# --- Deployments, their budgets, autoscalers and Services --------------------------------------


def test_every_deployment_and_statefulset_has_a_disruption_budget(docs: tuple[Doc, ...]) -> None:
    budgets = of_kind(docs, "PodDisruptionBudget")
    for workload in workloads(docs):
        if workload["kind"] == "Job":
            continue
        covering = [b for b in budgets if matches(b["spec"]["selector"], pod_labels(workload))]
        assert len(covering) == 1, workload["metadata"]["name"]
        # An absolute 1 never blocks a node drain, whatever the replica count.
        assert covering[0]["spec"].get("maxUnavailable") == 1


def test_every_api_and_worker_has_a_cpu_autoscaler(docs: tuple[Doc, ...]) -> None:
    partitions = int(settings(docs)["EVENT_PARTITIONS"])
    for deployment, hpa in deployment_with_hpa(docs):
        name = deployment["metadata"]["name"]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # The autoscaler owns the count: a fixed one would be reset by every apply.
        assert "replicas" not in deployment["spec"], name
        if component(deployment) == "worker":
            assert hpa["spec"]["maxReplicas"] <= partitions, f"{name}: idle consumers"
    assert len(list(deployment_with_hpa(docs))) == 9  # five APIs, four workers


def test_every_service_selects_pods_with_its_target_port(docs: tuple[Doc, ...]) -> None:
    pods = [w for w in workloads(docs) if w["kind"] != "Job"]
    for service in of_kind(docs, "Service"):
        selected = [
            w for w in pods if matches({"matchLabels": service["spec"]["selector"]}, pod_labels(w))
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in pod_spec(selected[0])["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, service["metadata"]["name"]


def test_api_and_worker_pods_are_labelled_and_scrapable(docs: tuple[Doc, ...]) -> None:
    for deployment, _ in deployment_with_hpa(docs):
        labels = pod_labels(deployment)
        assert labels["app.kubernetes.io/part-of"] == "terrascale"
        assert labels["app.kubernetes.io/component"] in ("api", "worker")
        assert labels["app.kubernetes.io/name"] in {spec.name for spec in SERVICES}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        (port,) = app_container(deployment)["ports"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port["containerPort"])
        assert annotations["prometheus.io/path"] == "/metrics"


# --- NetworkPolicies ----------------------------------------------------------------------


def policies_for(docs: tuple[Doc, ...], labels: dict[str, str], direction: str) -> list[Doc]:
    policy_type = direction.capitalize()
    return [
        policy
        for policy in of_kind(docs, "NetworkPolicy")
        if policy_type in policy["spec"]["policyTypes"]
        and matches(policy["spec"]["podSelector"], labels)
    ]


def api_labels(docs: tuple[Doc, ...], service: str) -> dict[str, str]:
    return pod_labels(named(docs, "Deployment", service))


def pod_peers(docs: tuple[Doc, ...], labels: dict[str, str], direction: str) -> set[str]:
    """Our API and worker Deployments a pod admits (ingress) or reaches (egress) by pod label."""
    key = "from" if direction == "ingress" else "to"
    peers: set[str] = set()
    for policy in policies_for(docs, labels, direction):
        for rule in policy["spec"].get(direction, []):
            for peer in rule.get(key, []):
                if "podSelector" not in peer or "namespaceSelector" in peer:
                    continue
                for deployment, _ in deployment_with_hpa(docs):
                    if matches(peer["podSelector"], pod_labels(deployment)):
                        peers.add(deployment["metadata"]["name"])
    return peers


def test_everything_is_denied_by_default(docs: tuple[Doc, ...]) -> None:
    deny = named(docs, "NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {}
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]


def test_only_the_designed_service_to_service_calls_are_allowed(docs: tuple[Doc, ...]) -> None:
    apis = [spec.name for spec in SERVICES]
    for callee in apis:
        callers = {caller for caller, called in CALLS if called == callee}
        assert pod_peers(docs, api_labels(docs, callee), "ingress") == callers, callee
    for caller in apis:
        callees = {called for calling, called in CALLS if calling == caller}
        assert pod_peers(docs, api_labels(docs, caller), "egress") == callees, caller
    for worker in (d for d in of_kind(docs, "Deployment") if component(d) == "worker"):
        # Workers make no HTTP calls and take none but Prometheus's.
        assert pod_peers(docs, pod_labels(worker), "egress") == set()
        assert pod_peers(docs, pod_labels(worker), "ingress") == set()


def test_the_services_urls_match_the_allowed_ports(docs: tuple[Doc, ...]) -> None:
    config = settings(docs)
    for variable, service in (
        ("USER_SERVICE_URL", "user-service"),
        ("POST_SERVICE_URL", "post-service"),
    ):
        port = app_container(named(docs, "Deployment", service))["ports"][0]["containerPort"]
        assert config[variable] == f"http://{service}:{port}"


def test_every_pod_reaches_dns_and_the_datastores(docs: tuple[Doc, ...]) -> None:
    config = settings(docs)
    datastore_ports = {int(config["POSTGRES_PORT"]), int(config["REDIS_PORT"])}
    for workload in filter(is_terrascale, workloads(docs)):
        egress_ports: set[int] = set()
        for policy in policies_for(docs, pod_labels(workload), "egress"):
            for rule in policy["spec"].get("egress", []):
                egress_ports |= {p["port"] for p in rule.get("ports", [])}
        assert 53 in egress_ports, workload["metadata"]["name"]
        assert datastore_ports <= egress_ports, workload["metadata"]["name"]


def test_apis_admit_the_ingress_controller_and_everything_admits_prometheus(
    docs: tuple[Doc, ...],
) -> None:
    for deployment, _ in deployment_with_hpa(docs):
        namespaces = set()
        for policy in policies_for(docs, pod_labels(deployment), "ingress"):
            for rule in policy["spec"].get("ingress", []):
                for peer in rule.get("from", []):
                    selector = peer.get("namespaceSelector", {}).get("matchLabels", {})
                    namespaces.add(selector.get("kubernetes.io/metadata.name"))
        assert "monitoring" in namespaces
        assert ("ingress-nginx" in namespaces) == (component(deployment) == "api")


# --- Secrets ------------------------------------------------------------------------------


def secret_template() -> dict[str, Doc]:
    docs = yaml.safe_load_all((K8S / "base" / "secrets.example.yaml").read_text())
    return {doc["metadata"]["name"]: doc for doc in docs if doc}


def test_no_overlay_renders_a_secret(docs: tuple[Doc, ...]) -> None:
    """Secrets are created out of band, so an apply can never overwrite them with placeholders."""
    assert of_kind(docs, "Secret") == []


def test_the_secret_template_holds_only_placeholders() -> None:
    for secret in secret_template().values():
        assert "data" not in secret, "base64 data cannot be checked for placeholders"
        for key, value in secret["stringData"].items():
            assert value.startswith("REPLACE_ME"), key
            assert not re.search(r"BEGIN [A-Z ]*KEY", value), key


def test_every_secret_reference_is_in_the_template(docs: tuple[Doc, ...]) -> None:
    template = secret_template()
    for workload in workloads(docs):
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in template
        for container in pod_spec(workload)["containers"]:
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in template[ref["name"]]["stringData"], variable["name"]


# --- dev against prod ---------------------------------------------------------------------


def test_prod_runs_more_replicas_than_dev() -> None:
    dev = {
        d["metadata"]["name"]: d["spec"] for d in of_kind(render("dev"), "HorizontalPodAutoscaler")
    }
    prod = {
        d["metadata"]["name"]: d["spec"] for d in of_kind(render("prod"), "HorizontalPodAutoscaler")
    }
    assert set(dev) == set(prod)
    for name, spec in prod.items():
        assert spec["minReplicas"] > dev[name]["minReplicas"], name
        assert spec["maxReplicas"] > dev[name]["maxReplicas"], name
        if name.endswith("-service"):
            assert spec["minReplicas"] >= 3, f"{name}: one per zone"


def images(docs: tuple[Doc, ...]) -> set[str]:
    return {c["image"] for w in workloads(docs) for c in pod_spec(w)["containers"]}


def test_prod_images_are_pinned() -> None:
    for image in images(render("prod")):
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        assert name, f"{image}: no tag"
        assert "/" not in tag, f"{image}: no tag"
        assert tag not in ("latest", "local"), image


def test_dev_runs_the_locally_built_images() -> None:
    ours = {image for image in images(render("dev")) if "terrascale/" in image}
    assert ours == {f"terrascale/{spec.name}:local" for spec in SERVICES}


def test_prod_spreads_replicas_over_zones_and_nodes() -> None:
    for deployment, _ in deployment_with_hpa(render("prod")):
        keys = {c["topologyKey"] for c in pod_spec(deployment)["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


# --- datastores ---------------------------------------------------------------------------


def connections_at_maximum(docs: tuple[Doc, ...]) -> int:
    """What every API and worker pod may open at its HPA maximum: per process, each engine's
    DB_POOL_SIZE + DB_MAX_OVERFLOW; an API pod has WEB_CONCURRENCY processes, a worker one."""
    config = settings(docs)
    per_engine = int(config["DB_POOL_SIZE"]) + int(config["DB_MAX_OVERFLOW"])
    total = 0
    for deployment, hpa in deployment_with_hpa(docs):
        processes = int(config["WEB_CONCURRENCY"]) if component(deployment) == "api" else 1
        engines = ENGINES.get(pod_labels(deployment)["app.kubernetes.io/name"], 1)
        total += hpa["spec"]["maxReplicas"] * processes * engines * per_engine
    return total


def test_dev_postgres_takes_every_connection_at_the_autoscaling_maximum() -> None:
    docs = render("dev")
    (container,) = pod_spec(named(docs, "StatefulSet", "postgres"))["containers"]
    (limit,) = [int(a.split("=")[1]) for a in container["args"] if a.startswith("max_connections=")]
    migrations = len(of_kind(docs, "Job"))
    assert connections_at_maximum(docs) + migrations <= limit


def test_prod_connection_budget_fits_the_documented_parameters() -> None:
    docs = render("prod")
    parameters = named(docs, "ConfigMap", "terrascale-datastore-parameters")["data"]
    clients = connections_at_maximum(docs)
    assert clients <= int(parameters["pgbouncer.max_client_conn"])
    # Session pooling holds a server connection per client; migrations connect directly.
    assert parameters["pgbouncer.pool_mode"] == "session"
    assert clients + len(of_kind(docs, "Job")) <= int(parameters["postgresql.max_connections"])


def test_timeline_redis_keeps_whole_timelines_in_listpacks() -> None:
    limit = TimelineSettings.model_fields["timeline_max_posts"].default
    (redis,) = pod_spec(named(render("dev"), "Deployment", "redis"))["containers"]
    flag = redis["args"].index("--zset-max-listpack-entries")
    assert int(redis["args"][flag + 1]) >= limit
    parameters = named(render("prod"), "ConfigMap", "terrascale-datastore-parameters")["data"]
    assert int(parameters["redis.zset-max-listpack-entries"]) >= limit


def test_the_event_bus_redis_fsyncs_every_write_everywhere() -> None:
    """The outbox trusts Redis with published events: compose, dev and prod keep them on disk
    before Redis answers, as the launcher's embedded Valkey does (docs/reliability.md)."""
    (redis,) = pod_spec(named(render("dev"), "Deployment", "redis"))["containers"]
    args = redis["args"]
    assert args[args.index("--appendonly") + 1] == DURABLE_VALKEY["appendonly"]
    assert args[args.index("--appendfsync") + 1] == DURABLE_VALKEY["appendfsync"]
    assert "/data" in {mount["mountPath"] for mount in redis["volumeMounts"]}
    parameters = named(render("prod"), "ConfigMap", "terrascale-datastore-parameters")["data"]
    assert parameters["redis.appendonly"] == DURABLE_VALKEY["appendonly"]
    assert parameters["redis.appendfsync"] == DURABLE_VALKEY["appendfsync"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]
    command = compose["command"]
    assert command[command.index("--appendonly") + 1] == DURABLE_VALKEY["appendonly"]
    assert command[command.index("--appendfsync") + 1] == DURABLE_VALKEY["appendfsync"]
    assert any(volume.endswith(":/data") for volume in compose["volumes"])


def test_dev_creates_the_same_databases_as_compose() -> None:
    dev = (K8S / "overlays" / "dev" / "create-databases.sql").read_text()
    assert dev == (ROOT / "deploy" / "postgres" / "create-databases.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+);", dev))
    postgres = app_container_env(named(render("dev"), "StatefulSet", "postgres"), "POSTGRES_DB")
    assert created | {postgres} == {spec.database for spec in SERVICES}


def app_container_env(workload: Doc, name: str) -> str | None:
    (container,) = pod_spec(workload)["containers"]
    return env_value(container, name)
