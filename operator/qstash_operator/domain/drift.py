"""Which QStash schedules drift repair may delete: the orphan rule, pure.

A schedule id is ``<clusterName>.<namespace>.<name>`` (:mod:`qstash_operator.domain.naming`).
Every operator that shares a QStash account lists every schedule of that account, so the id
prefix alone says "someone with my cluster name made this", not "I made this". An operator can
only know that a schedule has lost its CronWorkflow when it can see the CronWorkflow's namespace:
a namespaced release (``QSTASH_OPERATOR_NAMESPACES``) lists CronWorkflows of its own namespaces
only, and a schedule of any other namespace belongs, as far as it can tell, to another release.

So a schedule is an orphan when, and only when:

1. its id parses back to this cluster name (a prefix match alone would also take
   ``<cluster>.x`` ids this project never makes);
2. its namespace is watched: every namespace for a cluster-wide operator, else one of the listed;
3. no CronWorkflow this pass kept uses it.

Two operators on one QStash account may therefore share a cluster name only when the sets of
namespaces they watch are disjoint (and neither is cluster-wide); otherwise each deletes the
other's schedules of the namespaces both watch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from qstash_operator.domain import naming


def watches(schedule_id: str, *, cluster: str, namespaces: Collection[str]) -> bool:
    """Whether an operator named ``cluster`` watching ``namespaces`` (empty: all) owns the id."""
    owner = naming.parse_schedule_id(schedule_id)
    if owner is None or owner.cluster != cluster:
        return False
    return not namespaces or owner.namespace in namespaces


def orphans(
    observed: Iterable[str],
    keep: Collection[str],
    *,
    cluster: str,
    namespaces: Collection[str],
) -> list[str]:
    """The schedule ids among ``observed`` to delete, sorted (the rule in the module docstring).

    ``keep`` holds the ids of the CronWorkflows listed in this pass that still need their
    schedule (on QStash, handing over from QStash, or being finalized).
    """
    return sorted(
        sid
        for sid in set(observed)
        if sid not in keep and watches(sid, cluster=cluster, namespaces=namespaces)
    )
