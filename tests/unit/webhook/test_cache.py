"""The webhook's watch-fed caches: what they keep, their bounds, and list-then-watch.

The informer runs against a scripted API (pages of a list, then watch streams that end, expire
or fail), so each path of the loop is exercised without a cluster or a wall-clock wait: the
retry sleep is the only await that could block, and the script ends the run before it matters.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from qstash_operator.adapters.informer import Informer
from qstash_operator.domain import model, vocabulary
from qstash_operator.domain.errors import KubernetesUnavailableError, WatchExpiredError
from qstash_operator.domain.model import JsonDict
from qstash_webhook.cache import CronWorkflowStore, JobStore, RunCache
from tests.unit.domain import factories


def cw(name: str, namespace: str = "team-a", **extra_meta: Any) -> JsonDict:
    body = factories.body(name=name, namespace=namespace)
    body["metadata"].update(extra_meta)
    return body


def job(name: str, owner_uid: str = factories.UID, namespace: str = "team-a") -> JsonDict:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": {vocabulary.LABEL_CRONWORKFLOW_UID: owner_uid},
        },
        "status": {},
    }


def test_a_cronworkflow_is_kept_without_managed_fields_or_kopf_bookkeeping() -> None:
    store = CronWorkflowStore(limit=10)
    store.put(
        cw(
            "report",
            managedFields=[{"manager": "kubectl"}],
            annotations={"kopf.qstash-operator.dev/last-handled-configuration": "{...}", "a": "b"},
        )
    )
    kept = store.get("team-a", "report")
    assert kept is not None
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"a": "b"}
    assert store.bytes > 0


def test_the_held_copy_comes_with_the_model_parsed_from_it() -> None:
    store = CronWorkflowStore(limit=10)
    store.put(cw("report"))
    held = store.get("team-a", "report")
    assert held is not None
    parsed = store.model(held)
    assert parsed == model.parse(held)
    # An equal dict that is not the held copy (a body read from the API server) gets none.
    assert store.model(copy.deepcopy(held)) is None


def _changed(change: str) -> JsonDict:
    body = cw("report")
    if change == "status":
        body["status"] = {"lastScheduleTime": "2026-12-04T10:00:00Z"}
        body["metadata"]["resourceVersion"] = "101"
    elif change == "spec":
        body["spec"]["schedule"] = "30 * * * *"
        body["metadata"]["generation"] = 2
    elif change == "annotations":
        body["metadata"]["annotations"] = {"qstash-operator.dev/paused-by": "ops"}
    elif change == "recreated":
        body["metadata"]["uid"] = "another-uid"
    elif change == "no generation":
        body["metadata"].pop("generation")
    return body


@pytest.mark.parametrize(
    ("change", "kept"),
    [
        ("status", True),  # every tick's record: the spec is the one parsed before
        ("spec", False),  # the API server moved metadata.generation
        ("annotations", False),  # the model carries them
        ("recreated", False),  # another incarnation
        ("no generation", False),  # nothing says the spec is the same
    ],
)
def test_an_event_keeps_the_parsed_model_only_when_the_spec_cannot_have_changed(
    change: str, kept: bool
) -> None:
    store = CronWorkflowStore(limit=10)
    store.put(cw("report"))
    before = store.model(store.get("team-a", "report") or {})
    store.put(_changed(change))
    held = store.get("team-a", "report")
    assert held is not None
    after = store.model(held)
    assert after is not None
    assert (after is before) is kept
    assert after == model.parse(held)


def test_a_body_that_does_not_parse_is_held_without_a_model() -> None:
    store = CronWorkflowStore(limit=10)
    store.put(cw("report"))
    broken = cw("report")
    broken["spec"]["schedule"] = "not a cron"
    broken["metadata"]["generation"] = 2
    store.put(broken)
    held = store.get("team-a", "report")
    assert held is not None
    assert held["spec"]["schedule"] == "not a cron"
    assert store.model(held) is None  # the delivery parses it and refuses it


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param({"spec": "a string"}, id="spec-not-an-object"),
        pytest.param({"spec": {"schedule": 5}}, id="schedule-not-a-string"),
        pytest.param({"spec": {"schedule": "* * * * *", "jobTemplate": []}}, id="template-a-list"),
    ],
)
def test_a_body_of_an_unforeseen_shape_is_held_without_a_model_and_the_store_goes_on(
    shape: JsonDict,
) -> None:
    store = CronWorkflowStore(limit=10)
    odd = cw("odd")
    for part, value in shape.items():
        if isinstance(value, dict) and isinstance(odd.get(part), dict):
            odd[part] = {**odd[part], **value}
        else:
            odd[part] = value
    store.put(odd)
    store.put(cw("report"))
    held = store.get("team-a", "odd")
    assert held is not None
    assert store.model(held) is None
    report = store.get("team-a", "report")
    assert report is not None
    assert store.model(report) is not None


def test_a_removed_cronworkflow_leaves_no_model() -> None:
    store = CronWorkflowStore(limit=10)
    body = cw("report")
    store.put(body)
    held = store.get("team-a", "report")
    store.remove(body)
    assert held is not None
    assert store.model(held) is None


def test_past_its_bound_the_cronworkflow_store_stops_answering_until_a_list_fits() -> None:
    store = CronWorkflowStore(limit=2)
    for name in ("a", "b", "c"):
        store.put(cw(name))
    assert store.overflow
    assert store.get("team-a", "a") is None
    store.replace([cw("a")], None)
    assert store.get("team-a", "a") is not None


def test_jobs_are_found_by_their_cronworkflows_uid_and_forgotten_when_deleted() -> None:
    store = JobStore(limit=10)
    store.put(job("report-1"))
    store.put(job("report-2"))
    store.put(job("other-1", owner_uid="another"))
    assert sorted(view.name for view in store.of("team-a", factories.UID) or []) == [
        "report-1",
        "report-2",
    ]
    store.remove(job("report-1"))
    assert [view.name for view in store.of("team-a", factories.UID) or []] == ["report-2"]
    assert len(store) == 2
    store.put(job("report-2"))  # a MODIFIED event replaces, never duplicates
    assert len(store) == 2


def test_a_namespaces_list_replaces_only_that_namespace() -> None:
    store = JobStore(limit=10)
    store.put(job("a-1", namespace="a"))
    store.put(job("b-1", namespace="b"))
    store.replace([job("a-2", namespace="a")], "a")
    assert [view.name for view in store.of("a", factories.UID) or []] == ["a-2"]
    assert [view.name for view in store.of("b", factories.UID) or []] == ["b-1"]


def test_past_its_bound_the_job_store_stops_answering() -> None:
    store = JobStore(limit=1)
    store.put(job("a"))
    store.put(job("b"))
    assert store.of("team-a", factories.UID) is None


Stream = list[tuple[str, JsonDict]] | BaseException


class ScriptedApi:
    """Lists answer from ``pages``; each watch plays the next stream (events, then its end or
    an error); when the script runs out the run is cancelled."""

    def __init__(self, pages: list[list[JsonDict]], streams: list[Stream]) -> None:
        self.pages = pages
        self.streams = streams
        self.lists = 0
        self.watched_from: list[str] = []

    async def list_cronworkflows_page(
        self, namespace: str | None, *, limit: int, token: str | None = None
    ) -> tuple[list[JsonDict], str, str | None]:
        index = int(token or 0)
        if index == 0:
            self.lists += 1
        following = str(index + 1) if index + 1 < len(self.pages) else None
        return self.pages[index], "10", following

    async def watch_cronworkflows(
        self, namespace: str | None, *, resource_version: str
    ) -> AsyncIterator[tuple[str, JsonDict]]:
        self.watched_from.append(resource_version)
        if not self.streams:
            raise asyncio.CancelledError
        stream = self.streams.pop(0)
        if isinstance(stream, BaseException):
            raise stream
        for event in stream:
            yield event


def versioned(body: JsonDict, version: str) -> JsonDict:
    body["metadata"]["resourceVersion"] = version
    return body


async def run_script(api: ScriptedApi, store: CronWorkflowStore) -> Informer[Any]:
    informer: Informer[Any] = Informer(
        api,  # type: ignore[arg-type]
        "cronworkflows",
        store,
        namespace=None,
    )
    with pytest.raises(asyncio.CancelledError):
        await informer.run()
    return informer


async def test_list_pages_then_watch_from_the_lists_version_and_resume_from_the_last_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = ScriptedApi(
        pages=[[cw("a")], [cw("b")]],
        streams=[
            [("ADDED", versioned(cw("c"), "11")), ("DELETED", versioned(cw("a"), "12"))],
            [("BOOKMARK", {"metadata": {"resourceVersion": "15"}})],
        ],
    )
    store = CronWorkflowStore(limit=10)
    informer = await run_script(api, store)
    assert api.lists == 1
    assert api.watched_from == ["10", "12", "15"]
    assert informer.synced
    assert store.get("team-a", "a") is None
    assert store.get("team-a", "b") is not None
    assert store.get("team-a", "c") is not None


async def test_an_expired_watch_lists_again(monkeypatch: pytest.MonkeyPatch) -> None:
    api = ScriptedApi(pages=[[cw("a")]], streams=[WatchExpiredError("410")])
    await run_script(api, CronWorkflowStore(limit=10))
    assert api.lists == 2


async def test_a_failed_watch_marks_the_copy_unsynced_until_it_lists_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []
    store = CronWorkflowStore(limit=10)
    api = ScriptedApi(pages=[[cw("a")]], streams=[KubernetesUnavailableError("down")])
    informer: Informer[Any] = Informer(
        api,  # type: ignore[arg-type]
        "cronworkflows",
        store,
        namespace=None,
    )

    async def no_wait(seconds: float) -> None:
        seen.append(informer.synced)

    monkeypatch.setattr(asyncio, "sleep", no_wait)
    with pytest.raises(asyncio.CancelledError):
        await informer.run()
    assert seen == [False]  # during the back-off deliveries read the API server
    assert api.lists == 2
    assert informer.synced


def test_an_unsynced_cache_answers_none_so_deliveries_read_the_api_server() -> None:
    cache = RunCache(object(), namespaces=("team-a",))  # type: ignore[arg-type]
    cache.cronworkflows.put(cw("report"))
    assert cache.cronworkflow("team-a", "report") is None
    assert cache.jobs("team-a", factories.UID) is None
    assert not cache.synced("cronworkflows")


def test_a_slim_job_makes_the_same_view_as_the_whole_job() -> None:
    from qstash_operator.domain import runs

    whole = job("report-1")
    whole["metadata"]["annotations"] = {
        vocabulary.ANNOTATION_MESSAGE_ID: "msg_1",
        "kubectl.kubernetes.io/last-applied-configuration": "{...}" * 100,
    }
    whole["metadata"]["labels"][vocabulary.LABEL_TRIGGER] = "schedule"
    whole["metadata"]["creationTimestamp"] = "2026-06-01T10:00:01Z"
    whole["spec"] = {"template": {"spec": {"containers": [{"name": "main"}] * 5}}}
    whole["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}],
        "completionTime": "2026-06-01T10:00:05Z",
        "startTime": "2026-06-01T10:00:02Z",
    }
    store = JobStore(limit=10)
    slim = store.slim(whole)
    assert runs.job_view(slim) == runs.job_view(whole)
    assert "spec" not in slim
    assert len(str(slim)) < len(str(whole)) / 2
