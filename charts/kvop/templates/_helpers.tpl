{{/*
The chart name, or nameOverride: the app.kubernetes.io/name label.
*/}}
{{- define "kvop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources, truncated to 63 characters (the DNS label limit).
The release name alone when it already contains the chart name.
*/}}
{{- define "kvop.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A name derived from the full name: <fullname>-<suffix>, still at most 63 characters.
Usage: include "kvop.suffixedName" (list . "metrics")
*/}}
{{- define "kvop.suffixedName" -}}
{{- $ctx := index . 0 }}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "kvop.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{/*
chart-version for the helm.sh/chart label.
*/}}
{{- define "kvop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "kvop.labels" -}}
helm.sh/chart: {{ include "kvop.chart" . }}
{{ include "kvop.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kvop
{{- end }}

{{/*
Labels that identify the release's objects (selectors must not change on upgrade).
*/}}
{{- define "kvop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels that select the manager pods.
*/}}
{{- define "kvop.managerSelectorLabels" -}}
{{ include "kvop.selectorLabels" . }}
app.kubernetes.io/component: manager
{{- end }}

{{/*
The manager's ServiceAccount.
*/}}
{{- define "kvop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kvop.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The namespace of the manager's leader election Lease.
*/}}
{{- define "kvop.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/*
The manager image: repository@digest, or repository:tag (tag defaulting to appVersion).
*/}}
{{- define "kvop.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The name of the PersistentVolumeClaim holding /var/lib/kvop.
*/}}
{{- define "kvop.claimName" -}}
{{- default (include "kvop.suffixedName" (list . "data")) .Values.persistence.existingClaim }}
{{- end }}

{{/*
Fails on values that contradict each other (values.schema.json checks each value alone).
*/}}
{{- define "kvop.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicas: %d needs leaderElection.enabled: true (without it every replica would reconcile at once)" (int .Values.replicas)) }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled: true needs metrics.enabled: true (there is nothing to scrape)" }}
{{- end }}
{{- if and .Values.persistence.existingClaim (not .Values.persistence.enabled) }}
{{- fail "persistence.existingClaim is set but persistence.enabled is false: set persistence.enabled: true to mount it" }}
{{- end }}
{{- if and .Values.rbac.namespaced (not .Values.watchNamespace) }}
{{- fail "rbac.namespaced: true needs watchNamespace: a manager watching every namespace needs its rules cluster-wide" }}
{{- end }}
{{- end }}
