"""The chart against what KServe's and Knative's controllers do on a real cluster.

Rendering and schema validation (test_chart.py) cannot see what happens after `helm install`:
KServe's
webhook defaults and validates the InferenceService, its controller creates and owns objects of its
own, and
Knative validates the revision. Each test here replays one of those steps from the controllers'
source, read
at the tags named in the comments, on every rendered variant:

- kserve/kserve at v0.15.2, v0.16.0, v0.17.0 and v0.20.0 (and master aaac4e294dae, the CRDs in
../shared/crds);
- knative/serving at 98e5ef90aa (knative-v1.23.0+5);
- envoyproxy/gateway's documentation (deployment-mode.md) and kubernetes-sigs/gateway-api v1.6.1's
CRDs.

Every test here fails on the chart as it was at f54d0c0 (routes named after the InferenceService,
/v2 routed
whole, no CPU limit, GFD node selector, ...).
"""

import copy
import json
import math
import os
import re
import shutil

import pytest
import yaml

from test_chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    ROUTE_KINDS,  # noqa: F401
    VARIANTS,
    arg,
    by_kind,
    helm,
    isvc_container,
    one,
    policy_namespaces,
    render,
    validate_object,
)
from test_chart import helm_binary  # noqa: F401  (the autouse fixture that checks helm is there)

pytestmark = pytest.mark.slow  # the real helm binary, every chart variant

ISVC = "serving.kserve.io/v1beta1"


def isvc_of(docs):
    return one(docs, "InferenceService")


def mode_of(isvc):
    """Standard or Knative, as KServe >= 0.17 reads the annotation
    (constants.ParseDeploymentMode)."""
    value = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    return {"RawDeployment": "Standard", "Serverless": "Knative"}.get(value, value)


def fails(*args):
    """helm template with these values: the error text (the test fails if it renders)."""
    proc = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *args, check=False)
    assert proc.returncode != 0, f"{args} rendered"
    return proc.stderr


# ----------------------------------------------------------------------------- objects KServe
# creates
# (API group, kind, name pattern, modes, source). {isvc} is the InferenceService's name; our
# predictor has no
# spec.predictor.name, no transformer and no explainer, so only the predictor's objects are listed,
# plus the
# top-level route every mode creates. KServe get-and-updates each of them: an object of ours with
# the same
# kind and name is taken over (SetControllerReference, spec replaced) and every `helm upgrade`
# reverted.
KSERVE_CREATES = [
    # Standard mode (raw Kubernetes objects), kserve v0.15.2..v0.20.0
    (
        "apps",
        "Deployment",
        "{isvc}-predictor",
        "Standard",
        "pkg/controller/v1beta1/inferenceservice/components/predictor.go (PredictorServiceName), "
        "deployment_reconciler.go",
    ),
    (
        "",
        "Service",
        "{isvc}-predictor",
        "Standard",
        "reconcilers/service/service_reconciler.go createDefaultSvc",
    ),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        "{isvc}-predictor",
        "Standard",
        "reconcilers/hpa/hpa_reconciler.go createHPA",
    ),
    (
        "keda.sh",
        "ScaledObject",
        "{isvc}-predictor",
        "Standard",
        "reconcilers/keda/keda_reconciler.go",
    ),
    (
        "opentelemetry.io",
        "OpenTelemetryCollector",
        "{isvc}-predictor",
        "Standard",
        "reconcilers/otel/otel_reconciler.go",
    ),
    (
        "gateway.networking.k8s.io",
        "HTTPRoute",
        "{isvc}-predictor",
        "Standard",
        "reconcilers/ingress/httproute_reconciler.go createRawPredictorHTTPRoute",
    ),
    (
        "gateway.networking.k8s.io",
        "HTTPRoute",
        "{isvc}",
        "Standard",
        "reconcilers/ingress/httproute_reconciler.go createRawTopLevelHTTPRoute / "
        "reconcileTopLevelHTTPRoute (Name: isvc.Name)",
    ),
    (
        "networking.k8s.io",
        "Ingress",
        "{isvc}",
        "Standard",
        "reconcilers/ingress/kube_ingress_reconciler.go createRawIngress (Name: isvc.Name)",
    ),
    (
        "",
        "ConfigMap",
        "global-ca-bundle",
        "Standard",
        "reconcilers/cabundleconfigmap (constants.DefaultGlobalCaBundleConfigMapName)",
    ),
    # Knative mode, kserve v0.15.2..v0.20.0
    (
        "serving.knative.dev",
        "Service",
        "{isvc}-predictor",
        "Knative",
        "reconcilers/knative/ksvc_reconciler.go createKnativeService",
    ),
    (
        "networking.istio.io",
        "VirtualService",
        "{isvc}",
        "Knative",
        "reconcilers/ingress/ingress_reconciler.go reconcileVirtualService (Name: isvc.Name)",
    ),
    (
        "",
        "Service",
        "{isvc}",
        "Knative",
        "reconcilers/ingress/ingress_reconciler.go reconcileExternalService (ExternalName)",
    ),
    # ... and what Knative makes of the ksvc (knative/serving 98e5ef90aa)
    (
        "serving.knative.dev",
        "Configuration",
        "{isvc}-predictor",
        "Knative",
        "pkg/reconciler/service/resources/configuration.go",
    ),
    (
        "serving.knative.dev",
        "Route",
        "{isvc}-predictor",
        "Knative",
        "pkg/reconciler/service/resources/route.go",
    ),
    (
        "",
        "Service",
        "{isvc}-predictor",
        "Knative",
        "pkg/reconciler/route/resources/names/names.go K8sService (ExternalName)",
    ),
    (
        "networking.internal.knative.dev",
        "Ingress",
        "{isvc}-predictor",
        "Knative",
        "pkg/reconciler/route/resources/names/names.go Ingress",
    ),
    (
        "serving.knative.dev",
        "Revision",
        "{isvc}-predictor-\\d{5}",
        "Knative",
        "pkg/reconciler/configuration/resources/revision.go (-%05d)",
    ),
    (
        "apps",
        "Deployment",
        "{isvc}-predictor-\\d{5}-deployment",
        "Knative",
        "pkg/reconciler/revision/resources/names/names.go Deployment",
    ),
    (
        "",
        "Service",
        "{isvc}-predictor-\\d{5}(-private)?",
        "Knative",
        "pkg/reconciler/serverlessservice/resources/names/names.go",
    ),
    (
        "autoscaling.internal.knative.dev",
        "PodAutoscaler",
        "{isvc}-predictor-\\d{5}",
        "Knative",
        "pkg/reconciler/revision/resources/names/names.go PA",
    ),
]


