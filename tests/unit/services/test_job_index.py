"""The operator's Job index (``services.job_index.JobIndexStore``): what the Job watch's list and
events make of it, what each event hands on, and when it is synced."""

from __future__ import annotations

from typing import Any

import pytest

from qstash_operator.domain import vocabulary
from qstash_operator.domain.model import JsonDict
from qstash_operator.services.job_index import JobIndexStore


def job(
    name: str,
    *,
    owner: str = "nightly",
    namespace: str = "team",
    complete: bool = False,
    marker: bool = False,
) -> JsonDict:
    labels = {
        vocabulary.LABEL_MANAGED_BY: vocabulary.MANAGED_BY,
        vocabulary.LABEL_CRONWORKFLOW: owner,
        vocabulary.LABEL_CRONWORKFLOW_UID: f"uid-{owner}",
    }
    if marker:
        labels[vocabulary.LABEL_TICK_MARKER] = "true"
    conditions = [{"type": "Complete", "status": "True"}] if complete else []
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": labels,
            "annotations": {vocabulary.ANNOTATION_SCHEDULED_TIME: "2026-12-03T03:00:00Z"},
            "creationTimestamp": "2026-12-03T03:00:01Z",
            "managedFields": [{"manager": "qstash-operator", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"suspend": True, "template": {"spec": {"containers": [{"name": "run"}]}}},
        "status": {"conditions": conditions},
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []
        self.bodies: list[JsonDict] = []
        self.synced: list[int] = []

    def __call__(self, body: JsonDict, event: str | None) -> None:
        self.events.append((body["metadata"]["name"], event))
        self.bodies.append(body)


def store(scopes: tuple[str | None, ...] = (None,)) -> tuple[JobIndexStore, Recorder]:
    recorder = Recorder()
    index = JobIndexStore(
        scopes, on_event=recorder, on_synced=lambda it: recorder.synced.append(it.jobs)
    )
    return index, recorder


def names(index: JobIndexStore, key: tuple[str, str]) -> list[str]:
    return sorted(entry.view.name for entry in index.get(key, ()))


def test_a_list_fills_the_index_by_cronworkflow_then_hands_each_job_on_as_listed() -> None:
    index, recorder = store()
    index.replace(
        [index.slim(job("a-1")), index.slim(job("a-2")), index.slim(job("b-1", owner="b"))],
        None,
    )
    assert names(index, ("team", "nightly")) == ["a-1", "a-2"]
    assert names(index, ("team", "b")) == ["b-1"]
    assert index.get(("team", "none")) == ()
    assert recorder.events == [("a-1", None), ("a-2", None), ("b-1", None)]
    assert recorder.synced == [3]  # handed over once, already whole
    entry = next(iter(index[("team", "nightly")]))
    assert entry.tick is not None
    assert entry.slot.cronworkflow_uid == "uid-nightly"


@pytest.mark.parametrize(
    ("events", "expected", "handed_on"),
    [
        pytest.param(
            [("ADDED", job("a-2"))], ["a-1", "a-2"], [("a-2", "ADDED")], id="added: indexed"
        ),
        pytest.param(
            [("MODIFIED", job("a-1", complete=True))],
            ["a-1"],
            [("a-1", "MODIFIED")],
            id="modified: its entry replaced",
        ),
        pytest.param(
            [("DELETED", job("a-1"))], [], [("a-1", "DELETED")], id="deleted: dropped, handed on"
        ),
    ],
)
def test_watch_events_change_the_index_and_are_handed_on_with_their_type(
    events: list[tuple[str, JsonDict]], expected: list[str], handed_on: list[Any]
) -> None:
    index, recorder = store()
    index.replace([index.slim(job("a-1"))], None)
    recorder.events.clear()
    for kind, body in events:
        if kind == "DELETED":
            index.remove(body)
        else:
            index.put(body, event=kind)
    assert names(index, ("team", "nightly")) == expected
    assert recorder.events == handed_on


def test_a_modified_job_is_read_again_from_its_new_state() -> None:
    index, _ = store()
    index.replace([index.slim(job("a-1"))], None)
    index.put(job("a-1", complete=True), event="MODIFIED")
    (entry,) = index.get(("team", "nightly"))
    assert entry.view.succeeded
    assert not entry.view.active
    assert index.jobs == 1


def test_a_list_again_replaces_its_scope_only() -> None:
    index, recorder = store(("team", "other"))
    index.replace([index.slim(job("a-1")), index.slim(job("a-2"))], "team")
    index.replace([index.slim(job("o-1", namespace="other"))], "other")
    index.replace([index.slim(job("a-3"))], "team")  # a-1 and a-2 went while the watch was down
    assert names(index, ("team", "nightly")) == ["a-3"]
    assert names(index, ("other", "nightly")) == ["o-1"]
    assert index.jobs == 2
    assert recorder.synced == [3]


def test_it_is_synced_once_every_scope_has_been_listed() -> None:
    index, recorder = store(("team", "other"))
    index.replace([index.slim(job("a-1"))], "team")
    assert not index.synced
    assert recorder.synced == []
    index.replace([], "other")
    assert index.synced
    assert recorder.synced == [1]


def test_a_listed_job_keeps_its_metadata_and_status_not_its_spec_or_managed_fields() -> None:
    index, _ = store()
    slim = index.slim(job("a-1", complete=True))
    assert set(slim) == {"metadata", "status"}
    assert "managedFields" not in slim["metadata"]
    assert slim["metadata"]["labels"][vocabulary.LABEL_CRONWORKFLOW] == "nightly"
    assert slim["status"]["conditions"][0]["type"] == "Complete"


def test_a_marker_job_is_kept_whole_for_its_run() -> None:
    index, recorder = store()
    marker = job("m-1", marker=True)
    index.replace([index.slim(marker)], None)
    assert recorder.bodies == [marker]


def test_a_job_that_names_no_cronworkflow_is_not_indexed_but_still_handed_on() -> None:
    index, recorder = store()
    body = job("stray")
    del body["metadata"]["labels"][vocabulary.LABEL_CRONWORKFLOW]
    index.put(body, event="ADDED")
    assert len(index) == 0
    assert recorder.events == [("stray", "ADDED")]
