"""Leader election on a ``coordination.k8s.io`` Lease, so two operator replicas never fight.

Only the replica holding the lease runs kopf's handlers and the drift loop; the others wait,
ready to take over when the lease expires (a replica killed with ``kill -9`` stops renewing, and
another one leads ``LEASE_SECONDS`` later). Built on the official client's asyncio election.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from kubernetes.aio.leaderelection import electionconfig, leaderelection
from kubernetes.aio.leaderelection.resourcelock.leaselock import LeaseLock

from qstash_operator.adapters.kube import Kube

logger = logging.getLogger(__name__)

LEASE_SECONDS: Final = 15.0
"""How long a silent leader keeps the lease: the Kubernetes components' default."""
RENEW_DEADLINE_SECONDS: Final = 10.0
"""A leader that cannot renew for this long steps down (before others may take over)."""
RETRY_SECONDS: Final = 2.0
"""How often candidates try to acquire and the leader renews."""


async def lead(
    kube: Kube,
    *,
    name: str,
    namespace: str,
    identity: str,
    work: Callable[[], Awaitable[None]],
) -> None:
    """Wait for the lease, run ``work`` while holding it; return once the lease is lost."""

    async def started() -> None:
        logger.info("acquired leader lease %s/%s as %s", namespace, name, identity)
        await work()

    async def stopped() -> None:
        logger.warning("lost leader lease %s/%s; stopping", namespace, name)

    lock = LeaseLock(name, namespace, identity, kube.api_client)
    config = electionconfig.Config(
        lock,
        lease_duration=LEASE_SECONDS,
        renew_deadline=RENEW_DEADLINE_SECONDS,
        retry_period=RETRY_SECONDS,
        onstarted_leading=started,
        onstopped_leading=stopped,
    )
    logger.info("waiting for leader lease %s/%s as %s", namespace, name, identity)
    await leaderelection.LeaderElection(config).run()