def group_of(obj):
    api = obj["apiVersion"]
    return api.rpartition("/")[0] if "/" in api else ""


def kserve_owner_of(obj, isvc_name):
    """The KSERVE_CREATES row whose object has this object's group, kind and name, or None."""
    for group, kind, pattern, mode, source in KSERVE_CREATES:
        name = pattern.replace("{isvc}", re.escape(isvc_name))
        if (group, kind) == (group_of(obj), obj["kind"]) and re.fullmatch(
            name, obj["metadata"]["name"]
        ):
            return mode, source
    return None


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "extra", [(), ("--set", "kserve.publicRoute=true")], ids=["cluster-local", "public"]
)
def test_no_object_takes_a_name_kserve_or_knative_creates(variant, extra):
    """In every mode, whichever route KServe's cluster config makes it create, none of ours is one
    of its."""
    docs = render(variant, *extra)
    isvc_name = isvc_of(docs)["metadata"]["name"]
    for obj in docs:
        if obj["kind"] == "InferenceService":
            continue
        owner = kserve_owner_of(obj, isvc_name)
        assert owner is None, (
            f"{obj['kind']} {obj['metadata']['name']} is created by KServe/Knative: {owner}"
        )


@pytest.mark.parametrize("route", ["httproute", "virtualservice", "ingress"])
def test_the_route_kserve_names_after_the_inferenceservice_is_not_ours(route):
    """The collision the table above guards against, spelled out: the chart's route used to be
    <isvc>."""
    docs = render("default", "--set", f"route.kind={route}")
    (ours,) = [d for d in docs if d["kind"] in ROUTE_KINDS]
    assert ours["metadata"]["name"] == f"{isvc_of(docs)['metadata']['name']}-public"
    assert kserve_owner_of(
        dict(ours, metadata={"name": isvc_of(docs)["metadata"]["name"]}),
        isvc_of(docs)["metadata"]["name"],
    ), "the table must know KServe's own route of this kind"


@pytest.mark.parametrize("variant", VARIANTS)
def test_inferenceservice_is_cluster_local_so_kserve_publishes_nothing(variant):
    """KServe creates no public route for a cluster-local InferenceService (Standard:
    networking.kserve.io/visibility, httproute_reconciler.go Reconcile / kube_ingress_reconciler.go
    Reconcile;
    Knative: networking.knative.dev/visibility, ingress_reconciler.go createIngress;
    v0.15.2..v0.20.0). Its
    public route would expose every path, /v2/repository and /metrics included."""
    isvc = isvc_of(render(variant))
    label = {
        "Standard": "networking.kserve.io/visibility",
        "Knative": "networking.knative.dev/visibility",
    }[mode_of(isvc)]
    assert isvc["metadata"]["labels"][label] == "cluster-local"
    public = isvc_of(render(variant, "--set", "kserve.publicRoute=true"))
    assert label not in public["metadata"]["labels"]


