"""Scaling and routing: what the chart asks KServe, KEDA, Knative and the gateways for.

One tracking job runs per GPU, so replicas follow jobs in flight + jobs queued, and a new job should
go to an idle replica. Each test replays, on the rendered objects, a step the real component takes,
ported from its source at the tag named:

- kserve/kserve v0.15.0, v0.15.2, v0.16.0, v0.17.0: the webhook's autoscaler checks
  (pkg/apis/serving/v1beta1/inference_service_validation.go, pkg/constants/constants.go) and the
  KEDA reconciler that turns spec.predictor.autoScaling into a ScaledObject
  (pkg/controller/v1beta1/inferenceservice/reconcilers/keda/keda_reconciler.go);
- kedacore/keda v2.17.3: pkg/scalers/prometheus_scaler.go, pkg/scalers/scaler.go (the ScaledObject
  is validated against that release's CRD, tests/crds/);
- knative/serving knative-v1.23.0: the activator's balancing (pkg/activator/net/throttler.go,
  lb_policy.go), the target (pkg/reconciler/autoscaling/resources/target.go), when the activator
  leaves the path (pkg/autoscaler/scaling/autoscaler.go, pkg/reconciler/autoscaling/kpa/kpa.go);
- envoyproxy/gateway v1.6.3 (internal/xds/translator/cluster.go), istio/istio
  (pilot/pkg/networking/core/cluster_traffic_policy.go), kubernetes/ingress-nginx
  controller-v1.15.1 (rootfs/etc/nginx/lua/balancer/ewma.lua).
"""

import math
import os
import random
import re

import pytest
import yaml

from test_chart import (
    CHART,
    NAMESPACE,
    ROOT,
    VARIANTS,
    arg,
    by_kind,
    helm_binary,  # noqa: F401  (the autouse fixture that checks helm is there)
    isvc_container,
    one,
    render,
    validate_object,
)
from test_chart_kserve import fails, isvc_of

pytestmark = pytest.mark.slow  # the real helm binary, every chart variant


