"""List then watch one kind into a store, the way client-go's informers keep their copies.

List (in pages), then watch from the list's ``resourceVersion``; a watch the server ends is opened
again from the last version seen (bookmarks included), a 410 Gone lists again, and any other
failure marks the copy not synced until a fresh list succeeds, retried with a growing delay.
The webhook keeps its CronWorkflows and Jobs this way (``qstash_webhook.cache``), and the
operator its Job index (``services.job_index``): neither goes through kopf, whose per-event
machinery (a worker per object, causes, handler kwargs) cost the operator about 0.5 ms per Job
event at a minute's burst, three times the decode of the event itself (py-spy).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Generic, Protocol, TypeVar

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain.errors import QStashOperatorError, WatchExpiredError
from qstash_operator.domain.model import JsonDict

logger = logging.getLogger(__name__)

KINDS: Final = ("cronworkflows", "jobs")
LIST_PAGE: Final = 500
"""Objects per list page (client-go's informers use 500 too)."""
RETRY_FIRST_SECONDS: Final = 1.0
RETRY_MAX_SECONDS: Final = 30.0


class Store(Protocol):
    def slim(self, obj: JsonDict) -> JsonDict:
        """What of ``obj`` the store keeps (applied to each page of a list as it arrives, so a
        list of 30,000 Jobs never sits in memory whole)."""

    def replace(self, items: list[JsonDict], namespace: str | None) -> None:
        """Everything in ``namespace`` (None: everywhere) is now ``items``."""

    def put(self, obj: JsonDict, *, event: str = "MODIFIED") -> None:
        """``obj`` was added (``event`` ``ADDED``) or changed (``MODIFIED``)."""

    def remove(self, obj: JsonDict) -> None: ...


S = TypeVar("S", bound=Store)


class Informer(Generic[S]):
    """List, then watch, one path into one store; re-list when the watch cannot continue."""

    def __init__(
        self,
        kube: Kube,
        kind: str,
        store: S,
        *,
        namespace: str | None,
        selector: str = "",
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"no informer for {kind!r}")
        self.kube = kube
        self.kind = kind
        self.namespace = namespace
        self.what = f"{kind} in {namespace or 'all namespaces'}"
        self.store = store
        self.selector = selector
        self.synced = False
        self.lists = 0

    async def run(self) -> None:
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                version = await self._list()
                self.synced = True
                delay = RETRY_FIRST_SECONDS
                while True:
                    version = await self._watch(version)
            except WatchExpiredError:
                logger.info("watch of %s expired; listing again", self.what)
                continue
            except QStashOperatorError as exc:
                self.synced = False
                logger.warning(
                    "cache of %s not synced (%s); retrying in %.0fs", self.what, exc, delay
                )
            except (ValueError, KeyError, TypeError) as exc:  # a body we cannot read
                self.synced = False
                logger.warning("cache of %s: unreadable answer (%r); listing again", self.what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _list(self) -> str:
        items: list[JsonDict] = []
        token: str | None = None
        while True:
            if self.kind == "jobs":
                page, version, token = await self.kube.list_jobs_page(
                    self.namespace, self.selector, limit=LIST_PAGE, token=token
                )
            else:
                page, version, token = await self.kube.list_cronworkflows_page(
                    self.namespace, limit=LIST_PAGE, token=token
                )
            items.extend(self.store.slim(item) for item in page)
            del page
            if token is None:
                break
        self.store.replace(items, self.namespace)
        self.lists += 1
        return version

    async def _watch(self, version: str) -> str:
        events = (
            self.kube.watch_jobs(self.namespace, self.selector, resource_version=version)
            if self.kind == "jobs"
            else self.kube.watch_cronworkflows(self.namespace, resource_version=version)
        )
        async for kind, obj in events:
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind in ("ADDED", "MODIFIED"):
                self.store.put(obj, event=kind)
            elif kind == "DELETED":
                self.store.remove(obj)
        return version
