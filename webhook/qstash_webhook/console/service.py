"""The console's reads: fetch what a page needs, ask RBAC about each part, hand over to the pure
view model.

The webhook reads with its own ServiceAccount, so it must never show a caller more than the
caller could read with ``kubectl``: every part of a page is behind a SubjectAccessReview *for the
caller* (``list`` CronWorkflows per namespace, ``get`` one, ``list`` Jobs, ``list`` Events), and a
part the caller may not read is left out with the reason, never filled in. The buttons' states
come from the same reviews (``patch`` and the custom verb ``trigger`` on that CronWorkflow), and
the actions themselves go through the seed's views, which check again.

Reviews for one page run concurrently (a page costs one round trip to the API server, not one
per question), bounded by :data:`MAX_CONCURRENT_REVIEWS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from datetime import datetime
from typing import Final, TypeVar

from qstash_operator.adapters.kube import Kube, UserInfo
from qstash_operator.domain import builders, vocabulary
from qstash_operator.domain.errors import NotFoundError
from qstash_operator.domain.model import JsonDict
from qstash_operator.services.catalog import CatalogService
from qstash_webhook.access import BATCH, CORE, Access, Check, denial
from qstash_webhook.console import viewmodel
from qstash_webhook.console.viewmodel import (
    DetailInputs,
    JobRow,
    Json,
    Parsed,
    Permission,
)
from qstash_webhook.errors import ApiError

MAX_CONCURRENT_REVIEWS: Final = 16
"""Reviews and reads in flight for one page: a list over many namespaces must not take more of
the connection pool (64, shared with deliveries) than a burst of deliveries would."""
MANAGED_JOBS: Final = builders.label_selector({vocabulary.LABEL_MANAGED_BY: vocabulary.MANAGED_BY})

T = TypeVar("T")


async def _bounded(calls: Iterable[Awaitable[T]]) -> list[T]:
    gate = asyncio.Semaphore(MAX_CONCURRENT_REVIEWS)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))


class ConsoleService:
    def __init__(self, kube: Kube, catalog: CatalogService, access: Access) -> None:
        self._kube = kube
        self._catalog = catalog
        self._access = access

    async def _permission(self, user: UserInfo, check: Check) -> Permission:
        decision = await self._access.decide(user, check)
        if decision.allowed:
            return Permission(True)
        return Permission(False, denial(user, check, decision))

    async def _require(self, user: UserInfo, check: Check) -> None:
        permission = await self._permission(user, check)
        if not permission.allowed:
            raise ApiError(403, "Forbidden", permission.denial)

    # -- the list ---------------------------------------------------------------------------

    async def _listable(
        self, user: UserInfo, namespace: str | None, present: Sequence[str]
    ) -> tuple[list[str] | None, str | None]:
        """The namespaces whose CronWorkflows the caller may list (None: all of them), and a
        note when some were left out."""
        if namespace is not None:
            await self._require(user, Check("list", namespace))
            return [namespace], None
        everywhere = Check("list", None)
        cluster = await self._permission(user, everywhere)
        if cluster.allowed:
            return None, None
        checks = await _bounded(self._permission(user, Check("list", ns)) for ns in present)
        allowed = [ns for ns, permission in zip(present, checks, strict=True) if permission.allowed]
        if not allowed:
            raise ApiError(403, "Forbidden", cluster.denial)
        # Said without a count: how many other namespaces hold CronWorkflows is itself something
        # a caller without cluster-wide list is not told.
        note = "Only the namespaces where you may list CronWorkflows are shown."
        return allowed, note

    async def _jobs_by_owner(
        self, user: UserInfo, namespaces: Sequence[str]
    ) -> tuple[set[str], dict[str, list[JobRow]]]:
        """The namespaces whose Jobs the caller may list, and there every Job of ours by its
        CronWorkflow's uid. Elsewhere the list shows no outcome rather than a guess."""
        permissions = await _bounded(
            self._permission(user, Check("list", ns, group=BATCH, resource="jobs"))
            for ns in namespaces
        )
        readable = [ns for ns, p in zip(namespaces, permissions, strict=True) if p.allowed]
        listings = await _bounded(self._kube.list_jobs(ns, MANAGED_JOBS) for ns in readable)
        by_uid: dict[str, list[JobRow]] = {}
        for jobs in listings:
            for job in jobs:
                labels = (job.get("metadata") or {}).get("labels") or {}
                uid = labels.get(vocabulary.LABEL_CRONWORKFLOW_UID)
                if uid:
                    by_uid.setdefault(str(uid), []).append(viewmodel.job_row(job))
        return set(readable), by_uid

    async def list_page(self, user: UserInfo, *, namespace: str | None, now: datetime) -> Json:
        bodies = [Parsed.of(body) for body in await self._catalog.bodies(namespace=namespace)]
        present = sorted({parsed.namespace for parsed in bodies})
        allowed, note = await self._listable(user, namespace, present)
        if allowed is not None:
            bodies = [parsed for parsed in bodies if parsed.namespace in allowed]
        bodies.sort(key=lambda parsed: (parsed.namespace, parsed.name))
        visible = sorted({parsed.namespace for parsed in bodies})
        readable, by_uid = await self._jobs_by_owner(user, visible)
        rows = [
            viewmodel.row_json(
                parsed,
                by_uid.get(str(parsed.meta.get("uid", "")), [])
                if parsed.namespace in readable
                else None,
                now,
            )
            for parsed in bodies
        ]
        return viewmodel.list_json(rows, user=user.username, now=now, namespaces=visible, note=note)

    # -- one CronWorkflow -------------------------------------------------------------------

    async def detail_page(
        self, user: UserInfo, *, namespace: str, name: str, now: datetime
    ) -> Json:
        await self._require(user, Check("get", namespace, name))
        if not self._catalog.watches(namespace):
            raise NotFoundError(f"namespace {namespace} is not watched by this operator")
        body = await self._kube.get_cronworkflow(namespace, name)
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        jobs_check = Check("list", namespace, group=BATCH, resource="jobs")
        events_check = Check("list", namespace, group=CORE, resource="events")
        jobs_ok, events_ok, patch, trigger = await _bounded(
            [
                self._permission(user, jobs_check),
                self._permission(user, events_check),
                self._permission(user, Check("patch", namespace, name)),
                self._permission(user, Check("trigger", namespace, name)),
            ]
        )
        selector = builders.label_selector(
            {vocabulary.LABEL_CRONWORKFLOW: name, vocabulary.LABEL_CRONWORKFLOW_UID: uid}
        )
        jobs: list[JsonDict] | None = None
        events: list[JsonDict] | None = None
        if jobs_ok.allowed and events_ok.allowed:
            jobs, events = await asyncio.gather(
                self._kube.list_jobs(namespace, selector),
                self._kube.list_events(namespace, uid=uid),
            )
        elif jobs_ok.allowed:
            jobs = await self._kube.list_jobs(namespace, selector)
        elif events_ok.allowed:
            events = await self._kube.list_events(namespace, uid=uid)
        inputs = DetailInputs(
            parsed=Parsed.of(body),
            jobs=jobs,
            jobs_denied=jobs_ok.denial,
            events=events,
            events_denied=events_ok.denial,
            patch=patch,
            trigger=trigger,
        )
        return viewmodel.detail_json(inputs, user=user.username, now=now)