def values_of(variant):
    """The values a variant sets (its ci file over values.yaml), read without helm."""
    with open(os.path.join(CHART, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    if variant != "default":
        with open(os.path.join(CHART, "ci", f"{variant}-values.yaml"), encoding="utf-8") as f:
            for key, value in (yaml.safe_load(f) or {}).items():
                values[key] = {**values[key], **value} if isinstance(value, dict) else value
    return values


STANDARD_VARIANTS = [
    v for v in VARIANTS if values_of(v)["deploymentMode"] in ("Standard", "RawDeployment")
]
KEDA_VARIANTS = [v for v in STANDARD_VARIANTS if values_of(v)["autoscaling"]["class"] == "keda"]
GAUGES = ("sam2_tracker_jobs_in_flight", "sam2_tracker_queue_depth", "sam2_tracker_model_ready")


def predictor_of(docs):
    return isvc_of(docs)["spec"]["predictor"]


# ---------------------------------------------------------------------------- KServe's webhook
# kserve pkg/constants/constants.go AutoscalerAllowedClassList: v0.15.0 hpa, external, keda; `none`
# from v0.15.2 on.
def allowed_classes(version):
    return {"hpa", "external", "keda"} | ({"none"} if version >= (0, 15, 2) else set())


def validate_scale_target(target):
    """validateScaleTarget (v0.17.0): the field its type names must be set."""
    kind = target.get("type")
    if kind == "Utilization":
        utilization = target.get("averageUtilization")
        assert utilization is not None, "the AverageUtilization type should be set"
        assert 1 <= utilization <= 100, "the target utilization percentage should be a [1-100]"
    elif kind == "AverageValue":
        assert target.get("averageValue") is not None, "the AverageValue type should be set"
    elif kind == "Value":
        assert target.get("value") is not None, "the Value type should be set"


def kserve_admits_standard(isvc, version=(0, 17, 0)):
    """validateInferenceServiceAutoscaler + validateAutoScalingCompExtension's Standard branch
    (validateScalingHPACompExtension / validateScalingKedaCompExtension), v0.15.0..v0.17.0."""
    annotations = isvc["metadata"]["annotations"]
    predictor = isvc["spec"]["predictor"]
    cls = annotations.get("serving.kserve.io/autoscalerClass", "hpa")
    assert cls in allowed_classes(version), f"[{cls}] is not a supported autoscaler class type"
    metrics = (predictor.get("autoScaling") or {}).get("metrics", [])
    if cls == "hpa":
        metric = predictor.get("scaleMetric", "cpu")
        assert metric in ("cpu", "memory"), f"[{metric}] is not a supported metric"
        target = predictor.get("scaleTarget")
        if target is not None and metric == "cpu":
            assert 1 <= target <= 100, "the target utilization percentage should be a [1-100]"
        for m in metrics:
            assert m["type"] == "Resource", "invalid HPA metric source type"
    elif cls == "keda":
        assert "scaleMetric" not in predictor, "ScaleMetric is not supported for KEDA"
        for m in metrics:
            assert m["type"] in ("Resource", "External", "PodMetric"), "unknown KEDA metric type"
            if m["type"] == "External":
                external = m["external"]
                assert external["metric"].get("query"), "the query should not be empty"
                assert external["target"].get("value") is not None, (
                    "the target threshold value should not be empty"
                )
                validate_scale_target(external["target"])
    # fields a release's CRD does not have are pruned without an error: refuse them here
    if version < (0, 16, 0):
        autoscaling = predictor.get("autoScaling") or {}
        assert "behavior" not in autoscaling, "autoScaling.behavior needs KServe 0.16"
        assert all("authenticationRef" not in m.get("external", {}) for m in metrics), (
            "authenticationRef needs KServe 0.16"
        )


# ------------------------------------------------------------------------ KServe's KEDA reconciler
def kserve_scaled_object(isvc):
    """createKedaScaledObject + getKedaMetrics (keda_reconciler.go, v0.17.0) for External metrics:
    a prometheus trigger with serverAddress, query, threshold = target.value (no metricType), the
    namespace when set, the authenticationRef and authModes; min/max replicas; of behavior only the
    stabilization windows, under advanced.horizontalPodAutoscalerConfig."""
    predictor = isvc["spec"]["predictor"]
    name = f"{isvc['metadata']['name']}-predictor"
    autoscaling = predictor.get("autoScaling") or {}
    triggers = []
    for m in autoscaling.get("metrics", []):
        assert m["type"] == "External", "the chart renders External metrics only"
        external = m["external"]
        metric = external["metric"]
        trigger = {
            "type": metric["backend"],
            "metadata": {
                "serverAddress": metric.get("serverAddress", ""),
                "query": metric["query"],
                "threshold": str(external["target"].get("value", "0")),
            },
        }
        if metric["backend"] == "prometheus" and metric.get("namespace"):
            trigger["metadata"]["namespace"] = metric["namespace"]
        auth = external.get("authenticationRef")
        if auth:
            if auth.get("authModes"):
                trigger["metadata"]["authModes"] = auth["authModes"]
            if auth["authenticationRef"].get("name"):
                trigger["authenticationRef"] = {"name": auth["authenticationRef"]["name"]}
        triggers.append(trigger)
    minimum = predictor.get("minReplicas", 1)
    spec = {
        "scaleTargetRef": {"name": name},
        "triggers": triggers,
        "minReplicaCount": minimum,
        "maxReplicaCount": max(predictor.get("maxReplicas", 0), minimum),
    }
    behavior = {}
    for direction in ("scaleDown", "scaleUp"):
        window = (autoscaling.get("behavior") or {}).get(direction, {})
        if "stabilizationWindowSeconds" in window:
            behavior[direction] = {
                "stabilizationWindowSeconds": window["stabilizationWindowSeconds"]
            }
    if behavior:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name},
        "spec": spec,
    }


def keda_desired_replicas(trigger, query_value):
    """KEDA gives the HPA an External metric of GetMetricTargetType: AverageValue when the trigger
    has no metricType (pkg/scalers/scaler.go, v2.17.3), so the HPA wants ceil(value / threshold)
    replicas whatever the current count."""
    assert "metricType" not in trigger
    return math.ceil(query_value / float(trigger["metadata"]["threshold"]))


