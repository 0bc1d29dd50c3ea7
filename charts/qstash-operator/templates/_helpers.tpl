{{/*
The chart's name: `nameOverride` or the chart name. Truncated to 63 characters because some
Kubernetes name fields are limited to that (DNS labels).
*/}}
{{- define "qstash-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name: `fullnameOverride`, else `<release>-<name>` (or just the release
name when it already contains the chart name). Truncated to 63 characters for DNS labels.
*/}}
{{- define "qstash-operator.fullname" -}}
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

{{/*
Per-component names: the fullname cut to 54 characters so the longest suffix ("-operator", 9
characters) still fits in 63.
*/}}
{{- define "qstash-operator.operator.fullname" -}}
{{- printf "%s-operator" (include "qstash-operator.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{- define "qstash-operator.webhook.fullname" -}}
{{- printf "%s-webhook" (include "qstash-operator.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{/*
The namespace everything namespaced goes to. Written on every object (not left to `helm install
-n`) so `helm template | kubectl apply` lands in the same place as `helm install`.
*/}}
{{- define "qstash-operator.namespace" -}}
{{- .Release.Namespace -}}
{{- end -}}

{{/*
`name-version` of the chart, for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "qstash-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels on every object: the recommended app.kubernetes.io set plus global.commonLabels.
Call with the root context.
*/}}
{{- define "qstash-operator.labels" -}}
helm.sh/chart: {{ include "qstash-operator.chart" . }}
app.kubernetes.io/name: {{ include "qstash-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qstash-operator
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Selector labels of one component; never change them for a release (Deployment selectors are
immutable). Call with (dict "root" $ "component" "operator").
*/}}
{{- define "qstash-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qstash-operator.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Labels of one component's objects: the common labels plus the component.
Call with (dict "root" $ "component" "operator").
*/}}
{{- define "qstash-operator.componentLabels" -}}
{{ include "qstash-operator.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
ServiceAccount names: the configured name, else `<fullname>-<component>` when the chart creates
it, else "default".
*/}}
{{- define "qstash-operator.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "qstash-operator.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "qstash-operator.webhook.serviceAccountName" -}}
{{- if .Values.webhook.serviceAccount.create -}}
{{- default (include "qstash-operator.webhook.fullname" .) .Values.webhook.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.webhook.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The image reference: registry/repository, then @digest or :tag (default: the appVersion).
Call with the root context.
*/}}
{{- define "qstash-operator.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .Values.image.registry) .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
"true" when QStash is configured (a token inline or an existing Secret), else "". Also checks
the combinations that cannot work, so a broken release fails at `helm install`, not in a pod.
*/}}
{{- define "qstash-operator.qstashEnabled" -}}
{{- $q := .Values.qstash -}}
{{- if and $q.existingSecret (or $q.token $q.currentSigningKey $q.nextSigningKey) -}}
{{- fail "qstash.existingSecret is set: leave qstash.token, qstash.currentSigningKey and qstash.nextSigningKey empty (the Secret holds them)" -}}
{{- end -}}
{{- if and (not $q.token) (or $q.currentSigningKey $q.nextSigningKey) -}}
{{- fail "qstash.currentSigningKey/nextSigningKey are set but qstash.token is empty: set the token too, or clear the keys for development mode" -}}
{{- end -}}
{{- if and $q.token (not (and $q.currentSigningKey $q.nextSigningKey)) -}}
{{- fail "qstash.token is set: set both qstash.currentSigningKey and qstash.nextSigningKey (Upstash console, Signing Keys), or use qstash.existingSecret" -}}
{{- end -}}
{{- if or $q.token $q.existingSecret -}}
{{- if not .Values.webhook.publicUrl -}}
{{- fail "QStash is configured: set webhook.publicUrl to the https origin QStash reaches the webhook at (e.g. https://cron.example.com)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/*
"true" when the webhook is deployed: webhook.enabled when set, else whether QStash is configured.
*/}}
{{- define "qstash-operator.webhookEnabled" -}}
{{- $qstash := include "qstash-operator.qstashEnabled" . -}}
{{- $enabled := ternary $qstash .Values.webhook.enabled (kindIs "invalid" .Values.webhook.enabled) -}}
{{- if and $enabled (not $qstash) -}}
{{- fail "webhook.enabled is true but QStash is not configured: the webhook verifies QStash signatures and needs qstash.token and the signing keys (or qstash.existingSecret)" -}}
{{- end -}}
{{- if $enabled -}}true{{- end -}}
{{- end -}}

{{/*
Name of the Secret holding QSTASH_TOKEN and the two signing keys.
*/}}
{{- define "qstash-operator.secretName" -}}
{{- default (printf "%s-qstash" (include "qstash-operator.fullname" . | trunc 56 | trimSuffix "-")) .Values.qstash.existingSecret -}}
{{- end -}}

{{/*
Environment shared by the operator and the webhook: the settings both read (see settings.py).
*/}}
{{- define "qstash-operator.sharedEnv" -}}
- name: QSTASH_URL
  value: {{ .Values.qstash.url | quote }}
- name: QSTASH_OPERATOR_CLUSTER_NAME
  value: {{ .Values.clusterName | quote }}
- name: QSTASH_OPERATOR_CLOCK_TOLERANCE
  value: {{ .Values.clockToleranceSeconds | quote }}
- name: QSTASH_OPERATOR_ALLOW_PRIVATE_URL
  value: {{ .Values.allowPrivateUrl | quote }}
{{- with .Values.operator.namespaces }}
- name: QSTASH_OPERATOR_NAMESPACES
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.webhook.publicUrl }}
- name: WEBHOOK_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
Pod-level fields both Deployments share. Call with (dict "root" $ "component" .Values.operator).
*/}}
{{- define "qstash-operator.podCommon" -}}
{{- $root := .root -}}
{{- $c := .component -}}
enableServiceLinks: false
{{- with $root.Values.global.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $c.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- with $c.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
A PodDisruptionBudget's budget: the values given, or minAvailable 1 when neither is.
Call with the component's podDisruptionBudget values.
*/}}
{{- define "qstash-operator.pdbBudget" -}}
{{- if not (or (kindIs "invalid" .minAvailable) (kindIs "invalid" .maxUnavailable)) -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" -}}
{{- end -}}
{{- if not (kindIs "invalid" .maxUnavailable) -}}
maxUnavailable: {{ .maxUnavailable }}
{{- else -}}
minAvailable: {{ ternary 1 .minAvailable (kindIs "invalid" .minAvailable) }}
{{- end -}}
{{- end -}}
