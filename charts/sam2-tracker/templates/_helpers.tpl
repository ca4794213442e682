{{/* The chart name, or nameOverride. */}}
{{- define "sam2-tracker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The InferenceService's name (53 chars at most: KServe's Service `<fullname>-predictor` must fit in 63). */}}
{{- define "sam2-tracker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 53 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 53 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 53 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "sam2-tracker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels on every object. */}}
{{- define "sam2-tracker.labels" -}}
helm.sh/chart: {{ include "sam2-tracker.chart" . }}
{{ include "sam2-tracker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of the InferenceService: only what stays the same from one chart version to the next. KServe copies
them into the predictor's pod template (components/predictor.go buildObjectMeta, kserve v0.20.0), so a
changing label (helm.sh/chart, app.kubernetes.io/version) would restart the GPU pods on every chart bump.
*/}}
{{- define "sam2-tracker.stableLabels" -}}
{{ include "sam2-tracker.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: the release's identity; with app.kubernetes.io/component they select the predictor pods. */}}
{{- define "sam2-tracker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sam2-tracker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the predictor runs as. */}}
{{- define "sam2-tracker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sam2-tracker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The service image reference. */}}
{{- define "sam2-tracker.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Service KServe creates for the predictor: every route points at it, port 80. */}}
{{- define "sam2-tracker.predictorService" -}}
{{- printf "%s-predictor" (include "sam2-tracker.fullname" .) }}
{{- end }}

{{/* The predictor Service's in-cluster host name. */}}
{{- define "sam2-tracker.predictorHost" -}}
{{- printf "%s.%s.svc.cluster.local" (include "sam2-tracker.predictorService" .) .Release.Namespace }}
{{- end }}

{{/* "true" when KServe runs the predictor as a Knative Service (`Knative`, or its old name `Serverless`). */}}
{{- define "sam2-tracker.serverless" -}}
{{- if has .Values.deploymentMode (list "Knative" "Serverless") }}true{{ end }}
{{- end }}

{{/*
The serving.kserve.io/deploymentMode annotation for kserve.version (kserve/kserve pkg/constants/constants.go):
v0.15.x knows only `RawDeployment`/`Serverless`; v0.16.0 renamed them `Standard`/`Knative` and refuses every
update of an InferenceService still annotated with an old name (validateDeploymentMode; kserve#4798, fixed
in v0.17.0 by #5025, which rewrites old names); from v0.17 either works, the new names are canonical.
*/}}
{{- define "sam2-tracker.deploymentModeAnnotation" -}}
{{- $knative := eq (include "sam2-tracker.serverless" .) "true" }}
{{- if semverCompare "<0.16.0-0" (include "sam2-tracker.kserveVersion" .) }}
{{- ternary "Serverless" "RawDeployment" $knative }}
{{- else }}
{{- ternary "Knative" "Standard" $knative }}
{{- end }}
{{- end }}

{{/* kserve.version as a full semantic version (0.20 -> 0.20.0). */}}
{{- define "sam2-tracker.kserveVersion" -}}
{{- $v := toString .Values.kserve.version | trimPrefix "v" }}
{{- if regexMatch "^[0-9]+\\.[0-9]+$" $v }}{{ printf "%s.0" $v }}{{ else }}{{ $v }}{{ end }}
{{- end }}

{{/*
The InferenceService's visibility label when the chart's route is the way in: KServe then creates no public
route of its own (Standard: networking.kserve.io/visibility, httproute_reconciler.go and
kube_ingress_reconciler.go; Knative: networking.knative.dev/visibility, ingress_reconciler.go; v0.15.2 to
v0.20.0), so nothing but the chart's route exposes the pod, and nothing of KServe's can take the chart's
route over.
*/}}
{{- define "sam2-tracker.visibilityLabel" -}}
{{- if not .Values.kserve.publicRoute }}
{{- if eq (include "sam2-tracker.serverless" .) "true" }}
networking.knative.dev/visibility: cluster-local
{{- else }}
networking.kserve.io/visibility: cluster-local
{{- end }}
{{- end }}
{{- end }}

{{/* The chart's route: never `<fullname>`, the name of the top-level route KServe creates and owns. */}}
{{- define "sam2-tracker.routeName" -}}
{{- printf "%s-public" (include "sam2-tracker.fullname" .) }}
{{- end }}

{{/*
The path prefixes the route carries (one per line): the tracking door, the model's own v2 endpoints, health,
and with route.webPage the page's files and the kept videos it works on. Not `/v2` as a whole: kserve's
POST /v2/repository/models/<name>/unload empties the model registry. Not `/` as a prefix: /metrics and /docs.
*/}}
{{- define "sam2-tracker.routePaths" -}}
/track
/v2/models/{{ .Values.model.name }}
/v2/health
{{- if .Values.route.webPage }}
/videos
/web
{{- end }}
{{- end }}

{{/* The exact paths the route carries besides: the web page at `/` (model/http_page.py). */}}
{{- define "sam2-tracker.routeExactPaths" -}}
{{- if .Values.route.webPage }}/{{ end }}
{{- end }}

{{/* A Kubernetes quantity as a plain number (bytes or cores), for comparisons: "16Gi" -> 17179869184. */}}
{{- define "sam2-tracker.quantity" -}}
{{- $q := toString . | trim }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $scale := dict "" 1.0 "m" 0.001 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 }}
{{- $suffix := trimPrefix $number $q }}
{{- if or (not $number) (not (hasKey $scale $suffix)) }}
{{- fail (printf "sam2-tracker: %q is not a quantity this chart understands (e.g. 500m, 2, 512Mi, 16Gi)" $q) }}
{{- end }}
{{- mulf (float64 $number) (get $scale $suffix) }}
{{- end }}

{{/* MiB the server may write under /tmp: the spooled uploads of the running and the queued jobs (a place in
line is taken before an upload is read), the kept videos (--video_cache_mb), and caches. */}}
{{- define "sam2-tracker.scratchMi" -}}
{{- add (mul (add 1 .Values.server.maxQueue) .Values.server.maxUploadMb) .Values.server.videoCacheMb .Values.tmp.cacheMb }}
{{- end }}

{{/* The /tmp emptyDir's sizeLimit: tmp.sizeLimit, or the scratch space plus 25 %. */}}
{{- define "sam2-tracker.tmpSizeLimit" -}}
{{- if .Values.tmp.sizeLimit }}
{{- .Values.tmp.sizeLimit }}
{{- else }}
{{- printf "%dMi" (div (mul (int (include "sam2-tracker.scratchMi" .)) 5) 4) }}
{{- end }}
{{- end }}

{{/*
The container's ephemeral-storage (request = limit): everything the kubelet counts against the pod on the node
disk. The /tmp emptyDir (unless in memory), the checkpoint KServe's storage initializer downloads into its own
emptyDir (weights.source=storageUri; 1 GiB covers sam2.1_hiera_large.pt, 898 MB), and 512 MiB for container
logs. The kubelet evicts a pod past its limit; the scheduler places it where the request fits.
*/}}
{{- define "sam2-tracker.ephemeralStorage" -}}
{{- $mi := 512 }}
{{- if ne .Values.tmp.medium "Memory" }}
{{- $mi = add $mi (int (divf (include "sam2-tracker.quantity" (include "sam2-tracker.tmpSizeLimit" .)) 1048576.0 | ceil)) }}
{{- end }}
{{- if eq .Values.weights.source "storageUri" }}
{{- $mi = add $mi 1024 }}
{{- end }}
{{- printf "%dMi" (int $mi) }}
{{- end }}

{{/* The container's resources: resources, the GPU limit, and the derived ephemeral-storage (a YAML map). */}}
{{- define "sam2-tracker.resources" -}}
{{- $resources := deepCopy .Values.resources }}
{{- $requests := default dict $resources.requests }}
{{- $limits := default dict $resources.limits }}
{{- $storage := include "sam2-tracker.ephemeralStorage" . }}
{{- if not (hasKey $requests "ephemeral-storage") }}{{ $_ := set $requests "ephemeral-storage" $storage }}{{ end }}
{{- if not (hasKey $limits "ephemeral-storage") }}{{ $_ := set $limits "ephemeral-storage" $storage }}{{ end }}
{{- if gt (int .Values.gpu.count) 0 }}
{{- $_ := set $limits .Values.gpu.resourceName (int .Values.gpu.count) }}
{{- end }}
{{- toYaml (dict "requests" $requests "limits" $limits) }}
{{- end }}

{{/*
The Deployment strategy in Standard mode: predictor.deploymentStrategy, or for GPU pods one replaced at a
time with no surge. KServe's default is RollingUpdate 25 %/25 % (deployment_reconciler.go
setDefaultDeploymentSpec, v0.20.0): with one replica that is a surge of 1 and 0 unavailable, a second GPU
the cluster rarely has; the surge pod stays Pending and the rollout never finishes.
*/}}
{{- define "sam2-tracker.deploymentStrategy" -}}
{{- if .Values.predictor.deploymentStrategy }}
{{- toYaml .Values.predictor.deploymentStrategy }}
{{- else if gt (int .Values.gpu.count) 0 }}
type: RollingUpdate
rollingUpdate:
  maxSurge: 0
  maxUnavailable: 1
{{- end }}
{{- end }}

{{/* Seconds the startup probe allows before the container is restarted. */}}
{{- define "sam2-tracker.startupBudgetSeconds" -}}
{{- mul .Values.probes.startup.periodSeconds .Values.probes.startup.failureThreshold }}
{{- end }}

{{/* Seconds the helm test waits: test.timeoutSeconds, or 120, or a Knative cold start's budget. */}}
{{- define "sam2-tracker.testTimeoutSeconds" -}}
{{- if not (kindIs "invalid" .Values.test.timeoutSeconds) }}
{{- .Values.test.timeoutSeconds }}
{{- else if and (eq (include "sam2-tracker.serverless" .) "true") (eq (int .Values.replicas.min) 0) }}
{{- add (include "sam2-tracker.startupBudgetSeconds" .) 60 }}
{{- else }}
{{- 120 }}
{{- end }}
{{- end }}

{{/*
The gateway namespaces the NetworkPolicy admits: the value, or where the usual proxy for route.kind runs (Envoy
Gateway runs the proxies of every Gateway in its own namespace, envoy-gateway-system, by default:
envoyproxy/gateway site/content/en/latest/user/operations/deployment-mode.md). Knative mode always passes
through Knative's local gateway. Empty (Standard mode, route.kind=none): no gateway is admitted.
*/}}
{{- define "sam2-tracker.gatewayNamespaceSelector" -}}
{{- if .Values.networkPolicy.gateway.namespaceSelector }}
{{- toYaml .Values.networkPolicy.gateway.namespaceSelector }}
{{- else }}
{{- $byKind := dict "httproute" "envoy-gateway-system" "virtualservice" "istio-system" "ingress" "ingress-nginx" }}
{{- $ns := get $byKind .Values.route.kind }}
{{- if eq (include "sam2-tracker.serverless" .) "true" }}{{ $ns = default "istio-system" $ns }}{{ end }}
{{- with $ns }}
matchLabels:
  kubernetes.io/metadata.name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The checkpoint URI for weights.source=storageUri: the value, or Meta's official file for model.size. */}}
{{- define "sam2-tracker.storageUri" -}}
{{- .Values.weights.storageUri | default (printf "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_%s.pt" .Values.model.size) }}
{{- end }}

{{/*
"true" when the autoscaler may remove pods in Standard mode (replicas.max above replicas.min, an autoscaler
class that scales). Each removal sends SIGTERM to a pod that may be running a job.
*/}}
{{- define "sam2-tracker.autoscaled" -}}
{{- if and (ne (include "sam2-tracker.serverless" .) "true") (ne .Values.autoscaling.class "none") (gt (int .Values.replicas.max) (int .Values.replicas.min)) }}true{{ end }}
{{- end }}

{{/*
Seconds the server lets its admitted jobs finish after SIGTERM (--grace_period): server.gracePeriodSeconds, or,
when the autoscaler removes pods, the request deadline. A ReplicaSet scales down whichever pods rank first
(not the idle ones), and jobs take longer than 30 s: bench/capacity.md counts 18-26 jobs cut in 4 hours
with 30 s. A job ends at the latest --request_timeout after its upload is in (model/job.py: the deadline
starts there, queueing included) and the draining server admits none, so only an upload still arriving at
SIGTERM can outlast this grace. Knative mode: the queue-proxy drains first (the user container's preStop waits
for it, knative/serving pkg/reconciler/revision/resources/deploy.go), so the server gets SIGTERM when idle.
*/}}
{{- define "sam2-tracker.gracePeriodSeconds" -}}
{{- if not (kindIs "invalid" .Values.server.gracePeriodSeconds) }}
{{- int .Values.server.gracePeriodSeconds }}
{{- else if eq (include "sam2-tracker.autoscaled" .) "true" }}
{{- int .Values.server.requestTimeoutSeconds }}
{{- else }}
{{- 30 }}
{{- end }}
{{- end }}

{{/* Pod termination grace period: longer than the server's drain plus the preStop sleep, plus a margin. */}}
{{- define "sam2-tracker.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.predictor.terminationGracePeriodSeconds }}
{{- add (include "sam2-tracker.gracePeriodSeconds" .) .Values.lifecycle.preStopSleepSeconds 15 }}
{{- else }}
{{- .Values.predictor.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
Knative mode: containerConcurrency, the jobs the queue-proxy lets into one pod. 1 unless set. Knative's
activator balances by it (knative/serving pkg/activator/net/throttler.go newRevisionThrottler, knative-v1.23.0):
0 -> two random choices on its own counts; 1..3 -> the first pod with a free slot; more -> round robin over
pods with a free slot. Only with 1 is "a free slot" "idle": with 3 (1 + max_queue) the first pod takes three
jobs while the next idles. The waiting jobs queue in the activator instead (up to 10000 per revision).
*/}}
{{- define "sam2-tracker.containerConcurrency" -}}
{{- if kindIs "invalid" .Values.predictor.containerConcurrency }}1{{ else }}{{ int .Values.predictor.containerConcurrency }}{{ end }}
{{- end }}

{{/*
Knative mode: the revision annotations that make the activator the balancer and the queue (knative/serving
pkg/apis/autoscaling/register.go, knative-v1.23.0). target-burst-capacity -1 keeps the activator in the path
at any load (pkg/autoscaler/scaling/autoscaler.go: excess burst capacity -1, so pkg/reconciler/autoscaling/
kpa/kpa.go never switches the revision to Serve mode, where the gateway would round-robin straight to the
pods). target-utilization-percentage 100: the target is scaleTarget x this (pkg/reconciler/autoscaling/
resources/target.go ResolveMetricTarget; default 70 %, which would keep 1.43 pods per job in flight).
KServe copies spec.predictor.annotations onto the revision template (components/predictor.go
buildObjectMeta, reconcilers/knative/ksvc_reconciler.go createKnativeService, v0.17.0).
*/}}
{{- define "sam2-tracker.knativeAnnotations" -}}
autoscaling.knative.dev/target-burst-capacity: "-1"
autoscaling.knative.dev/target-utilization-percentage: "100"
{{- with .Values.knative.scaleDownDelay }}
autoscaling.knative.dev/scale-down-delay: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The PromQL KEDA asks Prometheus: jobs in flight + queued over this release's serving predictor pods, one number
(KEDA's prometheus scaler refuses a result with more than one element and reads an empty one as 0: pkg/scalers/
prometheus_scaler.go, kedacore/keda v2.17.3). The pods of KServe's Deployment `<isvc>-predictor` are named
`<isvc>-predictor-<template hash>-<suffix>`; `max by (pod)` counts a pod once when two scrapes see it. The
product with sam2_tracker_model_ready (0 from SIGTERM on, model/predictor.py start_draining) leaves out the
jobs of draining pods: they end where they are and need no new replica, and with the long grace of an
autoscaled release they would otherwise hold a replica for up to a request deadline after each scale-down.
*/}}
{{- define "sam2-tracker.kedaQuery" -}}
{{- if .Values.autoscaling.keda.query }}
{{- .Values.autoscaling.keda.query }}
{{- else }}
{{- $selector := printf "{namespace=%q,pod=~%q}" .Release.Namespace (printf "%s-[a-z0-9]+-[a-z0-9]+" (include "sam2-tracker.predictorService" .)) }}
{{- printf "sum(max by (pod) ((sam2_tracker_jobs_in_flight%s + sam2_tracker_queue_depth%s) * sam2_tracker_model_ready%s))" $selector $selector $selector }}
{{- end }}
{{- end }}

{{/*
spec.predictor.autoScaling in Standard mode (a YAML map, or nothing; Knative mode: nothing): autoscaling.autoScalingSpec, or for keda
one External metric that KServe turns into the ScaledObject's prometheus trigger (kserve v0.17.0
pkg/apis/serving/v1beta1/component.go ExternalMetricSource; reconcilers/keda/keda_reconciler.go getKedaMetrics:
threshold = target.value, no metricType, so KEDA's default AverageValue: replicas = ceil(query / threshold)).
The webhook wants target.value set and a query (inference_service_validation.go
validateScalingKedaCompExtension). behavior and authenticationRef exist from v0.16.0; of behavior, the KEDA
reconciler keeps only the stabilization windows.
*/}}
{{- define "sam2-tracker.autoScalingSpec" -}}
{{- $a := .Values.autoscaling }}
{{- if eq (include "sam2-tracker.serverless" .) "true" }}
{{- else if $a.autoScalingSpec }}
{{- toYaml $a.autoScalingSpec }}
{{- else if eq $a.class "keda" }}
{{- $metric := dict "backend" "prometheus" "serverAddress" $a.keda.serverAddress "query" (include "sam2-tracker.kedaQuery" .) }}
{{- with $a.keda.namespace }}{{ $_ := set $metric "namespace" . }}{{ end }}
{{- $external := dict "metric" $metric "target" (dict "type" "Value" "value" (toString (int $a.targetJobsPerReplica))) }}
{{- with $a.keda.authenticationRef }}
{{- $auth := dict "authenticationRef" (dict "name" .) }}
{{- with $a.keda.authModes }}{{ $_ := set $auth "authModes" . }}{{ end }}
{{- $_ := set $external "authenticationRef" $auth }}
{{- end }}
{{- $spec := dict "metrics" (list (dict "type" "External" "external" $external)) }}
{{- if not (kindIs "invalid" $a.scaleDownStabilizationSeconds) }}
{{- $_ := set $spec "behavior" (dict "scaleDown" (dict "stabilizationWindowSeconds" (int $a.scaleDownStabilizationSeconds))) }}
{{- end }}
{{- toYaml $spec }}
{{- end }}
{{- end }}

{{/* The server's command-line flags (a YAML list). */}}
{{- define "sam2-tracker.args" -}}
- --model_name={{ .Values.model.name }}
- --model_size={{ .Values.model.size }}
- --model_dir=/mnt/models
{{- with .Values.weights.checkpointFile }}
- --checkpoint=/mnt/models/{{ . }}
{{- end }}
{{- if gt (int .Values.model.imageSize) 0 }}
- --image_size={{ int64 .Values.model.imageSize }}
{{- end }}
- --device={{ .Values.model.device }}
{{- if .Values.model.compile }}
- --compile
{{- end }}
- --http_port={{ int64 .Values.server.httpPort }}
- --grpc_port={{ int64 .Values.server.grpcPort }}
- --max_upload_mb={{ int64 .Values.server.maxUploadMb }}
- --max_frames={{ int64 .Values.server.maxFrames }}
- --max_pixels={{ int64 .Values.server.maxPixels }}
- --max_points={{ int64 .Values.server.maxPoints }}
- --max_objects={{ int64 .Values.server.maxObjects }}
- --max_queue={{ int64 .Values.server.maxQueue }}
- --request_timeout={{ int64 .Values.server.requestTimeoutSeconds }}
- --grace_period={{ include "sam2-tracker.gracePeriodSeconds" . }}
- --spool_dir={{ .Values.server.spoolDir }}
- --video_cache_mb={{ int64 .Values.server.videoCacheMb }}
- --video_cache_ttl={{ int64 .Values.server.videoCacheTtlSeconds }}
{{- range .Values.server.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Checks that JSON Schema cannot express (values.schema.json has the types and ranges). Collects every
mistake, then fails once with all of them. The Knative-mode checks are what Knative or KServe would refuse
only after `helm install` reported success (the InferenceService then never becomes Ready).
*/}}
{{- define "sam2-tracker.validateValues" -}}
{{- $errors := list }}
{{- $v := .Values }}
{{- $serverless := eq (include "sam2-tracker.serverless" .) "true" }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" (include "sam2-tracker.fullname" .)) }}
{{- $errors = append $errors (printf "the full name %q must be a DNS-1035 label (lower case, starting with a letter): set fullnameOverride" (include "sam2-tracker.fullname" .)) }}
{{- end }}
{{- if semverCompare "<0.15.0-0" (include "sam2-tracker.kserveVersion" .) }}
{{- $errors = append $errors (printf "kserve.version=%v: this chart supports KServe 0.15 and later" $v.kserve.version) }}
{{- end }}
{{- if and (eq $v.weights.source "pvc") (not $v.weights.pvc.claimName) }}
{{- $errors = append $errors "weights.source=pvc needs weights.pvc.claimName" }}
{{- end }}
{{- if gt (int $v.server.requestTimeoutSeconds) (int $v.predictor.timeoutSeconds) }}
{{- $errors = append $errors (printf "server.requestTimeoutSeconds (%d) must not exceed predictor.timeoutSeconds (%d): the route would cut requests the server still works on" (int $v.server.requestTimeoutSeconds) (int $v.predictor.timeoutSeconds)) }}
{{- end }}
{{- $drain := add (include "sam2-tracker.gracePeriodSeconds" .) $v.lifecycle.preStopSleepSeconds }}
{{- if and (not $serverless) (le (int (include "sam2-tracker.terminationGracePeriodSeconds" .)) (int $drain)) }}
{{- $errors = append $errors (printf "predictor.terminationGracePeriodSeconds (%s) must exceed server.gracePeriodSeconds + lifecycle.preStopSleepSeconds (%d), or the kubelet kills a draining job" (include "sam2-tracker.terminationGracePeriodSeconds" .) (int $drain)) }}
{{- end }}
{{- if gt (int $v.replicas.min) (int $v.replicas.max) }}
{{- $errors = append $errors (printf "replicas.min (%d) must not exceed replicas.max (%d)" (int $v.replicas.min) (int $v.replicas.max)) }}
{{- end }}
{{- if and (not $serverless) (lt (int $v.replicas.min) 1) }}
{{- $errors = append $errors "replicas.min must be at least 1 in Standard mode: the KEDA trigger reads gauges the pods export, and with no pod nothing would ever scale the Deployment up again (scale to zero needs deploymentMode=Knative, where the activator holds requests while a pod starts)" }}
{{- end }}
{{- /* autoscaling: what KServe's webhook and controller accept (kserve pkg/constants/constants.go
       AutoscalerAllowedClassList: `none` from v0.15.2; component.go: behavior, authenticationRef from v0.16.0) */}}
{{- if not $serverless }}
{{- if and (eq $v.autoscaling.class "none") (semverCompare "<0.15.2-0" (include "sam2-tracker.kserveVersion" .)) }}
{{- $errors = append $errors (printf "autoscaling.class=none needs KServe 0.15.2 or later (kserve.version=%v); 0.15.0 refuses it (\"[none] is not a supported autoscaler class type\")" $v.kserve.version) }}
{{- end }}
{{- if and (eq $v.autoscaling.class "keda") (semverCompare "<0.16.0-0" (include "sam2-tracker.kserveVersion" .)) (not $v.autoscaling.autoScalingSpec) }}
{{- if $v.autoscaling.keda.authenticationRef }}
{{- $errors = append $errors (printf "autoscaling.keda.authenticationRef needs KServe 0.16 or later (kserve.version=%v): 0.15's InferenceService has no autoScaling...authenticationRef" $v.kserve.version) }}
{{- end }}
{{- if not (kindIs "invalid" $v.autoscaling.scaleDownStabilizationSeconds) }}
{{- $errors = append $errors (printf "autoscaling.scaleDownStabilizationSeconds needs KServe 0.16 or later (kserve.version=%v): 0.15's InferenceService has no autoScaling.behavior" $v.kserve.version) }}
{{- end }}
{{- end }}
{{- if and (eq $v.autoscaling.class "keda") (not $v.autoscaling.autoScalingSpec) (not $v.autoscaling.keda.query) (not $v.monitoring.enabled) }}
{{- $errors = append $errors "autoscaling.class=keda reads the sam2_tracker_* gauges from Prometheus: set monitoring.enabled=true (the chart's PodMonitor), or, when your Prometheus scrapes the pods otherwise, your own autoscaling.keda.query; without KEDA and Prometheus use autoscaling.class=hpa" }}
{{- end }}
{{- if and (eq $v.autoscaling.class "keda") $v.autoscaling.keda.authModes (not $v.autoscaling.keda.authenticationRef) }}
{{- $errors = append $errors "autoscaling.keda.authModes needs autoscaling.keda.authenticationRef (the TriggerAuthentication holding the credentials)" }}
{{- end }}
{{- if and (eq $v.autoscaling.class "hpa") (eq $v.autoscaling.hpa.metric "cpu") (gt (int $v.autoscaling.hpa.target) 100) }}
{{- $errors = append $errors (printf "autoscaling.hpa.target (%d) is a CPU utilisation percentage: KServe's webhook wants 1-100" (int $v.autoscaling.hpa.target)) }}
{{- end }}
{{- end }}
{{- /* resources: KServe's webhook fills a missing limit with its default (1 CPU, 2Gi), below our requests */}}
{{- range $name := list "cpu" "memory" }}
{{- $request := index (default dict $v.resources.requests) $name }}
{{- $limit := index (default dict $v.resources.limits) $name }}
{{- if not $limit }}
{{- $errors = append $errors (printf "resources.limits.%s is required: KServe's webhook fills a missing one from its inferenceservice-config (cpu 1, memory 2Gi), which is below resources.requests.%s, and the predictor's Deployment is then refused" $name $name) }}
{{- else if and $request (lt (float64 (include "sam2-tracker.quantity" $limit)) (float64 (include "sam2-tracker.quantity" $request))) }}
{{- $errors = append $errors (printf "resources.limits.%s (%v) must be at least resources.requests.%s (%v)" $name $limit $name $request) }}
{{- end }}
{{- end }}
{{- $storageRequest := index (default dict $v.resources.requests) "ephemeral-storage" }}
{{- $storageLimit := index (default dict $v.resources.limits) "ephemeral-storage" }}
{{- if and $storageRequest $storageLimit (lt (float64 (include "sam2-tracker.quantity" $storageLimit)) (float64 (include "sam2-tracker.quantity" $storageRequest))) }}
{{- $errors = append $errors (printf "resources.limits.ephemeral-storage (%v) must be at least resources.requests.ephemeral-storage (%v)" $storageLimit $storageRequest) }}
{{- end }}
{{- /* /tmp: what the server may write must fit, or the kubelet evicts the pod */}}
{{- $scratchMi := int (include "sam2-tracker.scratchMi" .) }}
{{- $tmpMi := divf (include "sam2-tracker.quantity" (include "sam2-tracker.tmpSizeLimit" .)) 1048576.0 }}
{{- if lt $tmpMi (float64 $scratchMi) }}
{{- $errors = append $errors (printf "tmp.sizeLimit (%v) is below what the server may write to /tmp: (1 + server.maxQueue) x server.maxUploadMb + server.videoCacheMb + tmp.cacheMb = %d MiB; the kubelet would evict the pod with every job on it (leave tmp.sizeLimit empty to derive it)" $v.tmp.sizeLimit $scratchMi) }}
{{- end }}
{{- if and $storageLimit (ne $v.tmp.medium "Memory") (lt (divf (include "sam2-tracker.quantity" $storageLimit) 1048576.0) $tmpMi) }}
{{- $errors = append $errors (printf "resources.limits.ephemeral-storage (%v) is below the /tmp sizeLimit (%s)" $storageLimit (include "sam2-tracker.tmpSizeLimit" .)) }}
{{- end }}
{{- if and (eq $v.tmp.medium "Memory") (index (default dict $v.resources.limits) "memory") }}
{{- $memoryMi := divf (include "sam2-tracker.quantity" $v.resources.limits.memory) 1048576.0 }}
{{- $processMi := divf (include "sam2-tracker.quantity" (index (default dict $v.resources.requests) "memory" | default "0")) 1048576.0 }}
{{- if lt $memoryMi (addf $processMi $tmpMi) }}
{{- $errors = append $errors (printf "tmp.medium=Memory counts /tmp (%s) against resources.limits.memory (%v), which must cover resources.requests.memory plus /tmp" (include "sam2-tracker.tmpSizeLimit" .) $v.resources.limits.memory) }}
{{- end }}
{{- end }}
{{- if and (eq (int $v.gpu.count) 0) (eq $v.model.device "cuda") }}
{{- $errors = append $errors "model.device=cuda needs gpu.count > 0" }}
{{- end }}
{{- if and (gt (int $v.gpu.count) 0) (eq $v.model.device "cpu") }}
{{- $errors = append $errors "model.device=cpu with gpu.count > 0 would hold a GPU it never uses: set gpu.count=0" }}
{{- end }}
{{- if and (ne $v.route.kind "none") (ne $v.route.kind "httproute") (empty $v.route.hosts) }}
{{- $errors = append $errors (printf "route.kind=%s needs route.hosts" $v.route.kind) }}
{{- end }}
{{- if and (eq $v.route.kind "httproute") (empty $v.route.httproute.parentRefs) }}
{{- $errors = append $errors "route.kind=httproute needs route.httproute.parentRefs (the Gateway to attach to)" }}
{{- end }}
{{- if and (eq $v.route.kind "virtualservice") (empty $v.route.virtualservice.gateways) }}
{{- $errors = append $errors "route.kind=virtualservice needs route.virtualservice.gateways" }}
{{- end }}
{{- if and $v.monitoring.enabled (eq $v.monitoring.kind "ServiceMonitor") $serverless }}
{{- $errors = append $errors "monitoring.kind=ServiceMonitor needs deploymentMode=Standard (Knative's Services front the queue-proxy): use PodMonitor" }}
{{- end }}
{{- if $serverless }}
{{- /* knative/serving pkg/apis/serving/v1/revision_validation.go validateTimeoutSeconds; config-defaults */}}
{{- if gt (int $v.predictor.timeoutSeconds) (int $v.knative.maxRevisionTimeoutSeconds) }}
{{- $errors = append $errors (printf "deploymentMode=Knative: predictor.timeoutSeconds (%d) exceeds knative.maxRevisionTimeoutSeconds (%d), and Knative refuses the revision (its max-revision-timeout-seconds is 600 unless your cluster raised it in config-defaults: then set knative.maxRevisionTimeoutSeconds to that value), or lower predictor.timeoutSeconds and server.requestTimeoutSeconds" (int $v.predictor.timeoutSeconds) (int $v.knative.maxRevisionTimeoutSeconds)) }}
{{- end }}
{{- $cc := int (include "sam2-tracker.containerConcurrency" .) }}
{{- if or (lt $cc 1) (gt $cc (add 1 (int $v.server.maxQueue))) }}
{{- $errors = append $errors (printf "deploymentMode=Knative: predictor.containerConcurrency (%d) must be 1 to 1 + server.maxQueue (%d): 0 lets every request into the pod, where the server refuses all but 1 + server.maxQueue with 503, and more than that the activator counts as free slots the server refuses; leave it null (1) so the activator queues and hands each job to an idle pod" $cc (add 1 (int $v.server.maxQueue))) }}
{{- end }}
{{- if $v.autoscaling.autoScalingSpec }}
{{- $errors = append $errors "deploymentMode=Knative: autoscaling.autoScalingSpec configures HPA/KEDA (Standard mode); Knative's autoscaler scales on concurrency (autoscaling.targetJobsPerReplica)" }}
{{- end }}
{{- if $v.predictor.deploymentStrategy }}
{{- $errors = append $errors "deploymentMode=Knative: predictor.deploymentStrategy is refused by KServe's webhook (\"customizing deploymentStrategy is only supported for raw deployment mode\"); Knative rolls revisions itself" }}
{{- end }}
{{- /* gateway-api httproutes CRD, backendRef: "Implementations SHOULD NOT support ExternalName Services" */}}
{{- if eq $v.route.kind "httproute" }}
{{- $errors = append $errors "deploymentMode=Knative with route.kind=httproute: the predictor Service is Knative's ExternalName Service, which Envoy Gateway refuses as an HTTPRoute backend (envoyproxy/gateway#5817: 503, no endpoints); use route.kind=virtualservice (or ingress)" }}
{{- end }}
{{- end }}
{{- if $errors }}
{{- fail (printf "\n\nsam2-tracker: invalid values:\n  - %s\n" (join "\n  - " $errors)) }}
{{- end }}
{{- end }}
