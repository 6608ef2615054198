{{/*
Names, labels and checks shared by every template of the gantry chart.
*/}}

{{- define "gantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: "<release>-gantry", or the release name when it already holds "gantry". */}}
{{- define "gantry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gantry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gantry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gantry.labels" -}}
helm.sh/chart: {{ include "gantry.chart" . }}
{{ include "gantry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gantry
{{- end -}}

{{- define "gantry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gantry.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gantry.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Cross-field checks values.schema.json cannot express. Each fails the render
with a message naming the values to change.
*/}}
{{- define "gantry.validate" -}}
{{- $p := .Values.proxy -}}
{{- $need := add (int $p.preStopSleepSeconds) (int $p.drainSeconds) -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $need) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed proxy.preStopSleepSeconds + proxy.drainSeconds (%d): raise it, or the kubelet kills the proxy before in-flight requests finish" (int .Values.terminationGracePeriodSeconds) (int $need)) -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" -}}
{{- end -}}
{{- $ports := list (int $p.httpPort) (int $p.statsPort) (int $p.adminPort) (int .Values.controller.healthPort) (int .Values.controller.adminPort) -}}
{{- if $p.https.enabled -}}{{- $ports = append $ports (int $p.https.port) -}}{{- end -}}
{{- if $p.h2c.enabled -}}{{- $ports = append $ports (int $p.h2c.port) -}}{{- end -}}
{{- if ne (len $ports) (len (uniq $ports)) -}}
{{- fail "proxy.httpPort, proxy.https.port, proxy.h2c.port, proxy.statsPort, proxy.adminPort, controller.healthPort and controller.adminPort must all differ (the containers share the pod's network)" -}}
{{- end -}}
{{- end -}}

{{/* RBAC rules for the namespaced kinds the controller reads, and the status it writes.
The narrowest verbs that work: the controller only lists and watches (never a
plain get), and writes status with a merge PATCH (never an update). Secrets: it
lists and watches TLS Secrets (fieldSelector type=kubernetes.io/tls) and, by
name, the others routes reference (docs/security.md); RBAC cannot express a
field selector, so the verbs are list and watch on secrets. */}}
{{- define "gantry.namespacedRules" -}}
# Read what routes are built from.
- apiGroups: [""]
  resources: [services, secrets]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [gantry.dev]
  resources: [gatewayroutes]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [list, watch]
# Write status only: never the spec of a user's object.
- apiGroups: [gantry.dev]
  resources: [gatewayroutes/status]
  verbs: [patch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [patch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- if .Values.gatewayAPI.enabled }}
# Gateway API (gatewayAPI.enabled): read Gateways, ListenerSets, HTTPRoutes, GRPCRoutes,
# ReferenceGrants, BackendTLSPolicies (and ConfigMaps: their CA certificates); write their status.
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways, listenersets, httproutes, grpcroutes, referencegrants, backendtlspolicies]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways/status, listenersets/status, httproutes/status, grpcroutes/status, backendtlspolicies/status]
  verbs: [patch]
# CA bundles of Gateways' client-certificate validation (caCertificateRefs).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch]
{{- if .Values.gatewayAPI.gatewayServices.enabled }}
# A Service and an EndpointSlice per Gateway (gatewayAPI.gatewayServices), written by
# server-side apply (patch; create for a new one) and deleted when their Gateway goes.
- apiGroups: [""]
  resources: [services]
  verbs: [create, patch, delete]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [create, patch, delete]
{{- end }}
{{- end }}
{{- end -}}