# ------------------------------------------------------------------------------- resources after
# KServe
# The stock inferenceservice-config (kserve config/configmap/inferenceservice.yaml, v0.15.2 and
# v0.20.0):
# "resource": {"cpuLimit": "1", "memoryLimit": "2Gi", "cpuRequest": "1", "memoryRequest": "2Gi"}.
KSERVE_RESOURCE_DEFAULTS = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "1", "memory": "2Gi"},
}
_SCALE = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(value):
    number, suffix = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value)).groups()
    return float(number) * _SCALE[suffix]


def kserve_defaulted(resources):
    """setResourceRequirementDefaults (pkg/apis/serving/v1beta1/inference_service_defaults.go,
    v0.15.2 and
    v0.20.0), which CustomPredictor.Default (predictor_custom.go) runs on kserve-container: every
    missing
    request or limit is filled from the config, whatever the other side says."""
    out = copy.deepcopy(resources)
    for side, defaults in KSERVE_RESOURCE_DEFAULTS.items():
        for name, value in defaults.items():
            out.setdefault(side, {}).setdefault(name, value)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_limits_cover_requests_after_kserve_defaults(variant):
    """The apiserver refuses a pod whose request exceeds its limit; KServe's default CPU limit is 1
    (kserve#3947)."""
    resources = kserve_defaulted(isvc_container(render(variant))["resources"])
    for name, request in resources["requests"].items():
        assert name in resources["limits"], f"{name} has a request but no limit"
        assert quantity(resources["limits"][name]) >= quantity(request), f"{name}: {resources}"
    # the chart sets both itself: the defaults above never apply
    assert resources == kserve_defaulted(resources) == isvc_container(render(variant))["resources"]


@pytest.mark.parametrize(
    "values, message",
    [
        (
            ["--set", "resources.limits.cpu=null"],
            "resources.limits.cpu is required: KServe's webhook fills",
        ),
        (["--set", "resources.limits.memory=null"], "resources.limits.memory is required"),
        (
            ["--set", "resources.limits.cpu=1"],
            "resources.limits.cpu (1) must be at least resources.requests.cpu (2)",
        ),
        (
            ["--set", "resources.limits.memory=4Gi"],
            "resources.limits.memory (4Gi) must be at least resources.requests.memory (8Gi)",
        ),
        (
            [
                "--set",
                "resources.requests.ephemeral-storage=20Gi",
                "--set",
                "resources.limits.ephemeral-storage=10Gi",
            ],
            "resources.limits.ephemeral-storage (10Gi) must be at least",
        ),
    ],
)
def test_validate_values_refuses_limits_below_requests(values, message):
    assert message in fails(*values)


def test_keda_needs_the_gauges_scraped():
    """KServe's KEDA path builds the ScaledObject's prometheus trigger from
    spec.predictor.autoScaling (keda_reconciler.go); the chart's query reads what its PodMonitor
    scrapes."""
    err = fails("--set", "monitoring.enabled=false")
    assert "autoscaling.class=keda reads the sam2_tracker_* gauges from Prometheus" in err
    render("default", "--set", "monitoring.enabled=false", "--set", "autoscaling.class=hpa")
    render("default", "--set", "monitoring.enabled=false", "--set", "autoscaling.keda.query=up")


def test_limits_compare_as_quantities():
    # 2500m < 3, 8192Mi == 8Gi: compared as numbers, not strings
    docs = render(
        "default",
        "--set",
        "resources.requests.cpu=2500m",
        "--set",
        "resources.limits.cpu=3",
        "--set",
        "resources.limits.memory=8192Mi",
    )
    assert isvc_container(docs)["resources"]["limits"]["memory"] == "8192Mi"
    assert "must be at least" in fails(
        "--set", "resources.requests.cpu=2500m", "--set", "resources.limits.cpu=2"
    )


