{{/* Names and labels. */}}
{{- define "hangar.name" -}}hangar{{- end -}}

{{- define "hangar.fullname" -}}
{{- if contains "hangar" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-hangar" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hangar.labels" -}}
app.kubernetes.io/name: hangar
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of a component: controller, node or server. */}}
{{- define "hangar.selector" -}}
app.kubernetes.io/name: hangar
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hangar.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "hangar.serverService" -}}{{ include "hangar.fullname" . }}-server{{- end -}}
{{- define "hangar.serverTLSSecret" -}}{{ .Values.tls.existingSecret.server | default (printf "%s-server-tls" (include "hangar.fullname" .)) }}{{- end -}}
{{- define "hangar.controllerTLSSecret" -}}{{ .Values.tls.existingSecret.controller | default (printf "%s-controller-tls" (include "hangar.fullname" .)) }}{{- end -}}

{{- define "hangar.logArgs" -}}
- --v={{ .Values.logLevel }}
- --log-format={{ .Values.logFormat }}
{{- end -}}

{{- define "hangar.tlsArgs" -}}
- --tls-ca=/tls/ca.crt
- --tls-cert=/tls/tls.crt
- --tls-key=/tls/tls.key
{{- end -}}

{{- define "hangar.restricted" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* Lease timing of the controller's leader-elected sidecars. */}}
{{- define "hangar.leaderElectionArgs" -}}
{{- $l := .Values.controller.leaderElection -}}
- --leader-election-lease-duration={{ $l.leaseDuration }}
- --leader-election-renew-deadline={{ $l.renewDeadline }}
- --leader-election-retry-period={{ $l.retryPeriod }}
{{- end }}