@pytest.mark.parametrize("variant", KEDA_VARIANTS)
def test_keda_is_the_default_and_kserve_admits_it(variant):
    docs = render(variant)
    isvc = isvc_of(docs)
    version = (0, 15, 0) if variant == "kserve015" else (0, 17, 0)
    kserve_admits_standard(isvc, version)
    predictor = isvc["spec"]["predictor"]
    assert "scaleTarget" not in predictor
    (metric,) = predictor["autoScaling"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["backend"] == "prometheus"
    assert metric["external"]["target"]["type"] == "Value"


@pytest.mark.parametrize("variant", KEDA_VARIANTS)
def test_the_scaled_object_kserve_creates_is_valid_and_counts_jobs(variant):
    """The ScaledObject KServe would create validates against KEDA 2.17.3's CRD, targets KServe's
    Deployment, and asks for one replica per `targetJobsPerReplica` jobs in flight or queued."""
    docs = render(variant)
    isvc = isvc_of(docs)
    scaled = kserve_scaled_object(isvc)
    validate_object(scaled)
    spec = scaled["spec"]
    # KServe's Deployment in Standard mode is <isvc>-predictor (components/predictor.go)
    assert spec["scaleTargetRef"] == {"name": f"{isvc['metadata']['name']}-predictor"}
    assert spec["minReplicaCount"] >= 1
    assert spec["maxReplicaCount"] == isvc["spec"]["predictor"]["maxReplicas"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    per_replica = int(trigger["metadata"]["threshold"])
    # 5 replicas, each running a job with one more queued behind it
    assert keda_desired_replicas(trigger, 5 * 2) == math.ceil(10 / per_replica)
    # one job waiting behind a busy single replica: a second replica at the default target
    if per_replica == 1:
        assert keda_desired_replicas(trigger, 2) == 2
        assert keda_desired_replicas(trigger, 0) == 0  # clamped to minReplicaCount by the HPA


def test_keda_variant_passes_on_what_kserve_016_knows():
    docs = render("keda")
    isvc = isvc_of(docs)
    kserve_admits_standard(isvc, (0, 17, 0))
    spec = kserve_scaled_object(isvc)["spec"]
    (trigger,) = spec["triggers"]
    assert trigger["authenticationRef"] == {"name": "keda-prometheus"}
    assert trigger["metadata"]["authModes"] == "bearer"
    assert trigger["metadata"]["namespace"] == NAMESPACE
    assert trigger["metadata"]["threshold"] == "2"
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 600}
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 16)


@pytest.mark.parametrize(
    "values, message",
    [
        (
            ["--set", "autoscaling.keda.authenticationRef=keda-prometheus"],
            "autoscaling.keda.authenticationRef needs KServe 0.16 or later",
        ),
        (
            ["--set", "autoscaling.scaleDownStabilizationSeconds=600"],
            "autoscaling.scaleDownStabilizationSeconds needs KServe 0.16 or later",
        ),
        (["--set", "autoscaling.class=none"], "autoscaling.class=none needs KServe 0.15.2"),
    ],
)
def test_kserve_015_is_refused_what_it_cannot_do(values, message):
    """0.15's CRD has no autoScaling.behavior nor authenticationRef: the API server would prune
    them without a word (component.go gained both in v0.16.0); 0.15.0 has no `none` class."""
    assert message in fails("--set-string", "kserve.version=0.15", *values)
    render("default", "--set-string", "kserve.version=0.16", *values)
    if "none" in values[-1]:
        isvc = isvc_of(render("default", "--set-string", "kserve.version=0.15.2", *values))
        kserve_admits_standard(isvc, (0, 15, 2))


def test_kserve_015_render_is_admitted_by_015():
    kserve_admits_standard(isvc_of(render("kserve015")), (0, 15, 0))
    with pytest.raises(AssertionError, match="behavior needs KServe 0.16"):
        kserve_admits_standard(
            isvc_of(render("default", "--set", "autoscaling.scaleDownStabilizationSeconds=60")),
            (0, 15, 0),
        )


# ------------------------------------------------------------------------------- the query itself
def query_of(docs):
    (metric,) = predictor_of(docs)["autoScaling"]["metrics"]
    return metric["external"]["metric"]["query"]


def top_level_aggregation(query):
    """The outermost function of a PromQL expression and whether it spans the whole query."""
    match = re.match(r"(\w+)\s*\(", query)
    assert match, query
    depth = 0
    for i, char in enumerate(query[match.end() - 1 :], start=match.end() - 1):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return match.group(1), i == len(query) - 1
    raise AssertionError(f"unbalanced: {query}")