# ------------------------------------------------------------------------------- what the routes
# expose
def route_matches(route, path):
    """Whether the route sends `path` to a backend. Gateway API PathPrefix and Ingress Prefix match
    whole
    path elements (gateway-api v1.6.1 httproutes CRD; networking.k8s.io/v1 Ingress); Istio's
    uri.prefix is a
    plain string prefix."""

    def element_prefix(prefix):
        prefix = prefix.rstrip("/") or "/"
        return prefix == "/" or path == prefix or path.startswith(prefix + "/")

    if route["kind"] == "HTTPRoute":
        for rule in route["spec"]["rules"]:
            for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
                p = match.get("path", {"type": "PathPrefix", "value": "/"})
                if (
                    (p["type"] == "PathPrefix" and element_prefix(p["value"]))
                    or (p["type"] == "Exact" and p["value"] == path)
                    or (p["type"] == "RegularExpression" and re.fullmatch(p["value"], path))
                ):
                    return True
        return False
    if route["kind"] == "VirtualService":
        for http in route["spec"]["http"]:
            for match in http.get("match") or [{"uri": {"prefix": "/"}}]:
                uri = match.get("uri", {"prefix": "/"})
                if (
                    path.startswith(uri.get("prefix", "\0"))
                    or uri.get("exact") == path
                    or ("regex" in uri and re.fullmatch(uri["regex"], path))
                ):
                    return True
        return False
    for rule in route["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            if (
                p["pathType"] in ("Prefix", "ImplementationSpecific") and element_prefix(p["path"])
            ) or (p["pathType"] == "Exact" and p["path"] == path):
                return True
    return False


# kserve 0.21.0 (the wheel the image runs) registers these; protocol/rest/v2_endpoints.py and
# server.py.
NEVER_PUBLIC = [
    "/v2/repository/models/sam2/unload",
    "/v2/repository/models/sam2/load",
    "/v2/repository/index",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/v2",
    "/v1/models/sam2:predict",
]
PUBLIC = [
    "/track",
    "/v2/models/sam2/infer",
    "/v2/models/sam2/ready",
    "/v2/models/sam2",
    "/v2/health/live",
    "/v2/health/ready",
]
# route.webPage (default true): the page at `/` (model/http_page.py, registered before KServe's
# own `/`), its files, and the kept-video routes it calls (model/http_videos.py).
PAGE = ["/", "/web/page.js", "/videos", "/videos/0123abcd/frames/3", "/videos/0123abcd/segment"]


@pytest.mark.parametrize(
    "variant, kind",
    [
        (v, k)
        for v in VARIANTS
        if v != "none"
        for k in ("default", "httproute", "virtualservice", "ingress")
        # httproute is refused in Knative mode (test_knative_mistakes_fail_validation)
        if not (v == "knative" and k == "httproute")
    ],
)
def test_no_route_exposes_the_model_repository_api(variant, kind):
    """POST /v2/repository/models/<name>/unload empties kserve's model registry: the replica turns
    unready
    for good while liveness stays 200. The chart's route carries /track, the model's v2 endpoints
    and health."""
    extra = () if kind == "default" else ("--set", f"route.kind={kind}")
    docs = render(variant, *extra)
    (route,) = [d for d in docs if d["kind"] in ROUTE_KINDS]
    for path in NEVER_PUBLIC:
        assert not route_matches(route, path), f"{route['kind']} routes {path}"
    for path in PUBLIC + PAGE:
        assert route_matches(route, path), f"{route['kind']} does not route {path}"


@pytest.mark.parametrize("kind", ["httproute", "virtualservice", "ingress"])
def test_route_without_the_web_page_carries_the_api_only(kind):
    docs = render("default", "--set", f"route.kind={kind}", "--set", "route.webPage=false")
    (route,) = [d for d in docs if d["kind"] in ROUTE_KINDS]
    for path in PAGE + NEVER_PUBLIC:
        assert not route_matches(route, path), f"{route['kind']} routes {path}"
    for path in PUBLIC:
        assert route_matches(route, path), f"{route['kind']} does not route {path}"


def test_route_match_helper_knows_the_old_prefix():
    """The matcher itself: the chart's old `/v2` prefix would have exposed the repository API."""
    old = {
        "kind": "HTTPRoute",
        "spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}]}]},
    }
    assert route_matches(old, "/v2/repository/models/sam2/unload")
    assert not route_matches(old, "/v2foo")


