"""deploy/kubernetes: schema-valid manifests that agree with the image and the gateway.

Core kinds are validated against the Kubernetes 1.30 OpenAPI schemas that the
kubernetes-validate package ships (strict: unknown fields fail), offline. The Prometheus
Operator's custom resources have no schema there; they are checked field by field here.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewayConfig, parse_config
from tests.deploy.metric_names import REPO
from tests.deploy.test_dockerfile import parse_dockerfile

K8S_VERSION = "1.30"
KUBE = REPO / "deploy" / "kubernetes"
IMAGE = "bedrock-gateway"  # the image name the manifests use and kustomize rewrites
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
WRITABLE_VOLUME_TYPES = {"emptyDir", "persistentVolumeClaim", "ephemeral"}


def _image_setting(keyword: str) -> str:
    """The last `keyword` instruction of the Dockerfile's runtime stage."""
    instructions = parse_dockerfile((REPO / "Dockerfile").read_text(encoding="utf-8"))
    final = max(i.stage for i in instructions)
    found = [i.args for i in instructions if i.stage == final and i.keyword == keyword]
    assert found, f"the Dockerfile's runtime stage has no {keyword}"
    return found[-1]


@dataclass
class Bundle:
    """One kustomization folder and the documents of the files it lists."""

    name: str
    directory: Path
    kustomization: dict[str, Any]
    documents: list[tuple[str, dict[str, Any]]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for _, doc in self.documents if doc["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        (doc,) = self.of_kind(kind)
        return doc


def _load_bundle(name: str, directory: Path) -> Bundle:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    documents = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_file():
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if doc:
                    documents.append((path.relative_to(REPO).as_posix(), doc))
    return Bundle(name, directory, kustomization, documents)


BUNDLES = [_load_bundle("central", KUBE), _load_bundle("sidecar", KUBE / "sidecar")]
ALL_DOCUMENTS = [(f, doc) for bundle in BUNDLES for f, doc in bundle.documents]
# The Prometheus Operator's CRDs have no schema in kubernetes-validate: see
# test_service_monitor_scrapes_the_service and test_prometheus_rule_shape.
CORE_DOCUMENTS = [
    item for item in ALL_DOCUMENTS if (item[1]["apiVersion"], item[1]["kind"]) not in CUSTOM_KINDS
]


def _doc_id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}:{item[1]['kind']}/{item[1]['metadata']['name']}"


bundles = pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])


# --- helpers over a pod template ---------------------------------------------------------


def _workload(bundle: Bundle) -> dict[str, Any]:
    (deployment,) = bundle.of_kind("Deployment")
    return deployment


def _pod(bundle: Bundle) -> Any:
    return _workload(bundle)["spec"]["template"]["spec"]


def _is_gateway(container: dict[str, Any]) -> bool:
    return bool(container["image"].split(":")[0].split("@")[0] == IMAGE)


def _gateway(bundle: Bundle) -> Any:
    pod = _pod(bundle)
    found = [c for c in (*pod.get("initContainers", []), *pod["containers"]) if _is_gateway(c)]
    assert len(found) == 1, "exactly one gateway container"
    return found[0]


def _is_native_sidecar(bundle: Bundle) -> bool:
    return any(_is_gateway(c) for c in _pod(bundle).get("initContainers", []))


def _config_path(container: dict[str, Any]) -> str:
    args = container.get("args", [])
    assert "--config" in args, "the gateway is started with an explicit --config"
    return str(args[args.index("--config") + 1])


