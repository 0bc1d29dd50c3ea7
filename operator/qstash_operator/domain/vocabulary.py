"""Fixed words: API names, label and annotation keys, condition types and CamelCase reasons.

One vocabulary for status conditions, Kubernetes events, metrics labels and logs, in the manner of
the CronJob controller's event reasons. Anything user-visible that names a reason takes it from
here, so docs and alerts can rely on the words.
"""

from __future__ import annotations

from typing import Final

# -- the API ------------------------------------------------------------------------------------

GROUP: Final = "qstash-operator.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "CronWorkflow"
PLURAL: Final = "cronworkflows"
SHORT_NAME: Final = "qcwf"

PREFIX: Final = f"{GROUP}/"

# -- labels (on Jobs and CronJobs we create; selectable) -------------------------------------------

LABEL_CRONWORKFLOW: Final = PREFIX + "cronworkflow"  # the CronWorkflow's name
LABEL_CRONWORKFLOW_UID: Final = PREFIX + "cronworkflow-uid"  # its uid (names can be reused)
LABEL_TRIGGER: Final = PREFIX + "trigger"  # "schedule" | "manual"
LABEL_MESSAGE_ID: Final = PREFIX + "message-id"  # QStash message id; one Job per message
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "qstash-operator"

TRIGGER_SCHEDULE: Final = "schedule"
TRIGGER_MANUAL: Final = "manual"

# -- annotations ---------------------------------------------------------------------------------

ANNOTATION_SCHEDULED_TIME: Final = PREFIX + "scheduled-time"  # RFC 3339, UTC
ANNOTATION_MESSAGE_ID: Final = PREFIX + "message-id"
ANNOTATION_TRIGGERED_BY: Final = PREFIX + "triggered-by"  # who asked for a manual run
ANNOTATION_BACKEND: Final = PREFIX + "backend"  # which backend made the Job
ANNOTATION_RUN_NOW: Final = PREFIX + "run-now"  # on a CronWorkflow: make one manual Job
# run-now's companions on the CronWorkflow: JSON {"name": "value"} overrides, and why
ANNOTATION_RUN_NOW_PARAMETERS: Final = PREFIX + "run-now-parameters"
ANNOTATION_RUN_NOW_REASON: Final = PREFIX + "run-now-reason"
ANNOTATION_RUN_REASON: Final = PREFIX + "run-reason"  # on a manual Job: why it was asked for
ANNOTATION_RUN_PARAMETERS: Final = PREFIX + "run-parameters"  # on a Job: JSON of its overrides
ANNOTATION_BACKFILLED_BY: Final = PREFIX + "backfilled-by"  # on a Job: who backfilled its slot
# On a manual Job made over HTTP with an Idempotency-Key: the key, and a hash of the request.
ANNOTATION_IDEMPOTENCY_KEY: Final = PREFIX + "idempotency-key"
ANNOTATION_REQUEST_FINGERPRINT: Final = PREFIX + "request-fingerprint"
# The CronJob controller's own annotation for the scheduled time of Jobs it creates (1.32+).
ANNOTATION_K8S_SCHEDULED_TIME: Final = "batch.kubernetes.io/cronjob-scheduled-timestamp"

# -- condition types -----------------------------------------------------------------------------

CONDITION_READY: Final = "Ready"
CONDITION_SCHEDULE_SYNCED: Final = "ScheduleSynced"
CONDITION_SPEC_VALID: Final = "SpecValid"
# Only on CronWorkflows QStash refused a destination for: False while it falls back to a CronJob,
# True once QStash accepted it again (a refusal is a fact about one object, never process-wide).
CONDITION_DESTINATION_ACCEPTED: Final = "DestinationAccepted"

# -- reasons (conditions and events share them) ----------------------------------------------------

# Spec problems (SpecValid=False)
REASON_SPEC_VALID: Final = "SpecValid"
REASON_INVALID_SCHEDULE: Final = "InvalidSchedule"
REASON_UNKNOWN_TIME_ZONE: Final = "UnknownTimeZone"
REASON_INVALID_JOB_TEMPLATE: Final = "InvalidJobTemplate"
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_QSTASH_REJECTED: Final = "QStashRejected"
REASON_BACKEND_UNAVAILABLE: Final = "BackendUnavailable"

# Schedule sync (ScheduleSynced)
REASON_SCHEDULE_UPSERTED: Final = "ScheduleUpserted"
REASON_SCHEDULE_UP_TO_DATE: Final = "ScheduleUpToDate"
REASON_SCHEDULE_DELETED: Final = "ScheduleDeleted"
REASON_SCHEDULE_PAUSED: Final = "SchedulePaused"
REASON_SCHEDULE_RESUMED: Final = "ScheduleResumed"
REASON_CRONJOB_CREATED: Final = "CronJobCreated"
REASON_CRONJOB_UPDATED: Final = "CronJobUpdated"
REASON_CRONJOB_DELETED: Final = "CronJobDeleted"
REASON_QSTASH_AUTH_FAILED: Final = "QStashAuthFailed"
REASON_QSTASH_UNAVAILABLE: Final = "QStashUnavailable"
REASON_QSTASH_RATE_LIMITED: Final = "QStashRateLimited"
REASON_KUBERNETES_UNAVAILABLE: Final = "KubernetesUnavailable"
REASON_FORBIDDEN: Final = "Forbidden"
REASON_DRIFT_REPAIRED: Final = "DriftRepaired"
REASON_ORPHAN_DELETED: Final = "OrphanScheduleDeleted"

