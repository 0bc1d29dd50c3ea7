"""Watch-fed copies of the CronWorkflows and of the Jobs the webhook manages, in its namespaces.

A delivery decides from these (:class:`~qstash_operator.services.runs.RunReads`) instead of
reading the CronWorkflow and listing its Jobs for every tick, so under ``Allow`` its only API
call is the Job create. Each copy is kept by an
:class:`~qstash_operator.adapters.informer.Informer`, the way client-go's informers keep theirs
(list, then watch; while a copy is not synced every lookup answers None and the delivery reads
the API server). One list and watch per namespace and kind, or one cluster-wide when
the webhook serves every namespace (``QSTASH_OPERATOR_NAMESPACES`` unset).

What is kept, to stay small: a CronWorkflow's body without ``managedFields`` and kopf's
bookkeeping annotations (its last-handled copy of the spec is as large as the spec); a Job as its
:class:`~qstash_operator.domain.runs.JobView` (names, times, states, ids), indexed by the uid of
its CronWorkflow (the ``cronworkflow-uid`` label every Job of ours carries). Each kind is bounded
(``QSTASH_WEBHOOK_CACHE_MAX_CRONWORKFLOWS``, ``..._MAX_JOBS``): past the bound the copy stops
answering (deliveries read the API server, as without a cache) and says so in the log and in
``qstash_webhook_cache_synced``. Sizes: ``qstash_webhook_cache_objects{kind}`` and
``qstash_webhook_cache_bytes{kind}`` (for CronWorkflows the JSON size of what is kept, for Jobs
the measured size of a view; the process's ``process_resident_memory_bytes`` is the whole, and
holds the parsed model of each CronWorkflow besides: about 2.5 KB each for the benchmark's).

Staleness is safe by construction: the Job name is the lock (a Job another replica made a moment
ago makes the create answer AlreadyExists, a duplicate), the reservations of Forbid/Replace are
conditional writes on the ``resourceVersion`` read (a stale copy loses the race and the retry
reads the API server), and a Job ``status.active`` names that the copy lacks makes Forbid/Replace
list the Jobs from the API server (:mod:`qstash_operator.services.runs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Final

from qstash_operator.adapters.informer import Informer
from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import model, runs, vocabulary
from qstash_operator.domain.errors import InvalidSpecError
from qstash_operator.domain.model import CronWorkflow, JsonDict
from qstash_operator.domain.runs import JobView

logger = logging.getLogger(__name__)

DEFAULT_MAX_CRONWORKFLOWS: Final = 50_000
DEFAULT_MAX_JOBS: Final = 150_000
"""Defaults of the bounds: five times the 10,000 CronWorkflows (and three Jobs each) measured in
``python -m bench`` within the webhook's 250 MiB."""
KOPF_ANNOTATIONS: Final = "kopf."
_JOB_OVERHEAD_BYTES: Final = 700
"""A JobView's memory beyond its strings, with its index entries (CPython 3.11, 64-bit: 30,000
views took 23 MiB under tracemalloc, about 800 bytes each)."""