@pytest.mark.parametrize("variant", KEDA_VARIANTS)
def test_query_is_one_number_over_this_releases_predictor_pods(variant):
    """KEDA's prometheus scaler refuses a result of more than one element and reads none as 0
    (prometheus_scaler.go ExecutePromQuery, v2.17.3): the query must be one sum over both gauges of
    the pods of KServe's Deployment, and nothing else."""
    docs = render(variant)
    query = query_of(docs)
    assert top_level_aggregation(query) == ("sum", True), query
    assert not re.match(r"sum\s*(by|without)", query), "a grouped sum returns several elements"
    selectors = re.findall(r"(sam2_tracker_\w+)\{([^}]*)\}", query)
    assert sorted(name for name, _ in selectors) == sorted(GAUGES)
    (selector,) = {s for _, s in selectors}
    labels = dict(re.findall(r'(\w+)=~?"([^"]*)"', selector))
    assert labels["namespace"] == NAMESPACE
    pod = re.compile(labels["pod"])
    isvc = isvc_of(docs)["metadata"]["name"]
    # ReplicaSet pods of the Deployment <isvc>-predictor: <deployment>-<template hash>-<suffix>
    assert pod.fullmatch(f"{isvc}-predictor-7c9f8d6b5d-x2kq9")
    assert pod.fullmatch(f"{isvc}-predictor-5f4d9b8c7-abcde")
    for other in (
        f"other-{isvc}-predictor-7c9f8d6b5d-x2kq9",
        f"{isvc}-predictor-00001-deployment-7c9f8d6b5d-x2kq9",  # a Knative revision's pods
        f"{isvc}-transformer-7c9f8d6b5d-x2kq9",
    ):
        assert not pod.fullmatch(other), other


def promql(query, samples):
    """Evaluate the subset of PromQL the chart's query uses, on `samples` [(metric, labels, value)]:
    selectors with = and =~ (anchored), + and * matching one-to-one on all labels but the name
    (* binds tighter), parentheses, sum(...) and max by (...) (...). Returns [(labels, value)]."""
    tokens = re.findall(r"\w+\{[^}]*\}|\w+|[()+*,]", query)
    assert "".join(tokens) == re.sub(r"\s+", "", query), f"unsupported PromQL: {query}"
    position = 0

    def take(expected=None):
        nonlocal position
        token = tokens[position]
        assert expected is None or token == expected, (token, expected, query)
        position += 1
        return token

    def peek():
        return tokens[position] if position < len(tokens) else None

    def select(token):
        name, body = token[:-1].split("{", 1)
        matchers = re.findall(r'(\w+)(=~|=)"([^"]*)"', body)
        out = []
        for metric, labels, value in samples:
            if metric == name and all(
                re.fullmatch(v, labels.get(k, "")) if op == "=~" else labels.get(k, "") == v
                for k, op, v in matchers
            ):
                out.append((dict(labels), value))
        return out

    def binary(left, right, op):
        index = {tuple(sorted(labels.items())): value for labels, value in right}
        return [
            (labels, op(value, index[key]))
            for labels, value in left
            if (key := tuple(sorted(labels.items()))) in index
        ]

    def unary():
        token = take()
        if token == "(":
            value = expression()
            take(")")
            return value
        if token == "sum":
            take("(")
            inner = expression()
            take(")")
            return [({}, sum(v for _, v in inner))] if inner else []
        if token == "max":
            take("by")
            take("(")
            keys = []
            while peek() != ")":
                keys.append(take())
                if peek() == ",":
                    take(",")
            take(")")
            take("(")
            inner = expression()
            take(")")
            groups = {}
            for labels, value in inner:
                group = tuple((k, labels.get(k, "")) for k in keys)
                groups[group] = max(groups.get(group, value), value)
            return [(dict(group), value) for group, value in groups.items()]
        assert "{" in token, f"unsupported PromQL function {token!r} in {query}"
        return select(token)

    def product():
        value = unary()
        while peek() == "*":
            take("*")
            value = binary(value, unary(), lambda a, b: a * b)
        return value

    def expression():
        value = product()
        while peek() == "+":
            take("+")
            value = binary(value, product(), lambda a, b: a + b)
        return value

    result = expression()
    assert position == len(tokens), f"trailing tokens in {query}"
    return result


def pod_samples(pod, running, queued, ready, namespace=NAMESPACE, job="ml/sam2-tracker"):
    labels = {"namespace": namespace, "pod": pod, "container": "kserve-container", "job": job}
    return [
        ("sam2_tracker_jobs_in_flight", labels, running),
        ("sam2_tracker_queue_depth", labels, queued),
        ("sam2_tracker_model_ready", labels, ready),
    ]