def _config_map_text(bundle: Bundle) -> tuple[str, str]:
    """(source, config.yaml text) of the ConfigMap mounted where --config points."""
    gateway = _gateway(bundle)
    path = _config_path(gateway)
    volumes = {v["name"]: v for v in _pod(bundle).get("volumes", [])}
    for mount in gateway.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" not in volume:
            continue
        if mount.get("subPath"):
            mounted = {mount["mountPath"]: mount["subPath"]}
        else:
            items = volume["configMap"].get("items")
            keys = {i["path"]: i["key"] for i in items} if items else None
            base = posixpath.basename(path)
            key = keys.get(base) if keys is not None else base
            mounted = {posixpath.join(mount["mountPath"], base): key} if key else {}
        if path in mounted:
            name = volume["configMap"]["name"]
            (config_map,) = [
                c for c in bundle.of_kind("ConfigMap") if c["metadata"]["name"] == name
            ]
            return f"{bundle.name} ConfigMap {name}", config_map["data"][mounted[path]]
    raise AssertionError(f"no ConfigMap volume is mounted at {path}")


def _fake_secret(name: str) -> str:
    if name.endswith("_DSN"):
        return "postgresql://gateway:secret@postgres.example:5432/gateway"
    # Long enough for an API key (the gateway refuses keys under 32 characters).
    return f"fake-secret-value-of-{name.lower()}-" + hashlib.sha256(name.encode()).hexdigest()