def _key(obj: JsonDict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _strip(body: JsonDict) -> JsonDict:
    """The CronWorkflow as a delivery needs it: no managedFields, no kopf bookkeeping."""
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations:
        meta["annotations"] = {
            key: value for key, value in annotations.items() if not key.startswith(KOPF_ANNOTATIONS)
        }
    return {**body, "metadata": meta}


def _same_spec(cw: CronWorkflow, body: JsonDict) -> bool:
    """Whether ``model.parse(body)`` would give ``cw`` again: the same incarnation (uid) at the
    same ``metadata.generation`` (which the API server moves on every change to a custom
    resource's spec, and never for status or metadata) with the same annotations; the other
    fields :func:`~qstash_operator.domain.model.parse` reads are the key's."""
    meta = body.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    return (
        generation > 0
        and generation == cw.generation
        and str(meta.get("uid", "")) == cw.uid
        and dict(meta.get("annotations") or {}) == cw.annotations
    )


class CronWorkflowStore:
    """CronWorkflows by (namespace, name), each with its parsed model.

    The model is parsed when a watch event brings a new spec, not at the tick: a delivery of the
    body held here gets it back (:meth:`model`) instead of parsing the spec, its cron and its Job
    template again (a tenth of the webhook's CPU in a minute's burst). A status write (every
    tick's record) keeps the model parsed before it. A body that does not parse keeps none, and
    its delivery parses it and refuses it as before.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.overflow = False
        self._items: dict[tuple[str, str], JsonDict] = {}
        self._sizes: dict[tuple[str, str], int] = {}
        self._models: dict[tuple[str, str], tuple[JsonDict, CronWorkflow]] = {}

    def slim(self, obj: JsonDict) -> JsonDict:
        return _strip(obj)

    def replace(self, items: list[JsonDict], namespace: str | None) -> None:
        for key in [key for key in self._items if namespace is None or key[0] == namespace]:
            del self._items[key]
            del self._sizes[key]
            self._models.pop(key, None)
        self.overflow = False
        for item in items:
            self.put(item)

    def put(self, obj: JsonDict, *, event: str = "MODIFIED") -> None:
        key = _key(obj)
        if key not in self._items and len(self._items) >= self.limit:
            if not self.overflow:
                logger.warning(
                    "more than %d CronWorkflows: the webhook's cache stops answering and "
                    "deliveries read the API server (raise QSTASH_WEBHOOK_CACHE_MAX_CRONWORKFLOWS)",
                    self.limit,
                )
            self.overflow = True
            return
        body = _strip(obj)
        self._items[key] = body
        self._sizes[key] = len(json.dumps(body, separators=(",", ":")))
        held = self._models.get(key)
        parsed = held[1] if held is not None and _same_spec(held[1], body) else None
        if parsed is None:
            try:
                parsed = model.parse(body)
            except InvalidSpecError:
                self._models.pop(key, None)
                return
            except Exception:  # a body of any shape must not end the watch
                # The schema admits what parse does not foresee only through a bug of ours (or
                # an object written before the schema): keep the body, keep no model, and let
                # the delivery parse it and answer; an exception here would reach the informer
                # and end or restart the copy of every CronWorkflow for one bad object.
                logger.exception("CronWorkflow %s/%s could not be parsed for the cache", *key)
                self._models.pop(key, None)
                return
        self._models[key] = (body, parsed)

    def remove(self, obj: JsonDict) -> None:
        key = _key(obj)
        self._items.pop(key, None)
        self._sizes.pop(key, None)
        self._models.pop(key, None)

    def model(self, body: JsonDict) -> CronWorkflow | None:
        """The model parsed from ``body``, if ``body`` is the very copy held here (None for any
        other dict, however equal: a body read from the API server is parsed by its reader)."""
        held = self._models.get(_key(body))
        return held[1] if held is not None and held[0] is body else None

    def next_schedule_times(self) -> list[object]:
        return [(item.get("status") or {}).get("nextScheduleTime") for item in self._items.values()]

    def get(self, namespace: str, name: str) -> JsonDict | None:
        return None if self.overflow else self._items.get((namespace, name))

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())


_JOB_META: Final = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp")
_JOB_LABELS: Final = (vocabulary.LABEL_CRONWORKFLOW_UID, vocabulary.LABEL_TRIGGER)
_JOB_ANNOTATIONS: Final = (
    vocabulary.ANNOTATION_MESSAGE_ID,
    vocabulary.ANNOTATION_IDEMPOTENCY_KEY,
    vocabulary.ANNOTATION_REQUEST_FINGERPRINT,
)
_JOB_STATUS: Final = ("conditions", "completionTime")


def _job_bytes(view: JobView) -> int:
    strings = (view.name, view.uid, view.message_id, view.trigger, view.idempotency_key)
    return _JOB_OVERHEAD_BYTES + sum(len(text) for text in strings if text)


class JobStore:
    """Views of our Jobs, by (namespace, name) and by the uid of their CronWorkflow."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.overflow = False
        self._owner: dict[tuple[str, str], tuple[str, str]] = {}
        self._by_owner: dict[tuple[str, str], dict[str, JobView]] = {}
        self._bytes = 0

    def slim(self, obj: JsonDict) -> JsonDict:
        """The fields :func:`~qstash_operator.domain.runs.job_view` and the index read."""
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        status = obj.get("status") or {}
        return {
            "metadata": {
                **{key: meta[key] for key in _JOB_META if key in meta},
                "labels": {key: labels[key] for key in _JOB_LABELS if key in labels},
                "annotations": {
                    key: annotations[key] for key in _JOB_ANNOTATIONS if key in annotations
                },
            },
            "status": {key: status[key] for key in _JOB_STATUS if key in status},
        }

    def replace(self, items: list[JsonDict], namespace: str | None) -> None:
        for key in [key for key in self._owner if namespace is None or key[0] == namespace]:
            self._drop(key)
        self.overflow = False
        for item in items:
            self.put(item)

    def put(self, obj: JsonDict, *, event: str = "MODIFIED") -> None:
        key = _key(obj)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        owner_uid = labels.get(vocabulary.LABEL_CRONWORKFLOW_UID)
        if not owner_uid:
            return
        if key not in self._owner and len(self._owner) >= self.limit:
            if not self.overflow:
                logger.warning(
                    "more than %d Jobs: the webhook's cache stops answering and deliveries "
                    "list Jobs from the API server (raise QSTASH_WEBHOOK_CACHE_MAX_JOBS)",
                    self.limit,
                )
            self.overflow = True
            return
        self.remove(obj)
        owner = (key[0], owner_uid)
        view = runs.job_view(obj)
        self._owner[key] = owner
        self._by_owner.setdefault(owner, {})[key[1]] = view
        self._bytes += _job_bytes(view)

    def remove(self, obj: JsonDict) -> None:
        self._drop(_key(obj))

    def _drop(self, key: tuple[str, str]) -> None:
        owner = self._owner.pop(key, None)
        if owner is None:
            return
        views = self._by_owner.get(owner, {})
        view = views.pop(key[1], None)
        if view is not None:
            self._bytes -= _job_bytes(view)
        if not views:
            self._by_owner.pop(owner, None)

    def of(self, namespace: str, uid: str) -> list[JobView] | None:
        if self.overflow:
            return None
        return list(self._by_owner.get((namespace, uid), {}).values())

    def __len__(self) -> int:
        return len(self._owner)

    @property
    def bytes(self) -> int:
        return self._bytes


class RunCache:
    """The webhook's :class:`~qstash_operator.services.runs.RunReads`: one informer per
    namespace and kind (or one per kind cluster-wide), started and stopped with the app."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespaces: tuple[str, ...] = (),
        max_cronworkflows: int = DEFAULT_MAX_CRONWORKFLOWS,
        max_jobs: int = DEFAULT_MAX_JOBS,
    ) -> None:
        self._kube = kube
        self._namespaces = namespaces
        self.cronworkflows = CronWorkflowStore(max_cronworkflows)
        self.jobs_store = JobStore(max_jobs)
        selector = f"{vocabulary.LABEL_MANAGED_BY}={vocabulary.MANAGED_BY}"
        scopes: tuple[str | None, ...] = namespaces or (None,)
        self._cw_informers = {
            scope: Informer(kube, "cronworkflows", self.cronworkflows, namespace=scope)
            for scope in scopes
        }
        self._job_informers = {
            scope: Informer(kube, "jobs", self.jobs_store, namespace=scope, selector=selector)
            for scope in scopes
        }
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        informers: list[Informer[Any]] = [
            *self._cw_informers.values(),
            *self._job_informers.values(),
        ]
        for informer in informers:
            self._tasks.append(asyncio.ensure_future(informer.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- RunReads ------------------------------------------------------------------------

    def _informer(
        self, informers: dict[str | None, Informer[Any]], namespace: str
    ) -> Informer[Any] | None:
        informer = informers.get(None) or informers.get(namespace)
        return informer if informer is not None and informer.synced else None

    def cronworkflow(self, namespace: str, name: str) -> JsonDict | None:
        if self._informer(self._cw_informers, namespace) is None:
            return None
        return self.cronworkflows.get(namespace, name)

    def parsed(self, body: JsonDict) -> CronWorkflow | None:
        return self.cronworkflows.model(body)

    def next_schedule_times(self) -> list[object]:
        """Each cached CronWorkflow's ``status.nextScheduleTime`` as written (for the warm-up of
        the API connections before a minute's burst, :mod:`qstash_webhook.warmup`)."""
        return self.cronworkflows.next_schedule_times()

    def jobs(self, namespace: str, uid: str) -> list[JobView] | None:
        if self._informer(self._job_informers, namespace) is None:
            return None
        return self.jobs_store.of(namespace, uid)

    def job_created(self, job: JsonDict) -> None:
        self.jobs_store.put(job)

    # -- what it holds -------------------------------------------------------------------

    def synced(self, kind: str) -> bool:
        informers = self._cw_informers if kind == "cronworkflows" else self._job_informers
        store = self.cronworkflows if kind == "cronworkflows" else self.jobs_store
        return all(informer.synced for informer in informers.values()) and not store.overflow

    def objects(self, kind: str) -> int:
        return len(self.cronworkflows if kind == "cronworkflows" else self.jobs_store)

    def bytes(self, kind: str) -> int:
        return (self.cronworkflows if kind == "cronworkflows" else self.jobs_store).bytes
