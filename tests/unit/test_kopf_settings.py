"""kopf's settings for the operator (``entrypoints.handlers.configure_kopf``): which watches the
API server filters for us, and the bounded workers."""

from __future__ import annotations

import kopf
import pytest

from qstash_operator.domain import vocabulary
from qstash_operator.entrypoints.handlers import build_registry, configure_kopf
from qstash_operator.settings import Settings


def resource(group: str, plural: str, kind: str) -> kopf.Resource:
    return kopf.Resource(
        group=group, version="v1", plural=plural, kind=kind, singular=kind.lower(), namespaced=True
    )


@pytest.mark.parametrize(
    ("watched", "selectors"),
    [
        pytest.param(
            resource("batch", "cronjobs", "CronJob"),
            ["app.kubernetes.io/managed-by=qstash-operator"],
            id="CronJobs: only ours",
        ),
        pytest.param(
            resource(vocabulary.GROUP, vocabulary.PLURAL, "CronWorkflow"),
            [],
            id="CronWorkflows: every one, unlabelled ones included",
        ),
        pytest.param(resource("", "pods", "Pod"), [], id="nothing else is narrowed"),
    ],
)
def test_the_api_server_filters_the_batch_watches_to_our_objects(
    watched: kopf.Resource, selectors: list[str]
) -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings, Settings.from_env({}))
    assert list(settings.watching.label_selectors.collect(watched)) == selectors


def handlers_of(registry: kopf.OperatorRegistry, watched: kopf.Resource) -> list[str]:
    """Which of kopf's kinds of handler ``watched`` has (indexes, event, spawning and
    change-detecting handlers): kopf watches a resource only for these."""
    kinds = {
        "index": registry._indexing,
        "event": registry._watching,
        "daemon or timer": registry._spawning,
        "change": registry._changing,
    }
    return [name for name, kind in kinds.items() if kind.has_handlers(watched)]


@pytest.mark.parametrize(
    ("watched", "expected"),
    [
        pytest.param(
            resource("batch", "jobs", "Job"),
            [],
            id="Jobs: not kopf's (the operator's own informer, services.job_index)",
        ),
        pytest.param(resource("batch", "cronjobs", "CronJob"), ["event"], id="CronJobs: an event"),
    ],
)
def test_which_batch_kinds_kopf_watches(watched: kopf.Resource, expected: list[str]) -> None:
    assert handlers_of(build_registry(), watched) == expected


def test_the_worker_limit_reaches_kopf() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings, Settings.from_env({"QSTASH_OPERATOR_WORKER_LIMIT": "7"}))
    assert settings.queueing.worker_limit == 7


def test_initial_lists_come_in_pages() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings, Settings.from_env({}))
    assert settings.watching.chunk_size == 500


JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "nightly-28000000", "namespace": "team-a", "labels": {"a": "b"}},
    "spec": {"suspend": True, "template": {"spec": {"containers": [{"name": "main"}]}}},
}
CRONWORKFLOW = {
    "apiVersion": f"{vocabulary.GROUP}/v1alpha1",
    "kind": "CronWorkflow",
    "metadata": {"name": "nightly", "namespace": "team-a"},
    "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {}}},
}


@pytest.mark.parametrize(
    ("body", "essence"),
    [
        pytest.param(JOB, {}, id="a Job: no diff base (no change-detecting handler reads it)"),
        pytest.param(
            {**JOB, "apiVersion": "batch/v1beta1", "kind": "CronJob"}, {}, id="a CronJob: none"
        ),
        pytest.param(
            CRONWORKFLOW,
            {"spec": CRONWORKFLOW["spec"]},
            id="a CronWorkflow: kopf's own essence, its spec",
        ),
    ],
)
def test_the_diff_base_is_built_for_cronworkflows_only(
    body: dict[str, object], essence: dict[str, object]
) -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings, Settings.from_env({}))
    built = settings.persistence.diffbase_storage.build(body=kopf.Body(body))
    assert dict(built) == essence