@pytest.mark.parametrize("variant", KEDA_VARIANTS)
def test_query_counts_the_jobs_waiting_for_this_releases_serving_replicas(variant):
    """The chart's query, evaluated on what Prometheus would hold: running + queued jobs of the
    release's Ready pods; a draining pod, a pod scraped twice, another release's pods and another
    namespace's do not change the count."""
    docs = render(variant)
    query = query_of(docs)
    deployment = f"{isvc_of(docs)['metadata']['name']}-predictor"
    samples = (
        pod_samples(f"{deployment}-7c9f8d6b5d-aaaaa", running=1, queued=2, ready=1)
        + pod_samples(f"{deployment}-7c9f8d6b5d-bbbbb", running=1, queued=0, ready=1)
        + pod_samples(f"{deployment}-7c9f8d6b5d-ccccc", running=0, queued=0, ready=1)
        # draining after a scale-down: its job ends where it is
        + pod_samples(f"{deployment}-7c9f8d6b5d-ddddd", running=1, queued=1, ready=0)
        # the first pod again, through a second scrape job
        + pod_samples(f"{deployment}-7c9f8d6b5d-aaaaa", running=1, queued=2, ready=1, job="other")
        + pod_samples(f"other-{deployment}-7c9f8d6b5d-eeeee", running=1, queued=2, ready=1)
        + pod_samples(f"{deployment}-7c9f8d6b5d-fffff", running=1, queued=2, ready=1, namespace="x")
    )
    assert promql(query, samples) == [({}, 4)]
    # KEDA reads an empty result as 0 (ignoreNullValues): no pods scraped, no scale-up
    assert promql(query, []) == []


def test_the_gauges_are_the_ones_the_server_exports():
    with open(os.path.join(ROOT, "model", "metrics.py"), encoding="utf-8") as f:
        exported = set(re.findall(r'Gauge\(\s*"(\w+)"', f.read()))
    assert set(GAUGES) <= exported


def test_query_follows_release_name_and_can_be_replaced():
    docs = render("default", "--set", "fullnameOverride=tracker")
    assert 'pod=~"tracker-predictor-[a-z0-9]+-[a-z0-9]+"' in query_of(docs)
    own = 'sum(sam2_tracker_jobs_in_flight{job="x"}) + sum(sam2_tracker_queue_depth{job="x"})'
    assert query_of(render("default", "--set-string", f"autoscaling.keda.query={own}")) == own


