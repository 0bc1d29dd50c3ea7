"""The operator's Job index: every Job of ours by (namespace, CronWorkflow), kept from its own
Job watch (an :class:`~qstash_operator.adapters.informer.Informer`), not kopf's.

The status mirror and the slot audit read it instead of listing Jobs, as they read kopf's index
before; each event is also handed on (:class:`JobEvents`: the mirror gathers it, a marker Job is
run as its tick's Job). kopf ran a worker, a cause and a handler invocation for each Job event,
about 0.5 ms of the operator's CPU each at a minute's burst (py-spy): for 2,000 Jobs, a second of
the two cores the API server needs then. Here an event costs its decode and what the mirror does.

What is kept of a Job is its :class:`~qstash_operator.services.observe.IndexedJob` (a few hundred
bytes). A list is slimmed page by page to the Job's metadata (without ``managedFields``) and
status: nothing here reads a Job's spec, except a marker Job's run, so marker Jobs stay whole.

Until every watched scope (a namespace, or the whole cluster) has been listed once the index is
not ``synced`` and nothing reads it (``on_synced`` hands it over): the periodic loop leaves the
audit for later, and the mirror lists Jobs itself. kopf gave the same guarantee by filling its
index before any handler ran.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Final

from qstash_operator.domain import vocabulary
from qstash_operator.domain.model import JsonDict
from qstash_operator.services.observe import IndexedJob, Key, indexed_job

JobEvents = Callable[[JsonDict, str | None], None]
"""Called with each Job and its event: ``ADDED``, ``MODIFIED``, ``DELETED``, or None when it
came in a list (on start, or after the watch could not continue)."""

_NO_JOBS: Final[Collection[IndexedJob]] = ()


def _slim(job: JsonDict) -> JsonDict:
    meta = job.get("metadata") or {}
    if (meta.get("labels") or {}).get(vocabulary.LABEL_TICK_MARKER) == "true":
        return job
    return {
        "metadata": {key: value for key, value in meta.items() if key != "managedFields"},
        "status": job.get("status") or {},
    }


def _where(job: JsonDict) -> tuple[Key, str] | None:
    """(namespace, CronWorkflow) and the Job's uid; None for a Job that names no CronWorkflow."""
    meta = job.get("metadata") or {}
    namespace = meta.get("namespace")
    owner = (meta.get("labels") or {}).get(vocabulary.LABEL_CRONWORKFLOW)
    uid = meta.get("uid")
    if not namespace or not owner or not uid:
        return None
    return (str(namespace), str(owner)), str(uid)


class JobIndexStore(Mapping[Key, Collection[IndexedJob]]):
    """The index (a :data:`~qstash_operator.services.observe.JobIndex`) and the informer's
    store at once."""

    def __init__(
        self,
        scopes: Collection[str | None],
        on_event: JobEvents,
        on_synced: Callable[[JobIndexStore], None] = lambda _: None,
    ) -> None:
        self._scopes = frozenset(scopes)
        self._listed: set[str | None] = set()
        self._on_event = on_event
        self._on_synced = on_synced
        self._jobs: dict[Key, dict[str, IndexedJob]] = {}
        self._where: dict[str, Key] = {}
        """Each Job's (namespace, CronWorkflow) by its uid, to move or drop it."""

    @property
    def synced(self) -> bool:
        """Whether every scope has been listed at least once."""
        return self._listed >= self._scopes

    # -- the informer's store ------------------------------------------------------------

    def slim(self, obj: JsonDict) -> JsonDict:
        return _slim(obj)

    def replace(self, items: list[JsonDict], namespace: str | None) -> None:
        for uid in [uid for uid, key in self._where.items() if namespace in (None, key[0])]:
            self._drop(uid)
        for item in items:
            self._put(item)
        was_synced = self.synced
        self._listed.add(namespace)
        if self.synced and not was_synced:
            self._on_synced(self)
        for item in items:
            self._on_event(item, None)

    def put(self, obj: JsonDict, *, event: str = "MODIFIED") -> None:
        self._put(obj)
        self._on_event(obj, event)

    def remove(self, obj: JsonDict) -> None:
        where = _where(obj)
        if where is not None:
            self._drop(where[1])
        self._on_event(obj, "DELETED")

    def _put(self, obj: JsonDict) -> None:
        where = _where(obj)
        if where is None:
            return
        key, uid = where
        if self._where.get(uid, key) != key:
            self._drop(uid)
        self._jobs.setdefault(key, {})[uid] = indexed_job(obj)
        self._where[uid] = key

    def _drop(self, uid: str) -> None:
        key = self._where.pop(uid, None)
        if key is None:
            return
        jobs = self._jobs.get(key, {})
        jobs.pop(uid, None)
        if not jobs:
            self._jobs.pop(key, None)

    # -- the index -----------------------------------------------------------------------

    def __getitem__(self, key: Key) -> Collection[IndexedJob]:
        jobs = self._jobs.get(key)
        if jobs is None:
            raise KeyError(key)
        return jobs.values()

    def get(  # type: ignore[override]
        self, key: Key, default: Collection[IndexedJob] = _NO_JOBS
    ) -> Collection[IndexedJob]:
        jobs = self._jobs.get(key)
        return default if jobs is None else jobs.values()

    def __iter__(self) -> Iterator[Key]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def jobs(self) -> int:
        """Jobs indexed."""
        return len(self._where)
