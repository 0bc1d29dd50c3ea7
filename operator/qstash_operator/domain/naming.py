"""Deterministic names: QStash schedule ids, Job names, CronJob names.

Names double as locks (the CronJob controller's trick): a tick's Job is always
``<cronworkflow>-<unix minutes of the scheduled time>``, whoever creates it (the webhook, a second
webhook replica, a QStash retry, or the fallback CronJob, whose controller uses the very same rule),
so at most one of them wins the create and the others see ``AlreadyExists``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import datetime
from typing import Final, NewType

ScheduleId = NewType("ScheduleId", str)
JobName = NewType("JobName", str)

MAX_CRONWORKFLOW_NAME: Final = 52
"""63 (a Job name must fit a label value) minus ``-`` minus 8 digits of unix minutes, plus slack
for the ``-manual-`` suffix of manual runs; the same limit the CronJob API uses."""
MAX_JOB_NAME: Final = 63
SHORT_ID_LENGTH: Final = 5

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_SCHEDULE_ID_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")  # QStash's rule (wire reference 2.1)
_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


def valid_cluster_name(cluster: str) -> bool:
    """Cluster names hold no ``.`` so a schedule id parses back (and fit QStash's charset)."""
    return bool(_CLUSTER_NAME.match(cluster))


ENTRY_SEPARATOR: Final = "_"
"""Between a CronWorkflow's name and a ``spec.schedules`` entry's name in a schedule id. Not a
dot: CronWorkflow names may hold dots, so ``a.b`` and ``a`` with entry ``b`` would collide. An
underscore is legal in QStash ids and impossible in Kubernetes names and DNS-label entries, so
the id parses back unambiguously."""


def schedule_id(cluster: str, namespace: str, name: str, entry: str | None = None) -> ScheduleId:
    """``<cluster>.<namespace>.<name>`` (one ``spec.schedule``) or
    ``<cluster>.<namespace>.<name>_<entry>`` (an entry of ``spec.schedules``): stable, unique per
    cluster, QStash-legal."""
    sid = f"{cluster}.{namespace}.{name}"
    if entry is not None:
        if not entry or ENTRY_SEPARATOR in entry or "." in entry:
            raise ValueError(f"{entry!r} is not a schedule entry name")
        sid += ENTRY_SEPARATOR + entry
    if not valid_cluster_name(cluster) or not _SCHEDULE_ID_CHARS.match(sid):
        raise ValueError(
            f"cannot build a QStash schedule id from {cluster!r}/{namespace!r}/{name!r}"
        )
    return ScheduleId(sid)


@dataclasses.dataclass(frozen=True)
class ScheduleOwner:
    cluster: str
    namespace: str
    name: str
    entry: str | None = None
    """The ``spec.schedules`` entry; None for a single ``spec.schedule``."""


def parse_schedule_id(sid: str) -> ScheduleOwner | None:
    """The inverse of :func:`schedule_id`; None for ids this project did not make.

    Namespaces and cluster names hold no dots, CronWorkflow names may: split on the first two.
    Neither namespaces nor names hold ``_``, so one in the rest separates the entry.
    """
    parts = sid.split(".", 2)
    if len(parts) != 3 or not all(parts) or not valid_cluster_name(parts[0]):
        return None
    if ENTRY_SEPARATOR in parts[1]:
        return None
    name, sep, entry = parts[2].partition(ENTRY_SEPARATOR)
    if sep and (not name or not entry or ENTRY_SEPARATOR in entry or "." in entry):
        return None
    return ScheduleOwner(
        cluster=parts[0], namespace=parts[1], name=name, entry=entry if sep else None
    )


def schedule_id_prefix(cluster: str) -> str:
    """Every schedule this cluster owns starts with this; drift repair lists by it."""
    return f"{cluster}."


def unix_minutes(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("unix_minutes needs a timezone-aware datetime")
    return int(moment.timestamp()) // 60


def job_name(cronworkflow: str, scheduled: datetime) -> JobName:
    """``<cronworkflow>-<unix minutes>``, exactly the CronJob controller's ``getJobName``."""
    return JobName(f"{cronworkflow}-{unix_minutes(scheduled)}")


def short_id(seed: str) -> str:
    """Five base-36 characters derived from ``seed`` (deterministic, so retries reuse it)."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    chars = []
    for _ in range(SHORT_ID_LENGTH):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def manual_job_name(cronworkflow: str, seed: str) -> JobName:
    """``<cronworkflow>-manual-<short id>``, the base cut so the whole fits 63 characters.

    ``seed`` makes the id: the same request (e.g. the same ``run-now`` annotation value on the same
    uid) always maps to the same Job, so an operator that crashes after creating it cannot make a
    second one.
    """
    suffix = f"-manual-{short_id(seed)}"
    base = cronworkflow[: MAX_JOB_NAME - len(suffix)].rstrip("-.")
    return JobName(base + suffix)


def cronjob_name(cronworkflow: str) -> str:
    """The fallback CronJob is named like its CronWorkflow, so its Jobs get the same names."""
    return cronworkflow


MAX_CRONJOB_NAME: Final = 52
"""The CronJob API's own limit (its controller appends 11 characters to name Jobs)."""


def entry_cronjob_name(cronworkflow: str, entry: str) -> str:
    """The CronJob of one ``spec.schedules`` entry: ``<name>-<entry>-<5-char hash>``, the base
    cut so the whole fits 52. The hash keeps cut names apart (``a-b`` + ``c`` vs ``a`` +
    ``b-c`` too). It makes suspended marker Jobs, never the run's Job (that is named for the
    tick, ``<name>-<unix minutes>``, by the operator)."""
    suffix = "-" + short_id(f"{cronworkflow}/{entry}")
    base = f"{cronworkflow}-{entry}"[: MAX_CRONJOB_NAME - len(suffix)].rstrip("-.")
    return base + suffix