# ------------------------------------------------------------------------------- HPA fallback
def test_hpa_fallback_scales_on_cpu():
    docs = render("hpa")
    isvc = isvc_of(docs)
    kserve_admits_standard(isvc)
    predictor = isvc["spec"]["predictor"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "hpa"
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", 60)
    assert "autoScaling" not in predictor
    assert not by_kind(docs, "PodMonitor")
    assert "autoscaling.hpa.target (150)" in fails(
        "-f", os.path.join(CHART, "ci", "hpa-values.yaml"), "--set", "autoscaling.hpa.target=150"
    )


def test_standard_mode_refuses_scale_to_zero():
    """With minReplicas 0 the Deployment has no pod, so the gauges are gone and the query reads 0
    (ignoreNullValues): nothing would ever scale it up again."""
    assert "the KEDA trigger reads gauges the pods export" in fails("--set", "replicas.min=0")


# --------------------------------------------------------------------------------- Knative mode
def knative_target(container_concurrency, annotations, defaults=(100.0, 0.7)):
    """ResolveMetricTarget for the concurrency metric (target.go, knative-v1.23.0); defaults are
    config-autoscaler's container-concurrency-target-default and -percentage."""
    default_target, default_fraction = defaults
    total = float(container_concurrency) or default_target
    if "autoscaling.knative.dev/target" in annotations:
        total = float(annotations["autoscaling.knative.dev/target"])
        if container_concurrency:
            total = min(total, float(container_concurrency))
    fraction = default_fraction
    if "autoscaling.knative.dev/target-utilization-percentage" in annotations:
        fraction = float(annotations["autoscaling.knative.dev/target-utilization-percentage"]) / 100
    return max(0.01, total * fraction)


def activator_picks(container_concurrency, pods, jobs, seed=0):
    """Where the activator sends `jobs` requests arriving while none finishes, over `pods` idle
    pods (newRevisionThrottler: 1..3 -> firstAvailableLBPolicy, >3 -> round robin over pods with a
    free slot, 0 -> two random choices). None: held in the activator's queue."""
    in_flight = [0] * pods
    rng = random.Random(seed)
    picks = []
    for _ in range(jobs):
        free = [
            p
            for p in range(pods)
            if not container_concurrency or in_flight[p] < container_concurrency
        ]
        if not free:
            picks.append(None)
            continue
        if container_concurrency == 0:
            a, b = rng.sample(range(pods), 2)
            pick = a if in_flight[a] <= in_flight[b] else b
        else:  # first available (round robin starts at 0 too, for a fresh throttler)
            pick = free[0]
        in_flight[pick] += 1
        picks.append(pick)
    return picks


def test_knative_hands_each_job_to_an_idle_pod():
    docs = render("knative")
    isvc = isvc_of(docs)
    predictor = isvc["spec"]["predictor"]
    assert "serving.kserve.io/autoscalerClass" not in isvc["metadata"]["annotations"]
    assert "autoScaling" not in predictor
    cc = predictor["containerConcurrency"]
    assert cc == 1
    # three jobs, three idle pods: one each; a fourth waits in the activator, not behind a job
    assert activator_picks(cc, pods=3, jobs=4) == [0, 1, 2, None]
    # what 1 + max_queue would do: the first pod takes its queue's worth while the others idle
    max_queue = int(arg(isvc_container(docs), "--max_queue"))
    assert activator_picks(1 + max_queue, pods=3, jobs=3) == [0, 0, 0]


def test_knative_keeps_the_activator_in_the_path_and_targets_one_job_per_pod():
    predictor = predictor_of(render("knative"))
    annotations = predictor["annotations"]
    # autoscaler.go: TBC -1 -> excess burst capacity -1 < 0, so kpa.go keeps the SKS in Proxy mode:
    # the activator, not the gateway's round robin, picks the pod at every load
    assert annotations["autoscaling.knative.dev/target-burst-capacity"] == "-1"
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 1)
    # KServe writes scaleTarget as autoscaling.knative.dev/target (SetAutoScalingAnnotations)
    revision = dict(
        annotations, **{"autoscaling.knative.dev/target": str(predictor["scaleTarget"])}
    )
    assert knative_target(predictor["containerConcurrency"], revision) == 1.0
    # without the utilization annotation Knative would keep 1/0.7 = 1.43 pods per job
    del revision["autoscaling.knative.dev/target-utilization-percentage"]
    assert knative_target(predictor["containerConcurrency"], revision) == pytest.approx(0.7)
    assert annotations["autoscaling.knative.dev/scale-down-delay"] == "5m"
    assert "scale-down-delay" not in str(
        predictor_of(render("knative", "--set", "knative.scaleDownDelay="))
    )
    assert predictor["minReplicas"] == 0  # scale to zero: the activator holds the first request


def test_knative_user_annotations_win():
    docs = render(
        "knative",
        "--set-string",
        "predictor.podAnnotations.autoscaling\\.knative\\.dev/target-burst-capacity=0",
    )
    assert predictor_of(docs)["annotations"]["autoscaling.knative.dev/target-burst-capacity"] == "0"


# ----------------------------------------------------------------------------------- routing
def route_of(docs):
    (route,) = [d for d in docs if d["kind"] in ("HTTPRoute", "VirtualService", "Ingress")]
    return route


def test_envoy_gateway_balances_the_httproute_by_least_request():
    docs = render("httproute")
    policy = one(docs, "BackendTrafficPolicy")
    validate_object(policy)
    route = one(docs, "HTTPRoute")
    assert policy["spec"]["targetRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "HTTPRoute",
            "name": route["metadata"]["name"],
        }
    ]
    # exactly LeastRequest: no slowStart (a Ready replica is warm; an idle one should get the job)
    assert policy["spec"]["loadBalancer"] == {"type": "LeastRequest"}
    assert set(policy["spec"]) == {"targetRefs", "loadBalancer"}


@pytest.mark.parametrize("api_version", ["networking.istio.io/v1", "networking.istio.io/v1beta1"])
def test_istio_balances_the_predictor_service_by_least_request(api_version):
    docs = render("virtualservice", "--set", f"route.virtualservice.apiVersion={api_version}")
    rule = one(docs, "DestinationRule")
    assert rule["apiVersion"] == api_version
    validate_object(rule)
    route = one(docs, "VirtualService")
    (destination,) = {d["destination"]["host"] for h in route["spec"]["http"] for d in h["route"]}
    # the VirtualService's short name resolves in the release namespace; the rule names the FQDN
    assert rule["spec"]["host"] == f"{destination}.{NAMESPACE}.svc.cluster.local"
    assert rule["spec"]["trafficPolicy"] == {"loadBalancer": {"simple": "LEAST_REQUEST"}}


