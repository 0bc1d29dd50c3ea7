"""Drift repair's decisions, pure: which schedules are orphans, and when the loop is unwell.

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

The loop that runs a pass every resync period must not die of one bad pass: whatever a pass
raises is logged and the next pass follows after :func:`failure_delay`; :func:`staleness` says
when passes have failed for long enough that readiness should report it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Final

from qstash_operator.domain import naming
from qstash_operator.domain.errors import OUTAGE_FIRST_RETRY_SECONDS, TransientError
from qstash_operator.domain.retry import MAX_DOUBLINGS, retry_delay


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


# -- the loop's health ------------------------------------------------------------------------

STALE_PERIODS: Final = 3
"""Drift that has not succeeded for this many resync periods makes the leader unready: one
failed pass is a blip (QStash down for a minute), three in a row mean nobody repairs drift."""


def failure_delay(error: BaseException, *, failures: int, period: float, draw: float) -> float:
    """Seconds before the pass after ``failures`` consecutive failed ones (``failures`` >= 1).

    A transient error's own hint, grown as :func:`qstash_operator.domain.retry.retry_delay`
    grows it; any other error (QStash refusing the list, a bug) from
    :data:`OUTAGE_FIRST_RETRY_SECONDS`, doubling. Never longer than one period: a failing loop
    tries at least as often as a healthy one, so readiness reflects the latest attempt.
    """
    if failures < 1:
        raise ValueError(f"failures must be at least 1, got {failures}")
    if isinstance(error, TransientError):
        delay = retry_delay(error, failures - 1, draw)
    else:
        delay = OUTAGE_FIRST_RETRY_SECONDS * 2 ** min(failures - 1, MAX_DOUBLINGS)
    return min(delay, period)


def staleness(
    *,
    last_success: datetime | None,
    since: datetime,
    now: datetime,
    period: float,
    last_error: str | None,
) -> str | None:
    """Why drift repair counts as not working, or None while it does.

    ``since`` is when the loop started (this replica became leader); ``last_success`` the start
    of the last pass that completed. Not working: no success for more than
    :data:`STALE_PERIODS` periods since the later of the two.
    """
    reference = last_success if last_success is not None else since
    silent = (now - reference).total_seconds()
    limit = STALE_PERIODS * period
    if silent <= limit:
        return None
    when = f"since {last_success.isoformat()}" if last_success is not None else "since it started"
    error = f"; last error: {last_error}" if last_error else ""
    return (
        f"drift repair has not completed a pass {when} ({silent:.0f}s, more than "
        f"{STALE_PERIODS} periods of {period:g}s){error}"
    )
