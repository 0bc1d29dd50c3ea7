"""``lead()`` on the real API server: a leader whose work fails says so, and frees the lease.

Found on the real node: the operator's work raised at start (kopf asked ``getpwuid`` about a uid
with no passwd entry), ``lead()`` treated the ended task as a clean stop and the process exited 0,
so the pod crash-looped as "Completed" with the traceback printed as an unretrieved exception.
"""

from __future__ import annotations

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.leader import Ending, lead


class WorkFailedError(RuntimeError):
    pass


async def test_a_failing_leader_raises_its_error_and_releases_the_lease(
    control_plane: ControlPlane, namespace: str
) -> None:
    kube = await Kube.from_environment(str(control_plane.kubeconfig))
    try:

        async def work() -> None:
            raise WorkFailedError("the operator could not start")

        with pytest.raises(WorkFailedError, match="could not start"):
            await lead(kube, name="lease", namespace=namespace, identity="pod-a", work=work)
        lease = await kube.get_lease(namespace, "lease")
        assert lease["spec"]["holderIdentity"] == ""  # a standby takes over at once

        async def clean() -> None:
            return None

        ending = await lead(kube, name="lease", namespace=namespace, identity="pod-b", work=clean)
        assert ending is Ending.DONE
    finally:
        await kube.close()