# -------------------------------------------------------------------------------------------
# Knative
@pytest.mark.parametrize(
    "values, message",
    [
        # knative/serving pkg/apis/serving/v1/revision_validation.go validateTimeoutSeconds;
        # config/core/configmaps/defaults.yaml max-revision-timeout-seconds: "600"
        (
            [
                "--set",
                "predictor.timeoutSeconds=1830",
                "--set",
                "server.requestTimeoutSeconds=1800",
            ],
            "predictor.timeoutSeconds (1830) exceeds knative.maxRevisionTimeoutSeconds (600)",
        ),
        # knative/serving pkg/activator/net/throttler.go newRevisionThrottler: 0 = unlimited
        (
            ["--set", "predictor.containerConcurrency=0"],
            "predictor.containerConcurrency (0) must be 1 to 1 + server.maxQueue (3)",
        ),
        (
            ["--set", "predictor.containerConcurrency=4"],
            "predictor.containerConcurrency (4) must be 1 to 1 + server.maxQueue (3)",
        ),
        (
            ["--set-json", 'autoscaling.autoScalingSpec={"metrics":[]}'],
            "autoscaling.autoScalingSpec configures HPA/KEDA (Standard mode)",
        ),
        (
            ["--set", "predictor.deploymentStrategy.type=Recreate"],
            "predictor.deploymentStrategy is refused",
        ),
        # gateway-api v1.6.1 httproutes CRD backendRefs: "Implementations SHOULD NOT support
        # ExternalName Services";
        # envoyproxy/gateway#5817
        (
            ["--set", "route.kind=httproute"],
            "route.kind=httproute: the predictor Service is Knative's ExternalName",
        ),
        (
            ["--set", "monitoring.kind=ServiceMonitor"],
            "monitoring.kind=ServiceMonitor needs deploymentMode=Standard",
        ),
    ],
)
def test_knative_mistakes_fail_validation(values, message):
    assert message in fails("-f", os.path.join(CHART, "ci", "knative-values.yaml"), *values)


def test_knative_defaults_fail_with_every_mistake_named():
    """Switching only the mode: the Standard defaults (1830 s, an HTTPRoute) would be refused after
    install. The autoscaling needs no change: Knative mode derives its own (concurrency)."""
    err = fails("--set", "deploymentMode=Knative")
    for needle in (
        "exceeds knative.maxRevisionTimeoutSeconds",
        "route.kind=httproute",
    ):
        assert needle in err, err
    assert "autoscaling" not in err
    assert err.count("invalid values") == 1


def test_knative_timeout_above_600_needs_the_raised_cluster_value():
    base = [
        "-f",
        os.path.join(CHART, "ci", "knative-values.yaml"),
        "--set",
        "predictor.timeoutSeconds=1830",
        "--set",
        "server.requestTimeoutSeconds=1800",
    ]
    fails(*base)
    isvc = isvc_of(render("knative", *base[2:], "--set", "knative.maxRevisionTimeoutSeconds=3600"))
    assert isvc["spec"]["predictor"]["timeout"] == 1830


@pytest.mark.parametrize("variant", ["knative"])
def test_knative_progress_deadline_covers_the_startup_probe(variant):
    """Knative fails a revision not ready within progress-deadline (600s,
    config/core/configmaps/deployment.yaml);
    the chart's startup probe allows 900 s, plus the image pull and the weight download."""
    docs = render(variant)
    predictor = isvc_of(docs)["spec"]["predictor"]
    startup = isvc_container(docs)["startupProbe"]
    deadline = predictor["annotations"]["serving.knative.dev/progress-deadline"]
    assert re.fullmatch(r"\d+s", deadline)
    assert int(deadline[:-1]) >= startup["periodSeconds"] * startup["failureThreshold"] + 300
    assert "serving.knative.dev/progress-deadline" not in json.dumps(isvc_of(render()))


def test_helm_test_waits_for_a_knative_cold_start():
    """With replicas.min 0 the first request starts a pod: the test waits the startup budget, not
    120 s."""

    def wait_of(docs):
        return int(by_kind(docs, "Pod")[0]["spec"]["containers"][0]["command"][-1])

    docs = render("knative")
    startup = isvc_container(docs)["startupProbe"]
    assert wait_of(docs) >= startup["periodSeconds"] * startup["failureThreshold"]
    assert wait_of(render()) == 120
    assert wait_of(render("knative", "--set", "test.timeoutSeconds=30")) == 30


# -----------------------------------------------------------------------------------------------
# gRPC
def kserve_predictor_service_ports(container):
    """The ports of the Service KServe creates in Standard mode (service_reconciler.go
    createDefaultSvc,
    v0.15.2..v0.20.0): the first container port as port 80, every other one as itself, a name
    containing
    "grpc" or "h2c" with appProtocol kubernetes.io/h2c."""
    ports = []
    for i, p in enumerate(container.get("ports", [])):
        app = (
            "kubernetes.io/h2c"
            if ("grpc" in p.get("name", "") or "h2c" in p.get("name", ""))
            else None
        )
        ports.append(
            {
                "name": p.get("name"),
                "port": 80 if i == 0 else p["containerPort"],
                "targetPort": p["containerPort"],
                "appProtocol": app,
            }
        )
    return ports


