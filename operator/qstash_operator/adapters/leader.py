"""Leader election on a ``coordination.k8s.io/v1`` Lease, so two operator replicas never fight.

Only the replica holding the lease runs kopf's handlers and the drift loop; the others wait,
ready to take over when the lease expires (a replica killed with ``kill -9`` stops renewing, and
another one leads ``LEASE_SECONDS`` later).

The rules are client-go's, written over our Kubernetes adapter (the official client's asyncio
election passes a wrong type to the Lease API and compares wall-clock times across machines):

- a lease is expired when *this* replica has not seen it change for ``LEASE_SECONDS``, measured on
  its own monotonic clock, so clock skew between machines cannot cut a leader short;
- every write carries the ``resourceVersion`` it read, so two candidates cannot both win;
- a leader that fails to renew for ``RENEW_DEADLINE_SECONDS`` steps down before anyone else may
  take over (deadline < lease duration).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Final

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    QStashOperatorError,
)
from qstash_operator.domain.model import JsonDict

logger = logging.getLogger(__name__)

LEASE_SECONDS: Final = 15
"""How long a silent leader keeps the lease: the Kubernetes components' default."""
RENEW_DEADLINE_SECONDS: Final = 10.0
"""A leader that cannot renew for this long steps down (before others may take over)."""
RETRY_SECONDS: Final = 2.0
"""How often candidates try to acquire and the leader renews."""


class Step(enum.Enum):
    CREATE = "create"  # no lease yet
    RENEW = "renew"  # ours
    TAKE_OVER = "take_over"  # someone else's, expired
    WAIT = "wait"  # someone else's, alive


@dataclasses.dataclass
class Observation:
    """The last lease version seen and when (monotonic seconds) it was first seen."""

    version: str | None = None
    seen_at: float = 0.0


def next_step(lease: JsonDict | None, *, identity: str, observed: Observation, now: float) -> Step:
    """Pure: what a candidate does given the lease it read (``now`` is monotonic seconds)."""
    if lease is None:
        return Step.CREATE
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    if holder == identity:
        return Step.RENEW
    if not holder:
        return Step.TAKE_OVER
    duration = float(spec.get("leaseDurationSeconds") or LEASE_SECONDS)
    if now - observed.seen_at > duration:
        return Step.TAKE_OVER
    return Step.WAIT


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLock:
    def __init__(self, kube: Kube, *, name: str, namespace: str, identity: str) -> None:
        self._kube = kube
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self._observed = Observation()

    async def try_acquire_or_renew(self) -> bool:
        """One round: True when this replica holds the lease afterwards."""
        try:
            lease: JsonDict | None = await self._kube.get_lease(self.namespace, self.name)
        except NotFoundError:
            lease = None
        now = time.monotonic()
        if lease is not None:
            version = lease["metadata"].get("resourceVersion")
            if version != self._observed.version:
                self._observed = Observation(version=version, seen_at=now)
        step = next_step(lease, identity=self.identity, observed=self._observed, now=now)
        if step is Step.WAIT:
            return False
        stamp = _micro_time(datetime.now(UTC))
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": stamp,
        }
        try:
            if lease is None:
                spec.update(acquireTime=stamp, leaseTransitions=0)
                await self._kube.create_lease(
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace},
                        "spec": spec,
                    }
                )
            else:
                old = lease.get("spec") or {}
                if step is Step.TAKE_OVER:
                    spec.update(
                        acquireTime=stamp,
                        leaseTransitions=int(old.get("leaseTransitions") or 0) + 1,
                    )
                    logger.info(
                        "lease %s/%s held by %s expired; taking over",
                        self.namespace,
                        self.name,
                        old.get("holderIdentity"),
                    )
                lease["spec"] = {**old, **spec}
                await self._kube.replace_lease(lease)
        except (AlreadyExistsError, ConflictError):
            return False
        return True

    async def release(self) -> None:
        """Give the lease up on a clean stop, so a standby need not wait for it to expire."""
        with contextlib.suppress(QStashOperatorError):
            lease = await self._kube.get_lease(self.namespace, self.name)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                await self._kube.replace_lease(lease)


async def lead(
    kube: Kube,
    *,
    name: str,
    namespace: str,
    identity: str,
    work: Callable[[], Coroutine[Any, Any, None]],
) -> bool:
    """Wait for the lease and run ``work`` while holding it.

    Returns True when ``work`` ended by itself (the lease is then released for a standby), False
    when the lease was lost (``work`` is cancelled). When ``work`` fails, the lease is released
    and its exception raised: a failure must not look like a clean stop (exit 0).
    """
    lock = LeaseLock(kube, name=name, namespace=namespace, identity=identity)
    logger.info("waiting for leader lease %s/%s as %s", namespace, name, identity)
    while not await _attempt(lock):  # noqa: ASYNC110 (polling the API server is the protocol)
        await asyncio.sleep(RETRY_SECONDS)
    logger.info("acquired leader lease %s/%s as %s", namespace, name, identity)
    task = asyncio.create_task(work())
    try:
        last_renewal = time.monotonic()
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=RETRY_SECONDS)
            if done:
                break
            if await _attempt(lock):
                last_renewal = time.monotonic()
            elif time.monotonic() - last_renewal > RENEW_DEADLINE_SECONDS:
                logger.warning("could not renew leader lease %s/%s; stepping down", namespace, name)
                return False
        await lock.release()
        task.result()  # raises what work() raised
        return True
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _attempt(lock: LeaseLock) -> bool:
    try:
        return await lock.try_acquire_or_renew()
    except QStashOperatorError as exc:  # API server unreachable or refusing: not leader now
        logger.warning("leader lease round failed: %s", exc)
        return False