def test_ingress_nginx_is_pinned_to_round_robin():
    """ingress-nginx's ewma ranks two random endpoints by past response times only; a busy replica
    answering fast 503s would look best. It has no least-request balancer."""
    annotations = route_of(render("ingress"))["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/load-balance"] == "round_robin"
    knative = route_of(render("knative", "--set", "route.kind=ingress"))
    assert "nginx.ingress.kubernetes.io/load-balance" not in knative["metadata"]["annotations"]


@pytest.mark.parametrize("route", ["httproute", "virtualservice", "ingress", "none"])
def test_least_request_objects_follow_the_route_and_the_switch(route):
    extra = ["--set", f"route.kind={route}", "--set", "route.hosts[0]=sam2.example.com"]
    kinds = {d["kind"] for d in render("default", *extra)}
    expected = {"httproute": {"BackendTrafficPolicy"}, "virtualservice": {"DestinationRule"}}
    assert kinds & {"BackendTrafficPolicy", "DestinationRule"} == expected.get(route, set())
    off = {d["kind"] for d in render("default", *extra, "--set", "route.leastRequest=false")}
    assert not off & {"BackendTrafficPolicy", "DestinationRule"}


@pytest.mark.parametrize("route", ["virtualservice", "ingress"])
def test_knative_mode_leaves_balancing_to_the_activator(route):
    docs = render("knative", "--set", f"route.kind={route}")
    assert not by_kind(docs, "BackendTrafficPolicy") and not by_kind(docs, "DestinationRule")


# ------------------------------------------------------------------------- scale-down and drains
def grace_of(docs):
    return int(arg(isvc_container(docs), "--grace_period"))


@pytest.mark.parametrize("variant", STANDARD_VARIANTS)
def test_autoscaled_pods_outlive_their_jobs(variant):
    """The ReplicaSet removes whichever pods rank first, busy or not: when the autoscaler can remove
    pods, each gets the request deadline to finish what it admitted (bench/capacity.md: 18-26 jobs
    cut in 4 hours with a 30 s grace)."""
    docs = render(variant)
    predictor = predictor_of(docs)
    container = isvc_container(docs)
    request_timeout = int(arg(container, "--request_timeout"))
    autoscaled = predictor["maxReplicas"] > predictor["minReplicas"]
    explicit = variant == "keda"  # sets server.gracePeriodSeconds: 600
    if autoscaled and not explicit:
        assert grace_of(docs) == request_timeout
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert predictor["terminationGracePeriodSeconds"] > grace_of(docs) + sleep


def test_fixed_replicas_keep_the_short_grace():
    assert grace_of(render("default", "--set", "replicas.max=1")) == 30
    assert grace_of(render("default", "--set", "autoscaling.class=none")) == 30
    assert grace_of(render("knative")) == 30
    assert grace_of(render("default", "--set", "server.gracePeriodSeconds=90")) == 90


# ---------------------------------------------------------------------------------- the README
def readme():
    with open(os.path.join(CHART, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_readme_capacity_rows_are_the_models():
    """The chart README's capacity summary quotes bench/capacity.md's rows verbatim, so a rerun of
    the model that changes them makes this fail until the README follows."""
    with open(os.path.join(ROOT, "bench", "capacity.md"), encoding="utf-8") as f:
        capacity = f.read()
    text = readme()
    scaling = text.split("## Scaling", 1)[1].split("\n## ", 1)[0]
    assert "../../bench/capacity.md" in scaling
    model_rows = r"\| (fixed|lognormal|tiny|small|base_plus|large) \|"
    rows = [line for line in scaling.splitlines() if re.match(model_rows, line)]
    assert len(rows) >= 12, rows
    for row in rows:
        assert row in capacity, f"not in bench/capacity.md: {row}"


def test_readme_lists_every_template():
    text = readme()
    for name in sorted(os.listdir(os.path.join(CHART, "templates"))):
        if name.endswith(".yaml"):
            assert f"`{name}`" in text, f"README's 'What it renders' misses {name}"