@pytest.mark.parametrize("variant", VARIANTS)
def test_grpc_port_reaches_a_service_port(variant):
    docs = render(variant)
    container = isvc_container(docs)
    grpc = int(arg(container, "--grpc_port"))
    if mode_of(isvc_of(docs)) == "Knative":
        # knative/serving pkg/apis/serving/k8s_validation.go validateContainersPorts: "Only a single
        # port is
        # allowed across all containers"; gRPC then stays inside the pod (README).
        assert len(container["ports"]) == 1
        return
    ports = kserve_predictor_service_ports(container)
    assert {
        "name": "http1",
        "port": 80,
        "targetPort": int(arg(container, "--http_port")),
        "appProtocol": None,
    } in ports
    assert {
        "name": "grpc",
        "port": grpc,
        "targetPort": grpc,
        "appProtocol": "kubernetes.io/h2c",
    } in ports


# --------------------------------------------------------------------------------------- KServe
# versions
# What each release's webhook accepts as serving.kserve.io/deploymentMode, and which autoscaler
# validation
# the raw annotation then selects (inference_service_validation.go
# validateAutoScalingCompExtension):
#   v0.15.2: constants RawDeployment/Serverless only; `case RawDeployment` -> HPA rules, anything
# else -> KPA.
#   v0.16.0: Standard/Knative (PR #4608); `case Standard` -> HPA, else KPA; the old names are
# recorded as the
#            new ones in status and every later update is refused ("deploymentMode cannot be
# changed",
#            validateDeploymentMode; kserve#4798).
#   v0.17.0+: the defaulter rewrites the old names first (#5025); `case Standard` -> HPA, else KPA.
KSERVE_MODES = {
    "0.15": {"Standard": "RawDeployment", "Knative": "Serverless"},
    "0.16": {"Standard": "Standard", "Knative": "Knative"},
    "0.17": {"Standard": "Standard", "Knative": "Knative"},
    "0.18": {"Standard": "Standard", "Knative": "Knative"},
    "0.19": {"Standard": "Standard", "Knative": "Knative"},
    "0.20": {"Standard": "Standard", "Knative": "Knative"},
    "0.21": {"Standard": "Standard", "Knative": "Knative"},
}
HPA_ANNOTATION = {
    "0.15": "RawDeployment"
}  # the raw value that selects HPA validation; "Standard" from 0.16
KPA_METRICS, HPA_METRICS = (
    {"concurrency", "rps"},
    {"cpu", "memory"},
)  # constants.go AutoscalerAllowed*MetricsList


@pytest.mark.parametrize("version", sorted(KSERVE_MODES))
@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_each_supported_kserve_version_gets_its_mode_names(version, mode):
    variant = "knative" if mode == "Knative" else "default"
    for alias in {mode, {"Standard": "RawDeployment", "Knative": "Serverless"}[mode]}:
        docs = render(
            variant, "--set", f"kserve.version={version}", "--set", f"deploymentMode={alias}"
        )
        isvc = isvc_of(docs)
        annotation = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
        assert annotation == KSERVE_MODES[version][mode]
        hpa = annotation == HPA_ANNOTATION.get(version, "Standard")
        assert hpa == (mode == "Standard")
        metric = isvc["spec"]["predictor"].get("scaleMetric")
        if hpa:
            # the Standard validation branch; with autoscalerClass keda it refuses any scaleMetric
            # (validateScalingKedaCompExtension, v0.15.0..v0.20.0)
            assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
            assert metric is None
            fallback = isvc_of(
                render(
                    variant,
                    "--set",
                    f"kserve.version={version}",
                    "--set",
                    f"deploymentMode={alias}",
                    "--set",
                    "autoscaling.class=hpa",
                )
            )
            assert fallback["spec"]["predictor"]["scaleMetric"] in HPA_METRICS
        else:
            assert metric in KPA_METRICS
            assert "deploymentStrategy" not in isvc["spec"]["predictor"]
        validate_object(isvc)


def test_kserve_before_015_is_refused_with_a_message():
    assert "this chart supports KServe 0.15 and later" in fails("--set", "kserve.version=0.14")
    assert "/kserve/version" in fails("--set", "kserve.version=0.2x")


def test_kserve_version_must_be_a_string():
    # `version: 0.20` unquoted in a values file is the number 0.2: the schema insists on the string
    assert "/kserve/version" in fails("--set-json", "kserve.version=0.20")
    assert isvc_of(render("default", "--set-string", "kserve.version=0.20"))


# --------------------------------------------------------------------------------------
# NetworkPolicy
@pytest.mark.parametrize(
    "route, namespace",
    [
        ("httproute", "envoy-gateway-system"),
        ("virtualservice", "istio-system"),
        ("ingress", "ingress-nginx"),
    ],
)
def test_network_policy_default_gateway_namespace_follows_the_route(route, namespace):
    """KServe's default Gateway kserve/kserve-ingress-gateway is Envoy Gateway's (gatewayClassName:
    envoy,
    kserve charts/kserve-resources/files/kserve/ingress_gateway-patch.yaml, v0.20.0); Envoy Gateway
    runs the
    proxies of every Gateway in its own namespace (envoyproxy/gateway deployment-mode.md), not in
    `kserve`."""
    policy = one(
        render(
            "default",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            f"route.kind={route}",
            "--set",
            "route.hosts[0]=sam2.example.com",
        ),
        "NetworkPolicy",
    )
    assert policy_namespaces(policy) == {8080: [namespace, "monitoring"]}
    validate_object(policy)