def _environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the gateway would see it (Secrets faked).

    An optional Secret key is left unset, so the config must cope without it (`${VAR:-x}`).
    """
    assert "envFrom" not in container, "list variables one by one so they can be checked"
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        source = item["valueFrom"]
        ref = source.get("secretKeyRef") or source.get("configMapKeyRef")
        if ref is not None and ref.get("optional"):
            continue
        env[item["name"]] = _fake_secret(item["name"])
    return env


def _config(bundle: Bundle) -> GatewayConfig:
    source, text = _config_map_text(bundle)
    return parse_config(text, _environment(_gateway(bundle)), source=source)


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert port in named, f"no container port named {port!r}"
    return int(named[port])


def _prestop_seconds(container: dict[str, Any]) -> float:
    hook = container.get("lifecycle", {}).get("preStop")
    if hook is None:
        return 0
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = hook["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, f"preStop should only sleep: {command}"
    return float(command[1])


# --- files and schemas ---------------------------------------------------------------------


@bundles
def test_kustomization_lists_every_file(bundle: Bundle) -> None:
    listed = set(bundle.kustomization.get("resources", []))
    on_disk = {
        p.name
        for p in bundle.directory.iterdir()
        if p.is_file() and p.suffix in {".yaml", ".yml"} and p.name != "kustomization.yaml"
    }
    listed_files = {r for r in listed if (bundle.directory / r).is_file()}
    assert listed_files == on_disk
    for resource in listed - listed_files:
        assert (bundle.directory / resource / "kustomization.yaml").is_file(), resource


@bundles
def test_kustomization_sets_no_namespace(bundle: Bundle) -> None:
    assert "namespace" not in bundle.kustomization
    for _, doc in bundle.documents:
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]


@pytest.mark.parametrize("item", CORE_DOCUMENTS, ids=[_doc_id(d) for d in CORE_DOCUMENTS])
def test_manifest_matches_kubernetes_schema(item: tuple[str, dict[str, Any]]) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (part of the test extra)"
    )
    _, doc = item
    assert K8S_VERSION in {
        ".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()
    }, f"this kubernetes-validate ships no {K8S_VERSION} schemas"
    try:
        validated = kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{where}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(exc.message)
    assert validated == K8S_VERSION


def test_only_known_custom_resources() -> None:
    """Anything outside the core API groups must be one of the kinds checked by hand below."""
    custom = set()
    for _, doc in ALL_DOCUMENTS:
        group = doc["apiVersion"].rpartition("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            custom.add((doc["apiVersion"], doc["kind"]))
    assert custom == CUSTOM_KINDS


@bundles
def test_kustomize_build(bundle: Bundle) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the schema tests above still cover every file")
    result = subprocess.run(
        [kubectl, "kustomize", str(bundle.directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for _, d in bundle.documents
    )
    for doc in rendered:
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            images = [c["image"] for c in (*pod.get("initContainers", []), *pod["containers"])]
            assert any(i.startswith(f"{IMAGE}:") for i in images), "kustomize pins the tag"


# --- the gateway container -----------------------------------------------------------------


@bundles
def test_config_map_is_a_valid_gateway_config(bundle: Bundle) -> None:
    # parse_config fails on an unknown key and on a ${VAR} the container does not set.
    config = _config(bundle)
    assert config.metrics.enabled and config.metrics.path == "/metrics"
    assert config.models, "the example config lists models"


@bundles
def test_fleet_usage_store_is_postgresql(bundle: Bundle) -> None:
    # Replicas (and every sidecar) must write to one store; SQLite would be one per pod.
    _, text = _config_map_text(bundle)
    assert "${USAGE_DSN}" in text
    assert _config(bundle).usage.store.startswith("postgresql://")


@bundles
def test_config_mount_matches_image_command(bundle: Bundle) -> None:
    gateway = _gateway(bundle)
    assert gateway["args"] == json.loads(_image_setting("CMD"))
    mount = next(
        m
        for m in gateway["volumeMounts"]
        if posixpath.dirname(_config_path(gateway)) == m["mountPath"]
    )
    assert mount.get("readOnly") is True
    # A whole-directory mount (no subPath) is what lets an edited ConfigMap reach the pod.
    assert "subPath" not in mount


@bundles
def test_ports_agree(bundle: Bundle) -> None:
    gateway = _gateway(bundle)
    config = _config(bundle)
    (port,) = gateway["ports"]
    assert port["containerPort"] == config.server.port == 8080
    for service in bundle.of_kind("Service"):
        (service_port,) = service["spec"]["ports"]
        assert service_port["name"] == "http"
        assert service_port["port"] == 80
        assert _port_number(gateway, service_port["targetPort"]) == config.server.port


@bundles
def test_probes(bundle: Bundle) -> None:
    gateway = _gateway(bundle)
    expected = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    for probe, path in expected.items():
        if probe == "startupProbe" and probe not in gateway:
            continue
        get = gateway[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _port_number(gateway, get["port"]) == _config(bundle).server.port, probe


@bundles
def test_termination_grace_covers_prestop_and_graceful_shutdown(bundle: Bundle) -> None:
    pod = _pod(bundle)
    gateway = _gateway(bundle)
    needed = _prestop_seconds(gateway) + _config(bundle).server.graceful_shutdown_s
    if _is_native_sidecar(bundle):
        # A native sidecar gets SIGTERM only after the app containers have exited.
        needed += max(_prestop_seconds(c) for c in pod["containers"])
    else:
        assert _prestop_seconds(gateway) > 0, "a preStop sleep lets endpoints drop the pod first"
    assert pod["terminationGracePeriodSeconds"] > needed


@bundles
def test_security_context(bundle: Bundle) -> None:
    pod = _pod(bundle)
    pod_context = pod.get("securityContext", {})
    context = _gateway(bundle)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert str(context["runAsUser"]) == _image_setting("USER").split(":")[0]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile")
    assert seccomp == {"type": "RuntimeDefault"}
    assert pod_context.get("runAsNonRoot") is True
    assert pod.get("automountServiceAccountToken") is False


@bundles
def test_writable_paths_are_volumes(bundle: Bundle) -> None:
    gateway = _gateway(bundle)
    volumes = {v["name"]: v for v in _pod(bundle)["volumes"]}
    writable = {
        m["mountPath"]
        for m in gateway["volumeMounts"]
        if not m.get("readOnly") and WRITABLE_VOLUME_TYPES & set(volumes[m["name"]])
    }
    workdir = _image_setting("WORKDIR")
    assert {"/tmp", workdir} <= writable
    store = _config(bundle).usage.store
    if store.startswith("sqlite:///"):
        database = store.removeprefix("sqlite:///")
        directory = posixpath.dirname(posixpath.join(workdir, database))
        assert directory in writable, f"SQLite file {database} is not on a writable volume"


@bundles
def test_service_account_has_irsa_role(bundle: Bundle) -> None:
    account = bundle.one("ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    assert _pod(bundle)["serviceAccountName"] == account["metadata"]["name"]
    # botocore ignores AWS_REGION: without bedrock.region, AWS_DEFAULT_REGION must be set.
    env = _environment(_gateway(bundle))
    region = _config(bundle).bedrock.region or env.get("AWS_DEFAULT_REGION")
    assert region, "no Bedrock region: set bedrock.region or AWS_DEFAULT_REGION"
    assert env.get("AWS_REGION", region) == region


@bundles
def test_image_is_set_by_kustomize(bundle: Bundle) -> None:
    images = {i["name"]: i for i in bundle.kustomization["images"]}
    assert IMAGE in images and images[IMAGE].get("newTag")
    assert _gateway(bundle)["image"] == IMAGE


# --- central fleet -------------------------------------------------------------------------

CENTRAL = BUNDLES[0]


def _pod_labels() -> Any:
    return _workload(CENTRAL)["spec"]["template"]["metadata"]["labels"]


def _selects_pods(match_labels: dict[str, str]) -> bool:
    return bool(match_labels) and match_labels.items() <= _pod_labels().items()


def test_central_deployment_shape() -> None:
    deployment = _workload(CENTRAL)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= _pod_labels().items()
    container = _gateway(CENTRAL)
    assert {"requests", "limits"} <= set(container["resources"])
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_central_selectors_match_pods() -> None:
    assert _selects_pods(CENTRAL.one("Service")["spec"]["selector"])
    assert _selects_pods(CENTRAL.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"])


def test_hpa_targets_the_deployment() -> None:
    hpa = CENTRAL.one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    deployment = _workload(CENTRAL)
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in _gateway(CENTRAL)["resources"]["requests"], "Utilization needs a request"


def test_service_monitor_scrapes_the_service() -> None:
    monitor = CENTRAL.one("ServiceMonitor")
    service = CENTRAL.one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == _config(CENTRAL).metrics.path
    seconds = {k: int(endpoint[k].removesuffix("s")) for k in ("interval", "scrapeTimeout")}
    assert seconds["scrapeTimeout"] <= seconds["interval"]


def test_prometheus_rule_shape() -> None:
    rule = CENTRAL.one("PrometheusRule")
    assert set(rule["spec"]) == {"groups"}
    assert rule["metadata"]["name"]


# --- sidecar example -----------------------------------------------------------------------

SIDECAR = BUNDLES[1]


def test_sidecar_is_native_and_reached_on_loopback() -> None:
    pod = _pod(SIDECAR)
    gateway = _gateway(SIDECAR)
    assert gateway in pod.get("initContainers", [])
    assert gateway["restartPolicy"] == "Always"
    port = _config(SIDECAR).server.port
    (app,) = pod["containers"]
    env = {e["name"]: e for e in app["env"]}
    assert env["OPENAI_BASE_URL"]["value"] == f"http://127.0.0.1:{port}/v1"
    # The app authenticates with the key the gateway's config expects.
    _, text = _config_map_text(SIDECAR)
    key_vars = {e["name"]: e for e in gateway["env"] if "valueFrom" in e}
    (key_var,) = [name for name in key_vars if "${" + name + "}" in text and "KEY" in name]
    assert env["OPENAI_API_KEY"]["valueFrom"] == key_vars[key_var]["valueFrom"]


def test_sidecar_keeps_aws_credentials_out_of_the_app() -> None:
    annotations = _workload(SIDECAR)["spec"]["template"]["metadata"]["annotations"]
    skipped = set(annotations["eks.amazonaws.com/skip-containers"].split(","))
    assert skipped == {c["name"] for c in _pod(SIDECAR)["containers"]}
    assert _gateway(SIDECAR)["name"] not in skipped
