"""Leader election on a ``coordination.k8s.io/v1`` Lease, so two operator replicas never fight.

Only the replica holding the lease runs kopf's handlers and the drift loop; the others wait,
ready to take over when the lease expires (a replica killed with ``kill -9`` stops renewing, and
another one leads ``LEASE_SECONDS`` later).

The rules are client-go's, written over our Kubernetes adapter (the official client's asyncio
election passes a wrong type to the Lease API and compares wall-clock times across machines):

- a lease is expired when *this* replica has not seen it change for ``LEASE_SECONDS``, measured on
  its own monotonic clock, so clock skew between machines cannot cut a leader short;
- every write carries the ``resourceVersion`` it read, so two candidates cannot both win;
- a leader that cannot prove the lease stops acting before anyone else may take over.

The last rule is arithmetic, on the leader's monotonic clock (:class:`Timing`). Let ``t0`` be
when the leader *sent* the write that last renewed the lease: no standby sees that version before
it lands, so none counts its ``LEASE_SECONDS`` from earlier than ``t0``.

====================================  =============================================================
``t0 + RENEW_DEADLINE_SECONDS`` (10)  no renewal since ``t0``: the work (kopf, the drift loop) is
                                      cancelled. Every acquire/renew attempt is bounded by the
                                      time left until here (``asyncio.timeout``), so an API server
                                      that hangs cannot keep an attempt, and the leader, going.
``+ STOP_GRACE_SECONDS`` (13)         the work has stopped, or :func:`lead` says ``STUCK`` and the
                                      process exits at once (``os._exit``) rather than act on.
``t0 + LEASE_SECONDS`` (15)           the earliest a standby can lead.
====================================  =============================================================

``RENEW_DEADLINE_SECONDS + STOP_GRACE_SECONDS < LEASE_SECONDS`` leaves 2 s for clock-rate
differences between machines and scheduling delays (checked when :class:`Timing` is built). A
leader that reads the lease held by someone else stops at once, whatever the clock says.

What a lease cannot bound: a write the old leader sent before the API server froze may still be
applied when it thaws, after a standby took over. The conditional writes (``resourceVersion``
preconditions) and the Job-name lock are what keep such a late write from doubling a run.
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
"""A leader that cannot renew for this long stops its work (the Kubernetes components' default)."""
STOP_GRACE_SECONDS: Final = 3.0
"""How long the work gets to stop once cancelled. kopf and the drift loop stop within a second
(their API calls are cancelled where they wait); a process whose work has not stopped by then is
ended instead, since the lease is about to pass to a standby."""
RETRY_SECONDS: Final = 2.0
"""How often candidates try to acquire and the leader renews."""


@dataclasses.dataclass(frozen=True)
class Timing:
    """The lease arithmetic of the module docstring; every instant is monotonic seconds."""

    lease: float = LEASE_SECONDS
    renew_deadline: float = RENEW_DEADLINE_SECONDS
    stop_grace: float = STOP_GRACE_SECONDS
    retry: float = RETRY_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline:
            raise ValueError(f"retry {self.retry} s must be above 0 and below the renew deadline")
        if not self.renew_deadline + self.stop_grace < self.lease:
            raise ValueError(
                f"renew deadline {self.renew_deadline} s + stop grace {self.stop_grace} s must be "
                f"below the lease duration {self.lease} s, or a standby could lead while the old "
                "leader still acts"
            )

    def step_down_at(self, renewed_at: float) -> float:
        """When the work is cancelled, failing a renewal (``renewed_at``: the last one's send)."""
        return renewed_at + self.renew_deadline

    def stopped_by(self, renewed_at: float) -> float:
        """When the work has stopped at the latest (or the process is ended)."""
        return self.step_down_at(renewed_at) + self.stop_grace

    def standby_may_lead_at(self, renewed_at: float) -> float:
        """The earliest a standby can take the lease over."""
        return renewed_at + self.lease

    def attempt_budget(self, renewed_at: float, now: float) -> float:
        """How long the next renewal attempt may take: the time left before the step-down."""
        return max(0.0, self.step_down_at(renewed_at) - now)

    def pause_before_attempt(self, renewed_at: float, now: float) -> float:
        """How long to wait before the next renewal: the retry period, never past the step-down."""
        return min(self.retry, self.attempt_budget(renewed_at, now))


class Step(enum.Enum):
    CREATE = "create"  # no lease yet
    RENEW = "renew"  # ours
    TAKE_OVER = "take_over"  # someone else's, expired
    WAIT = "wait"  # someone else's, alive


class Ending(enum.Enum):
    """How :func:`lead` ended."""

    DONE = "done"  # the work ended by itself; the lease was released for a standby
    LOST = "lost"  # the lease could not be proven; the work was stopped in time
    STUCK = "stuck"  # the lease could not be proven and the work did not stop: exit now


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
    def __init__(
        self,
        kube: Kube,
        *,
        name: str,
        namespace: str,
        identity: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self._clock = clock
        self._observed = Observation()
        self.holder: str | None = None
        """The holder the last read showed (None before any read)."""

    async def try_acquire_or_renew(self) -> float | None:
        """One round. When this replica holds the lease afterwards: the monotonic time the write
        that proves it was sent (standbys count from no earlier); else None."""
        try:
            lease: JsonDict | None = await self._kube.get_lease(self.namespace, self.name)
        except NotFoundError:
            lease = None
        now = self._clock()
        if lease is not None:
            version = lease["metadata"].get("resourceVersion")
            if version != self._observed.version:
                self._observed = Observation(version=version, seen_at=now)
            self.holder = (lease.get("spec") or {}).get("holderIdentity") or ""
        step = next_step(lease, identity=self.identity, observed=self._observed, now=now)
        if step is Step.WAIT:
            return None
        stamp = _micro_time(datetime.now(UTC))
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": stamp,
        }
        sent_at = self._clock()
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
            return None
        self.holder = self.identity
        return sent_at

    def held_elsewhere(self) -> bool:
        """The last read showed the lease held by another replica."""
        return bool(self.holder) and self.holder != self.identity

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
    timing: Timing | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Ending:
    """Wait for the lease and run ``work`` while the lease is proven (the module docstring).

    ``DONE``: ``work`` ended by itself and the lease was released. ``LOST``: the lease could not
    be proven and ``work`` was cancelled and has stopped. ``STUCK``: ``work`` did not stop within
    the grace; the caller must end the process now.
    """
    timing = timing or Timing()
    lock = LeaseLock(kube, name=name, namespace=namespace, identity=identity, clock=clock)
    logger.info("waiting for leader lease %s/%s as %s", namespace, name, identity)
    renewed_at = await _attempt(lock, budget=timing.renew_deadline)
    while renewed_at is None:  # polling the API server is the protocol
        await asyncio.sleep(timing.retry)
        renewed_at = await _attempt(lock, budget=timing.renew_deadline)
    logger.info("acquired leader lease %s/%s as %s", namespace, name, identity)
    task = asyncio.create_task(work())
    try:
        return await _hold(lock, task, renewed_at=renewed_at, timing=timing, clock=clock)
    except BaseException:
        task.cancel()  # lead() itself was cancelled (the process is stopping): so is the work
        raise


async def _hold(
    lock: LeaseLock,
    task: asyncio.Task[None],
    *,
    renewed_at: float,
    timing: Timing,
    clock: Callable[[], float],
) -> Ending:
    """Renew while ``task`` runs; stop it the moment the lease cannot be proven."""
    where = f"{lock.namespace}/{lock.name}"
    while True:
        done, _ = await asyncio.wait(
            {task}, timeout=timing.pause_before_attempt(renewed_at, clock())
        )
        if done:
            await lock.release()
            task.result()  # the work's own failure, if it failed, is the process's
            return Ending.DONE
        budget = timing.attempt_budget(renewed_at, clock())
        sent_at = await _attempt(lock, budget=budget) if budget > 0 else None
        if sent_at is not None:
            renewed_at = sent_at
        elif lock.held_elsewhere():
            logger.warning(
                "leader lease %s is held by %s now; stopping at once", where, lock.holder
            )
            return await _stop(task, grace=timing.stop_grace)
        elif clock() >= timing.step_down_at(renewed_at):
            logger.warning(
                "could not renew leader lease %s for %.0f s; stopping before a standby may lead "
                "(%.0f s after the last renewal)",
                where,
                timing.renew_deadline,
                timing.lease,
            )
            return await _stop(task, grace=timing.stop_grace)


async def _stop(task: asyncio.Task[None], *, grace: float) -> Ending:
    """Cancel the work and wait up to ``grace`` for it to end."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        logger.error("the leader's work did not stop within %.0f s of losing the lease", grace)
        return Ending.STUCK
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.warning("the leader's work failed while stopping: %r", error)
    logger.info("the leader's work has stopped")
    return Ending.LOST


async def _attempt(lock: LeaseLock, *, budget: float) -> float | None:
    """One acquire/renew round, given at most ``budget`` seconds."""
    try:
        async with asyncio.timeout(budget):
            return await lock.try_acquire_or_renew()
    except TimeoutError:
        logger.warning("leader lease round got no answer within %.1f s", budget)
        return None
    except QStashOperatorError as exc:  # API server unreachable or refusing: not proven now
        logger.warning("leader lease round failed: %s", exc)
        return None