def test_network_policy_admits_knatives_activator_and_autoscaler():
    """Knative mode: clients arrive at the queue-proxy (8012, BackendHTTPPort) through the local
    gateway or the
    activator; the autoscaler scrapes the queue-proxy on 9090 (AutoscalingQueueMetricsPort,
    knative/serving
    pkg/networking/constants.go), without which the KPA cannot scale."""
    docs = render("knative", "--set", "networkPolicy.enabled=true")
    admitted = policy_namespaces(one(docs, "NetworkPolicy"))
    assert admitted[8012] == ["istio-system", "knative-serving"]
    assert admitted[9090] == ["knative-serving"]
    assert admitted[8080] == ["monitoring"]


def test_network_policy_without_a_route_admits_no_gateway():
    policy = one(render("none", "--set", "networkPolicy.enabled=true"), "NetworkPolicy")
    assert policy_namespaces(policy) == {8080: ["monitoring"]}


# ----------------------------------------------------------------------------------------- scratch
# space
def scratch_mib(container):
    """What the server may write to /tmp: the spooled uploads of the running and the queued jobs
    (a place in line is taken before an upload is read; no frame spill file) and the kept videos
    (--video_cache_mb); the test adds the chart's cache allowance."""
    return (1 + int(arg(container, "--max_queue"))) * int(arg(container, "--max_upload_mb")) + \
        int(arg(container, "--video_cache_mb"))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "extra",
    [(), ("--set", "server.maxQueue=6", "--set", "server.maxUploadMb=4096")],
    ids=["defaults", "bigger"],
)
def test_tmp_and_ephemeral_storage_follow_the_server_limits(variant, extra):
    docs = render(variant, *extra)
    predictor = isvc_of(docs)["spec"]["predictor"]
    container = isvc_container(docs)
    (tmp,) = [v for v in predictor["volumes"] if v["name"] == "tmp"]
    size = quantity(tmp["emptyDir"]["sizeLimit"]) / 2**20
    need = scratch_mib(container) + 1024
    assert size >= need * 1.25, (size, need)
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert requests["ephemeral-storage"] == limits["ephemeral-storage"]
    storage = quantity(limits["ephemeral-storage"]) / 2**20
    weights = 1024 if any(e["name"] == "STORAGE_URI" for e in container["env"]) else 0
    assert storage >= size + weights + 512


def test_tmp_size_limit_below_the_need_is_refused():
    err = fails("--set", "tmp.sizeLimit=2Gi")
    assert (
        "tmp.sizeLimit (2Gi) is below what the server may write to /tmp" in err
        and "6144 MiB" in err
    )
    assert "ephemeral-storage (1Gi) is below the /tmp sizeLimit" in fails(
        "--set", "resources.limits.ephemeral-storage=1Gi"
    )
    assert "against resources.limits.memory" in fails(
        "--set",
        "tmp.medium=Memory",
        "--set",
        "resources.limits.memory=8Gi",
        "--set",
        "resources.requests.memory=4Gi",
    )
    # a large enough explicit value renders
    docs = render("default", "--set", "tmp.sizeLimit=8Gi")
    (tmp,) = [v for v in isvc_of(docs)["spec"]["predictor"]["volumes"] if v["name"] == "tmp"]
    assert tmp["emptyDir"]["sizeLimit"] == "8Gi"


def test_tmp_in_memory_is_not_counted_as_disk():
    docs = render("default", "--set", "tmp.medium=Memory", "--set", "resources.limits.memory=24Gi")
    storage = quantity(isvc_container(docs)["resources"]["limits"]["ephemeral-storage"]) / 2**20
    assert storage == 1024 + 512