# Backend choice
REASON_BACKEND_SELECTED: Final = "BackendSelected"
REASON_BACKEND_CHANGED: Final = "BackendChanged"
REASON_FALLBACK_TO_CRONJOB: Final = "FallbackToCronJob"
REASON_PUBLIC_URL_REFUSED: Final = "PublicURLRefused"
REASON_HANDOVER_PENDING: Final = "HandoverPending"
REASON_HANDOVER_COMPLETE: Final = "HandoverComplete"
REASON_QSTASH_SCHEDULE_LEFT_BEHIND: Final = "QStashScheduleLeftBehind"
REASON_DESTINATION_REFUSED: Final = "DestinationRefused"
REASON_DESTINATION_ACCEPTED: Final = "DestinationAccepted"

# Runs
REASON_SUCCESSFUL_CREATE: Final = "SuccessfulCreate"
REASON_FAILED_CREATE: Final = "FailedCreate"
REASON_DUPLICATE_DELIVERY: Final = "DuplicateDelivery"
REASON_SKIPPED_SUSPENDED: Final = "SkippedSuspended"
REASON_SKIPPED_FORBID: Final = "JobAlreadyActive"  # the CronJob controller's word for it
REASON_SKIPPED_DEADLINE: Final = "MissSchedule"  # ditto: later than startingDeadlineSeconds
REASON_REPLACED_ACTIVE: Final = "SuccessfulDelete"  # Replace deleted the active Jobs
REASON_MANUAL_RUN: Final = "ManualRun"
REASON_SAW_COMPLETED_JOB: Final = "SawCompletedJob"
# Daylight-saving days ahead (issue 12), Normal events once per spec generation.
REASON_DAYLIGHT_SAVING_SKIP: Final = "DaylightSavingSkip"
REASON_DAYLIGHT_SAVING_REPEAT: Final = "DaylightSavingRepeat"
REASON_DAYLIGHT_SAVING_EXTRA: Final = "DaylightSavingExtra"
REASON_HISTORY_PRUNED: Final = "HistoryPruned"
REASON_SKIPPED_INACTIVE: Final = "SkippedNotYetActive"  # a tick before spec.activeFrom

# Ready
REASON_READY: Final = "Ready"
REASON_SUSPENDED: Final = "Suspended"
REASON_NOT_READY: Final = "NotReady"
REASON_NOT_YET_ACTIVE: Final = "NotYetActive"  # before spec.activeFrom: the backend is paused
REASON_COMPLETED: Final = "Completed"  # spec.activeUntil passed or spec.maxRuns made

# -- slots: the per-slot ledger (status.recentSlots), its events and metrics ---------------------
#
# A slot is one scheduled tick (or one manual run). Its fate is one of FATE_*; its reason one of
# the words below. status.recentSlots, the MissedSchedule event and
# qstash_operator_slots_total{outcome,reason} all use these words.

FATE_SUCCEEDED: Final = "Succeeded"
FATE_FAILED: Final = "Failed"
FATE_RUNNING: Final = "Running"
FATE_SKIPPED: Final = "Skipped"
FATE_MISSED: Final = "Missed"  # no delivery and no CronJob run arrived for it
FATE_CAUGHT_UP: Final = "CaughtUp"  # run late by the catch-up policy

SLOT_REASON_SUSPENDED: Final = "Suspended"
SLOT_REASON_CONCURRENCY_FORBID: Final = "ConcurrencyForbid"
SLOT_REASON_PAST_DEADLINE: Final = "PastDeadline"
SLOT_REASON_BEFORE_SCHEDULE_CHANGE: Final = "BeforeScheduleChange"
SLOT_REASON_NO_RUN: Final = "NoRun"
SLOT_REASON_JOB_COMPLETE: Final = "JobComplete"
SLOT_REASON_JOB_FAILED: Final = "JobFailed"
SLOT_REASON_JOB_ACTIVE: Final = "JobActive"
SLOT_REASON_JOB_DELETED: Final = "JobDeleted"  # its Job went away before it finished

REASON_MISSED_SCHEDULE: Final = "MissedSchedule"  # Warning event: a slot became Missed
REASON_CAUGHT_UP: Final = "CaughtUp"  # Normal event: the catch-up policy ran a missed slot

ANNOTATION_CATCH_UP: Final = PREFIX + "catch-up"  # on a Job: "true" when catch-up made it
ANNOTATION_ATTEMPT: Final = PREFIX + "attempt"  # on a Job: the QStash delivery attempt (1 = first)
ANNOTATION_SCHEDULE_ENTRY: Final = PREFIX + "schedule-entry"  # on a Job: the winning entry's name
LABEL_SCHEDULE_ENTRY: Final = PREFIX + "schedule-entry"  # on an entry's CronJob and its markers
LABEL_TICK_MARKER: Final = PREFIX + "tick-marker"  # "true" on a CronJob's suspended marker Job
LABEL_MARKER_OF: Final = PREFIX + "marker-of"  # on an entry CronJob and its markers: the CW's name
ANNOTATION_MARKER_UID: Final = PREFIX + "marker-of-uid"  # on markers: the CronWorkflow's uid

# Freshness (spec.freshness): the Fresh condition
CONDITION_FRESH: Final = "Fresh"
REASON_FRESH: Final = "Fresh"
REASON_STALE: Final = "Stale"  # the last success is older than spec.freshness.maxAge
REASON_MISSED_SLOTS: Final = "MissedSlots"  # the latest N slots did not succeed
