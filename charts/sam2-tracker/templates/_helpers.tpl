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

{{/* "true" when KServe runs the predictor as a Knative Service. */}}
{{- define "sam2-tracker.serverless" -}}
{{- if eq .Values.deploymentMode "Serverless" }}true{{ end }}
{{- end }}

{{/* The checkpoint URI for weights.source=storageUri: the value, or Meta's official file for model.size. */}}
{{- define "sam2-tracker.storageUri" -}}
{{- .Values.weights.storageUri | default (printf "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_%s.pt" .Values.model.size) }}
{{- end }}

{{/* Pod termination grace period: longer than the server's drain plus the preStop sleep, plus a margin. */}}
{{- define "sam2-tracker.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.predictor.terminationGracePeriodSeconds }}
{{- add .Values.server.gracePeriodSeconds .Values.lifecycle.preStopSleepSeconds 15 }}
{{- else }}
{{- .Values.predictor.terminationGracePeriodSeconds }}
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
- --max_queue={{ int64 .Values.server.maxQueue }}
- --request_timeout={{ int64 .Values.server.requestTimeoutSeconds }}
- --grace_period={{ int64 .Values.server.gracePeriodSeconds }}
- --spool_dir={{ .Values.server.spoolDir }}
{{- range .Values.server.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Checks that JSON Schema cannot express (values.schema.json has the types and ranges). Collects every
mistake, then fails once with all of them.
*/}}
{{- define "sam2-tracker.validateValues" -}}
{{- $errors := list }}
{{- $v := .Values }}
{{- $serverless := eq (include "sam2-tracker.serverless" .) "true" }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" (include "sam2-tracker.fullname" .)) }}
{{- $errors = append $errors (printf "the full name %q must be a DNS-1035 label (lower case, starting with a letter): set fullnameOverride" (include "sam2-tracker.fullname" .)) }}
{{- end }}
{{- if and (eq $v.weights.source "pvc") (not $v.weights.pvc.claimName) }}
{{- $errors = append $errors "weights.source=pvc needs weights.pvc.claimName" }}
{{- end }}
{{- if gt (int $v.server.requestTimeoutSeconds) (int $v.predictor.timeoutSeconds) }}
{{- $errors = append $errors (printf "server.requestTimeoutSeconds (%d) must not exceed predictor.timeoutSeconds (%d): the route would cut requests the server still works on" (int $v.server.requestTimeoutSeconds) (int $v.predictor.timeoutSeconds)) }}
{{- end }}
{{- $drain := add $v.server.gracePeriodSeconds $v.lifecycle.preStopSleepSeconds }}
{{- if and (not $serverless) (le (int (include "sam2-tracker.terminationGracePeriodSeconds" .)) (int $drain)) }}
{{- $errors = append $errors (printf "predictor.terminationGracePeriodSeconds (%s) must exceed server.gracePeriodSeconds + lifecycle.preStopSleepSeconds (%d), or the kubelet kills a draining job" (include "sam2-tracker.terminationGracePeriodSeconds" .) (int $drain)) }}
{{- end }}
{{- if gt (int $v.replicas.min) (int $v.replicas.max) }}
{{- $errors = append $errors (printf "replicas.min (%d) must not exceed replicas.max (%d)" (int $v.replicas.min) (int $v.replicas.max)) }}
{{- end }}
{{- if and (not $serverless) (lt (int $v.replicas.min) 1) }}
{{- $errors = append $errors "replicas.min must be at least 1 in Standard mode (scale to zero needs deploymentMode=Serverless)" }}
{{- end }}
{{- if and (not $serverless) (eq $v.autoscaling.class "hpa") (not (has $v.autoscaling.metric (list "cpu" "memory"))) }}
{{- $errors = append $errors (printf "autoscaling.metric=%s needs deploymentMode=Serverless (Knative); the HPA of Standard mode scales on cpu or memory" $v.autoscaling.metric) }}
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
{{- if $errors }}
{{- fail (printf "\n\nsam2-tracker: invalid values:\n  - %s\n" (join "\n  - " $errors)) }}
{{- end }}
{{- end }}