def test_server_flags_the_chart_passes_exist():
    """The chart passes only flags `python -m model --help` lists (the container's whole
    contract)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "model", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    ).stdout
    flags = set(re.findall(r"(--[a-z][a-z0-9_-]*)", out))
    for variant in VARIANTS:
        for a in isvc_container(render(variant, "--set", "model.compile=true"))["args"]:
            assert a.split("=", 1)[0] in flags, a


def test_request_limits_reach_the_server_flags():
    """server.maxPoints / maxObjects become --max_points / --max_objects; the schema bounds
    maxObjects by the 255 obj_ids a request can name."""
    args = isvc_container(render("default", "--set", "server.maxObjects=3",
                                 "--set", "server.maxPoints=9"))["args"]
    assert "--max_objects=3" in args and "--max_points=9" in args
    assert "--max_objects=16" in isvc_container(render("default"))["args"]
    assert "maxObjects" in fails("--set", "server.maxObjects=300")


# --------------------------------------------------------------------------------------------
# rollouts
def effective_max_surge(strategy, replicas):
    """maxSurge in pods as Kubernetes computes it (percentages round up), after KServe's default of
    25 %/25 %
    (deployment_reconciler.go setDefaultDeploymentSpec, v0.20.0) when the InferenceService sets
    none."""
    strategy = strategy or {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    if strategy["type"] == "Recreate":
        return 0
    surge = strategy.get("rollingUpdate", {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        return math.ceil(replicas * int(surge[:-1]) / 100)
    return int(surge)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gpu_rollout_needs_no_spare_gpu(variant):
    docs = render(variant)
    isvc = isvc_of(docs)
    predictor = isvc["spec"]["predictor"]
    if (
        mode_of(isvc) == "Knative"
        or "nvidia.com/gpu" not in isvc_container(docs)["resources"]["limits"]
    ):
        return
    for replicas in range(1, predictor["maxReplicas"] + 1):
        assert effective_max_surge(predictor.get("deploymentStrategy"), replicas) == 0
    assert predictor["deploymentStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
    # without the chart's strategy, one replica would need a second GPU
    assert effective_max_surge(None, 1) == 1


def test_deployment_strategy_value_wins():
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    docs = render("default", "--set-json", f"predictor.deploymentStrategy={json.dumps(strategy)}")
    assert isvc_of(docs)["spec"]["predictor"]["deploymentStrategy"] == strategy
    assert "deploymentStrategy" not in isvc_of(render("cpu"))["spec"]["predictor"]


def test_chart_version_bump_leaves_the_pod_template_alone(tmp_path):
    """KServe copies the InferenceService's labels (and annotations) into the pod template
    (components/predictor.go buildObjectMeta, deployment_reconciler.go; ksvc_reconciler.go in
    Knative mode):
    a new chart version with the same image and values must render the same InferenceService."""
    bumped = tmp_path / "sam2-tracker"
    shutil.copytree(CHART, bumped)
    chart_yaml = (bumped / "Chart.yaml").read_text()
    chart_yaml = re.sub(r"(?m)^version: .*$", "version: 9.9.9", chart_yaml)
    chart_yaml = re.sub(r"(?m)^appVersion: .*$", 'appVersion: "9.9.9"', chart_yaml)
    (bumped / "Chart.yaml").write_text(chart_yaml)
    for variant in ("default", "knative"):
        args = ["--set", "image.tag=0.1.0"]
        if variant == "knative":
            args += ["-f", os.path.join(CHART, "ci", "knative-values.yaml")]
        before = [
            d for d in yaml.safe_load_all(helm("template", RELEASE, CHART, *args).stdout) if d
        ]
        after = [
            d for d in yaml.safe_load_all(helm("template", RELEASE, str(bumped), *args).stdout) if d
        ]
        assert isvc_of(before) == isvc_of(after)
        assert (
            by_kind(after, "ServiceAccount")[0]["metadata"]["labels"]["helm.sh/chart"]
            == "sam2-tracker-9.9.9"
        )


# ------------------------------------------------------------------------------------------ smaller
# items
def test_ingress_body_limit_is_not_below_the_servers():
    """The server accepts --max_upload_mb + 1 MiB on /track and 4/3 of it + 1 MiB (base64) on the v2
    door
    (model/http.py body_limit_for); nginx would answer 413 with an HTML page first."""
    for mb in (1, 1024, 1000, 4096):
        docs = render("ingress", "--set", f"server.maxUploadMb={mb}")
        body = one(docs, "Ingress")["metadata"]["annotations"][
            "nginx.ingress.kubernetes.io/proxy-body-size"
        ]
        assert body.endswith("m")
        assert int(body[:-1]) * 2**20 >= mb * 2**20 * 4 // 3 + 2**20


def test_httproute_variant_attaches_to_a_listener_kserves_gateway_has():
    """KServe's Gateway has one listener, `http`
    (charts/kserve-resources/files/kserve/ingress_gateway-patch.yaml,
    v0.20.0): a parentRef naming another sectionName is never Accepted."""
    for variant in VARIANTS:
        for route in by_kind(render(variant), "HTTPRoute"):
            for ref in route["spec"]["parentRefs"]:
                if ref["name"] == "kserve-ingress-gateway":
                    assert ref.get("sectionName", "http") == "http"
