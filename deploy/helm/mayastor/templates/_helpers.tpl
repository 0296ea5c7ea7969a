{{/*
Names, labels, images and endpoints shared by the templates.
*/}}

{{/* The prefix of every object's name: the release name, with "-mayastor" unless it has it. */}}
{{- define "mayastor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; call with (dict "ctx" $ "component" "io-engine"). */}}
{{- define "mayastor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mayastor
{{ include "mayastor.selectorLabels" . }}
{{- end -}}

{{/* The labels a component's pods are selected by. */}}
{{- define "mayastor.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The project's image: (dict "ctx" $ "node" true) for the node image. */}}
{{- define "mayastor.image" -}}
{{- $v := .ctx.Values.image -}}
{{- $repo := ternary $v.nodeRepo $v.repo (default false .node) -}}
{{- printf "%s/%s:%s" $v.registry $repo (default .ctx.Chart.AppVersion $v.tag) -}}
{{- end -}}

{{/* A sidecar image: (dict "ctx" $ "name" "csi-provisioner" "tag" "v5.2.0"). */}}
{{- define "mayastor.sidecarImage" -}}
{{- printf "%s/%s:%s" .ctx.Values.csi.sidecars.registry .name .tag -}}
{{- end -}}

{{/* imagePullSecrets of every pod. */}}
{{- define "mayastor.pullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* priorityClassName of every pod. */}}
{{- define "mayastor.priorityClass" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/* A service's name in the cluster's DNS: (dict "ctx" $ "service" "api-rest"). */}}
{{- define "mayastor.serviceHost" -}}
{{- printf "%s-%s.%s.svc.%s" (include "mayastor.fullname" .ctx) .service .ctx.Release.Namespace .ctx.Values.clusterDomain -}}
{{- end -}}

{{/* The core agent's REST API URL. */}}
{{- define "mayastor.restUrl" -}}
{{- printf "http://%s:%v" (include "mayastor.serviceHost" (dict "ctx" . "service" "api-rest")) .Values.agents.core.ports.rest -}}
{{- end -}}

{{/* The core agent's gRPC endpoint (io-engine registration). */}}
{{- define "mayastor.coreGrpc" -}}
{{- printf "%s:%v" (include "mayastor.serviceHost" (dict "ctx" . "service" "agent-core")) .Values.agents.core.ports.grpc -}}
{{- end -}}

{{/* The cluster store: etcd://HOST:PORT[,HOST:PORT...]; fails without one. */}}
{{- define "mayastor.storeUrl" -}}
{{- if .Values.etcd.enabled -}}
{{- printf "etcd://%s:%v" (include "mayastor.serviceHost" (dict "ctx" . "service" "etcd")) .Values.etcd.ports.client -}}
{{- else -}}
{{- if not .Values.etcd.externalEndpoints -}}
{{- fail "etcd.enabled is false: set etcd.externalEndpoints to the HOST:PORT of each member of your etcd" -}}
{{- end -}}
{{- printf "etcd://%s" (join "," .Values.etcd.externalEndpoints) -}}
{{- end -}}
{{- end -}}

{{/* A component's log level: (dict "ctx" $ "level" .Values.agents.core.logLevel). */}}
{{- define "mayastor.logLevel" -}}
{{- default .ctx.Values.logLevel .level -}}
{{- end -}}

{{/* The security context of a container that needs no privilege at all. */}}
{{- define "mayastor.restrictedContainer" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  capabilities:
    drop: ["ALL"]
  seccompProfile:
    type: RuntimeDefault
{{- end -}}
