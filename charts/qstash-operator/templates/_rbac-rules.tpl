{{/*
The operator's application rules, shared by its ClusterRole (whole cluster) and its Roles
(namespaced mode). Each verb is there because a named call needs it.
*/}}
{{- define "qstash-operator.operator.rules" -}}
# CronWorkflows: kopf lists and watches them; the services get one to act on fresh data; the drift
# check lists them; kopf patches finalizers and its progress annotations, and clears the run-now
# annotation after a manual run.
- apiGroups: [qstash-operator.dev]
  resources: [cronworkflows]
  verbs: [get, list, watch, patch]
# Status: kopf and the services write status (conditions, backend, next run, Job mirror).
- apiGroups: [qstash-operator.dev]
  resources: [cronworkflows/status]
  verbs: [patch]
# Jobs: the operator lists and watches the Jobs we made (its Job index: status mirror, slot audit,
# marker runs); manual runs (run-now) create them;
# the Job template is validated with a dry-run create; history limits and Replace delete them;
# a switch from the CronJob backend adopts the CronJob's Jobs (patches their ownerReferences).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, patch, delete]
# CronJobs (development mode backend): kopf watches the ones we made; reconciliation reads,
# creates, replaces (PUT) and deletes the CronJobs owned by each CronWorkflow (one, or one per
# spec.schedules entry), and lists its marker CronJobs by label to delete those no entry names.
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch, create, update, delete]
# Owner finalizers: the Jobs and CronJobs we make or adopt name their CronWorkflow as a blocking
# owner; the OwnerReferencesPermissionEnforcement admission plugin (OpenShift) requires this.
- apiGroups: [qstash-operator.dev]
  resources: [cronworkflows/finalizers]
  verbs: [update]
# Events: the operator posts its own events on CronWorkflows (kopf's posting is turned off).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/*
The webhook's application rules, shared by its ClusterRole and its Roles (namespaced mode).
*/}}
{{- define "qstash-operator.webhook.rules" -}}
# CronWorkflows: the deliveries' cache lists and watches them (a CronWorkflow it lacks is read
# with get); GET /api/cron and /api/test-cron list them; activate/deactivate patch spec.suspend.
- apiGroups: [qstash-operator.dev]
  resources: [cronworkflows]
  verbs: [get, list, watch, patch]
# Status: a run records lastScheduleTime and the active Jobs, with a conditional write that
# reserves Forbid/Replace decisions.
- apiGroups: [qstash-operator.dev]
  resources: [cronworkflows/status]
  verbs: [patch]
# Jobs: the deliveries' cache lists and watches ours (duplicates, Forbid), a delivery creates
# the tick's Job, and deletes Jobs for Replace and the history limits. No get or update.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, delete]
# Owner finalizers: the tick's Job names its CronWorkflow as a blocking owner; the
# OwnerReferencesPermissionEnforcement admission plugin (OpenShift) requires this.
- apiGroups: [qstash-operator.dev]
  resources: [cronworkflows/finalizers]
  verbs: [update]
# Events: SuccessfulCreate, JobAlreadyActive, MissSchedule, ... on CronWorkflows; the console
# lists a CronWorkflow's events (for callers whose own RBAC lets them list events there).
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]
{{- end -}}
