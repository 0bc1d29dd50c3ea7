"""The one object that reads the environment.

``Settings.from_env(os.environ)`` is called once, by the CLI, and the result is handed out
explicitly (kopf ``memo``, aiohttp ``AppKey``). Nothing else reads ``os.environ``. Missing or
contradictory settings raise :class:`SettingsError` naming the variable and the fix, and the process
stops before doing anything.

Variables (the first four are the seed document's names):

=====================================  =========================================================
``QSTASH_TOKEN``                       QStash API token. Unset: development mode (CronJobs).
                                       The webhook needs it too: it asks QStash which message
                                       a retried delivery is (``GET /v2/messages/{id}``).
``QSTASH_CURRENT_SIGNING_KEY``         Key QStash signs deliveries with (webhook).
``QSTASH_NEXT_SIGNING_KEY``            Key it will sign with after a rotation (webhook).
``QSTASH_URL``                         QStash API base (default https://qstash.upstash.io);
                                       point it at ``qstash-operator qstash-server`` locally.
``WEBHOOK_PUBLIC_URL``                 Public https URL of the webhook service (the seed's
                                       ``NEXT_PUBLIC_APP_URL``, also read as a fallback).
``QSTASH_SIGNING_KEYS_DIR``            Folder of a mounted Secret holding the two keys as files
                                       named like the variables; re-read when they change.
``QSTASH_OPERATOR_CLUSTER_NAME``       First part of schedule ids (default ``default``).
``QSTASH_OPERATOR_BACKEND``            Default for ``spec.backend: Auto``: Auto|QStash|CronJob.
``QSTASH_OPERATOR_RESYNC_SECONDS``     Drift-repair period (default 300).
``QSTASH_OPERATOR_WORKER_LIMIT``       CronWorkflows handled at once (default 100).
``QSTASH_OPERATOR_CLOCK_TOLERANCE``    Seconds of clock skew accepted on signatures (default 30).
``QSTASH_OPERATOR_FINALIZER_TIMEOUT``  Seconds a deletion retries a backend that fails before it
                                       leaves the schedule behind (default 300).
``QSTASH_OPERATOR_ALLOW_PRIVATE_URL``  ``true`` lets a loopback/private/http public URL serve
                                       QStash (local stacks and tests only).
``QSTASH_OPERATOR_NAMESPACES``         Comma-separated namespaces to watch (default: all).
``QSTASH_OPERATOR_API_URL``           Where ``qstash-operator list|trigger`` reach the webhook's
                                       API (default WEBHOOK_PUBLIC_URL, else the local stack).
``QSTASH_OPERATOR_API_TOKEN``         Kubernetes bearer token those commands send (default: the
                                       kubeconfig user's token, and only to a loopback URL).
``QSTASH_OPERATOR_API_AUDIENCE``      The audience tokens for the webhook's API must be bound to
                                       (default ``qstash-operator``).
``QSTASH_WEBHOOK_CACHE``              ``false`` turns the webhook's watch-fed caches off: every
                                       delivery then reads and writes inline (default true).
``QSTASH_WEBHOOK_STATUS_DELAY``        Seconds without a delivery after which the queued status
                                       records and events are written (default 1): not during a
                                       minute's burst of Job creates.
``QSTASH_WEBHOOK_STATUS_MAX_DELAY``    Seconds a status record waits at most while deliveries
                                       keep coming (default 15; at least the delay, below the
                                       operator's ``QSTASH_OPERATOR_MIRROR_RECORD_GRACE``).
``QSTASH_WEBHOOK_CACHE_MAX_CRONWORKFLOWS``  Bound of the CronWorkflow cache (default 50000).
``QSTASH_WEBHOOK_CACHE_MAX_JOBS``      Bound of the Job cache (default 150000).
``POD_NAMESPACE``, ``POD_NAME``        Set by the chart (downward API): where the leader Lease
                                       lives and who holds it.
=====================================  =========================================================

The slot audit (``status.recentSlots``): ``QSTASH_OPERATOR_SLOT_AUDIT_SECONDS`` is how often each
CronWorkflow's slots are audited (default 30), ``QSTASH_OPERATOR_MISSED_GRACE_SECONDS`` how long
after its tick a slot with no run reads Missed (default 90: QStash's schedule-load delay and its
first attempt).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from qstash_operator.domain import naming
from qstash_operator.domain.errors import SettingsError
from qstash_operator.domain.model import BackendChoice
from qstash_operator.domain.reconcile import DEFAULT_FINALIZER_TIMEOUT
from qstash_operator.domain.urls import check_public_url

DEFAULT_QSTASH_URL: Final = "https://qstash.upstash.io"
DEFAULT_API_AUDIENCE: Final = "qstash-operator"
"""What ``kubectl create token <sa> --audience qstash-operator`` binds a token to: the webhook's
API accepts no other, so a token meant for the API server is never one for the webhook."""
_AUDIENCE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:/?#@!$&'()*+;=%-]{0,252}")
_API_SERVER_AUDIENCES: Final = ("https://kubernetes.default.svc", "kubernetes.default.svc")
"""Prefixes of the issuer most clusters use, which is also the API server's default audience."""


class Secret:
    """A string that never prints itself: ``repr``/``str`` show ``***`` so logs cannot leak it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclasses.dataclass(frozen=True)
class QStashSettings:
    url: str = DEFAULT_QSTASH_URL
    """API base URL; the SDK strips a trailing slash."""
    token: Secret | None = None
    """Bearer token for the QStash API. None means no QStash: development mode."""
    current_signing_key: Secret | None = None
    """HS256 key of today's deliveries."""
    next_signing_key: Secret | None = None
    """HS256 key after the next rotation; deliveries signed with it must verify too."""
    signing_keys_dir: Path | None = None
    """A mounted Secret with files QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY. When
    set, the files win over the variables and are re-read on change (rotation without restart)."""

    @property
    def has_signing_keys(self) -> bool:
        return self.signing_keys_dir is not None or (
            self.current_signing_key is not None and self.next_signing_key is not None
        )


@dataclasses.dataclass(frozen=True)
class Settings:
    qstash: QStashSettings = dataclasses.field(default_factory=QStashSettings)
    public_url: str | None = None
    """Where QStash reaches the webhook, e.g. https://cron.example.com (no path)."""
    cluster_name: str = "default"
    """Schedule ids are <cluster>.<namespace>.<name>; two clusters sharing one QStash account
    must use different names or they will delete each other's schedules as orphans."""
    backend: BackendChoice = BackendChoice.AUTO
    """What ``spec.backend: Auto`` means on this cluster."""
    resync_seconds: float = 300.0
    """Drift repair period: one QStash list call per period. Five minutes keeps a 1,000-schedule
    cluster far below QStash's management-API burst limit while healing drift within a few ticks."""
    worker_limit: int = 100
    """How many objects the operator handles at once (kopf's per-object workers, per watched
    kind). A cold start over 1,000 stored CronWorkflows took 21.2 s and 162 MiB at 100, against
    38.1 s and 627 MiB unbounded (``python -m bench convergence``, both in one run): fewer
    handlers contend for one event loop and one connection pool."""
    clock_tolerance_seconds: int = 30
    """Skew accepted on exp/nbf/iat of signatures and when matching a delivery to its tick."""
    finalizer_timeout_seconds: float = DEFAULT_FINALIZER_TIMEOUT.total_seconds()
    """How long after its deletion timestamp a CronWorkflow waits for its QStash schedule (or its
    CronJob) to be deleted before it goes anyway, with a Warning naming what is left behind.
    Without a bound, QStash down or a revoked token would keep every CronWorkflow, and so every
    namespace holding one, from being deleted (``DEFAULT_FINALIZER_TIMEOUT`` says why five
    minutes)."""
    allow_private_url: bool = False
    """Accept a loopback/private/plain-http public URL for QStash. For local stacks only: real
    QStash refuses such destinations ("endpoint resolves to a loopback address")."""
    namespaces: tuple[str, ...] = ()
    """Namespaces the operator watches; empty means the whole cluster."""
    api_url: str | None = None
    """Base URL of the webhook's API for the CLI tools; None: WEBHOOK_PUBLIC_URL, else the local
    stack's default (people run the tools from a laptop, where the public URL is the way in)."""
    api_token: Secret | None = None
    """Bearer token for the CLI tools (a Kubernetes token the webhook checks by TokenReview)."""
    ui_enabled: bool = True
    """Serve the web console at ``/ui/`` on the webhook's port (QSTASH_WEBHOOK_UI; the chart's
    ``webhook.ui.enabled``)."""
    api_audience: str = DEFAULT_API_AUDIENCE
    """The audience a token must be bound to for the webhook's API (TokenReview
    ``spec.audiences``)."""
    webhook_cache: bool = True
    """The webhook's hot path: deliveries decide from watch-fed caches of the CronWorkflows and
    their Jobs, make the Job create their only call under ``Allow``, and record the status after
    answering (``qstash_webhook.cache``, ``services.deferred_status``)."""
    status_delay_seconds: float = 1.0
    """How long the webhook's deliveries must pause before their queued status records (one
    conditional write per CronWorkflow) and events are written: a minute's burst of Job creates
    keeps the API server to itself."""
    status_max_delay_seconds: float = 15.0
    """How long a status record waits at most while deliveries keep coming (how far the status
    may lag its Job)."""
    cache_max_cronworkflows: int = 50_000
    """Past this many CronWorkflows the webhook's cache stops answering (deliveries read the API
    server); 10,000 CronWorkflows and 30,000 Jobs measured within 250 MiB."""
    cache_max_jobs: int = 150_000
    """Past this many Jobs of ours the Job cache stops answering (deliveries list Jobs)."""
    pod_namespace: str = "default"
    """The operator's own namespace: its leader Lease lives there."""
    pod_name: str = "qstash-operator"
    """This replica's identity in the leader Lease."""
    slot_audit_seconds: float = 30.0
    """The slot audit's period per CronWorkflow. It reads the operator's watch caches and writes
    only what changed, so a shorter period costs CPU, not API requests."""
    mirror_delay_seconds: float = 2.0
    """How long the operator gathers a CronWorkflow's Job events before one status mirror pass
    (``services.observe``)."""
    mirror_record_grace_seconds: float = 60.0
    """How long a Job a QStash delivery made is left for the webhook to record before the
    operator's mirror records it itself (the repair after a webhook died between its Job create
    and its status write takes this long)."""
    mirror_cache_max_cronworkflows: int = 50_000
    """CronWorkflows whose latest watched copy the mirror holds (references into what kopf keeps
    anyway); past it, the least recently seen are read from the API server when mirrored."""
    missed_grace_seconds: float = 90.0
    """A slot with no run this long after its tick reads Missed: QStash may take up to 60 s to
    load a schedule and its first attempt some seconds more; the CronJob controller checks every
    10 s."""

    # -- checks per process -----------------------------------------------------------------

    def public_url_problem(self) -> str | None:
        """Why the public URL cannot serve QStash, or None when it can."""
        if self.public_url is None:
            return "WEBHOOK_PUBLIC_URL is not set"
        return check_public_url(self.public_url, allow_private=self.allow_private_url)

    def qstash_problem(self) -> str | None:
        """Why this cluster cannot use QStash (None when it can): the development-mode reason."""
        if self.qstash.token is None:
            return "QSTASH_TOKEN is not set"
        if not self.qstash.has_signing_keys:
            return "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY are not set"
        return self.public_url_problem()

    def require_webhook(self) -> None:
        """The webhook cannot verify anything without keys and the URL QStash signs for."""
        if not self.qstash.has_signing_keys:
            missing = [
                name
                for name, value in (
                    ("QSTASH_CURRENT_SIGNING_KEY", self.qstash.current_signing_key),
                    ("QSTASH_NEXT_SIGNING_KEY", self.qstash.next_signing_key),
                )
                if value is None
            ]
            raise SettingsError(
                " and ".join(missing),
                "the webhook needs both signing keys to verify QStash deliveries",
                "copy them from the QStash console (or `qstash-operator qstash-server` output), "
                "or set QSTASH_SIGNING_KEYS_DIR to a mounted Secret",
            )
        if self.public_url is None:
            raise SettingsError(
                "WEBHOOK_PUBLIC_URL",
                "the webhook needs the public URL QStash calls, to check the signature's subject",
                "set it to the https origin QStash reaches, e.g. https://cron.example.com",
            )
        if self.qstash.token is None:
            raise SettingsError(
                "QSTASH_TOKEN",
                "the webhook asks QStash which message a retried delivery is (GET "
                "/v2/messages/{id}) to run the tick it was made for, and needs the API token",
                "set the token the operator uses (the chart takes it from the same Secret), and "
                "QSTASH_URL when QStash is not https://qstash.upstash.io",
            )

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def secret(name: str) -> Secret | None:
            value = text(name)
            return None if value is None else Secret(value)

        def number(name: str, default: float, minimum: float) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(
                    name, f"{raw!r} is not a number", f"set a number >= {minimum}"
                ) from None
            if value < minimum:
                raise SettingsError(name, f"{raw} is below {minimum}", f"set a number >= {minimum}")
            return value

        def whole(name: str, default: int, minimum: int) -> int:
            value = float(number(name, default, minimum))
            if not value.is_integer():
                raise SettingsError(
                    name, f"{value:g} is not a whole number", f"set a whole number >= {minimum}"
                )
            return int(value)

        def flag(name: str, default: bool = False) -> bool:
            raw = (text(name) or ("true" if default else "false")).lower()
            if raw not in ("true", "false", "1", "0", "yes", "no"):
                raise SettingsError(name, f"{raw!r} is not a boolean", "set true or false")
            return raw in ("true", "1", "yes")

        qstash_url = text("QSTASH_URL") or DEFAULT_QSTASH_URL
        if not qstash_url.startswith(("http://", "https://")):
            raise SettingsError(
                "QSTASH_URL",
                f"{qstash_url!r} has no http:// or https:// scheme",
                f"set the API base, e.g. {DEFAULT_QSTASH_URL}",
            )
        keys_dir_raw = text("QSTASH_SIGNING_KEYS_DIR")
        keys_dir = Path(keys_dir_raw) if keys_dir_raw else None
        qstash = QStashSettings(
            url=qstash_url.rstrip("/"),
            token=secret("QSTASH_TOKEN"),
            current_signing_key=secret("QSTASH_CURRENT_SIGNING_KEY"),
            next_signing_key=secret("QSTASH_NEXT_SIGNING_KEY"),
            signing_keys_dir=keys_dir,
        )
        if (qstash.current_signing_key is None) != (qstash.next_signing_key is None):
            present, missing = (
                ("QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY")
                if qstash.current_signing_key is not None
                else ("QSTASH_NEXT_SIGNING_KEY", "QSTASH_CURRENT_SIGNING_KEY")
            )
            raise SettingsError(
                missing,
                f"is unset while {present} is set",
                "set both signing keys (QStash signs with the current one; the next one is what "
                "it switches to on rotation)",
            )

        public_url = text("WEBHOOK_PUBLIC_URL") or text("NEXT_PUBLIC_APP_URL")
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise SettingsError(
                "WEBHOOK_PUBLIC_URL",
                f"{public_url!r} has no scheme",
                "write the full origin, e.g. https://cron.example.com",
            )

        cluster = text("QSTASH_OPERATOR_CLUSTER_NAME") or "default"
        if not naming.valid_cluster_name(cluster):
            raise SettingsError(
                "QSTASH_OPERATOR_CLUSTER_NAME",
                f"{cluster!r} is not allowed",
                "use 1-40 characters of letters, digits, '-' and '_' (no dots: schedule ids "
                "are <cluster>.<namespace>.<name>)",
            )

        backend_raw = text("QSTASH_OPERATOR_BACKEND") or "Auto"
        matches = [
            choice for choice in BackendChoice if choice.value.lower() == backend_raw.lower()
        ]
        if not matches:
            raise SettingsError(
                "QSTASH_OPERATOR_BACKEND",
                f"{backend_raw!r} is not a backend",
                "use Auto, QStash or CronJob",
            )
        audience = text("QSTASH_OPERATOR_API_AUDIENCE") or DEFAULT_API_AUDIENCE
        if not _AUDIENCE.fullmatch(audience):
            raise SettingsError(
                "QSTASH_OPERATOR_API_AUDIENCE",
                f"{audience!r} is not an audience",
                "use 1-253 characters of letters, digits and URL punctuation, no spaces or "
                f"commas (default {DEFAULT_API_AUDIENCE})",
            )
        if audience.lower().startswith(_API_SERVER_AUDIENCES):
            raise SettingsError(
                "QSTASH_OPERATOR_API_AUDIENCE",
                f"{audience!r} looks like the API server's own audience, so every token the "
                "cluster issues (kubeconfig credentials included) would be accepted",
                f"use an audience of the webhook's own, e.g. {DEFAULT_API_AUDIENCE}",
            )
        namespaces = tuple(
            part.strip()
            for part in (text("QSTASH_OPERATOR_NAMESPACES") or "").split(",")
            if part.strip()
        )
        settings = cls(
            qstash=qstash,
            public_url=public_url.rstrip("/") if public_url else None,
            cluster_name=cluster,
            backend=matches[0],
            resync_seconds=number("QSTASH_OPERATOR_RESYNC_SECONDS", 300.0, 1.0),
            worker_limit=whole("QSTASH_OPERATOR_WORKER_LIMIT", 100, 1),
            clock_tolerance_seconds=int(number("QSTASH_OPERATOR_CLOCK_TOLERANCE", 30, 0)),
            finalizer_timeout_seconds=number(
                "QSTASH_OPERATOR_FINALIZER_TIMEOUT", DEFAULT_FINALIZER_TIMEOUT.total_seconds(), 0.0
            ),
            allow_private_url=flag("QSTASH_OPERATOR_ALLOW_PRIVATE_URL"),
            namespaces=namespaces,
            api_url=(text("QSTASH_OPERATOR_API_URL") or "").rstrip("/") or None,
            api_token=secret("QSTASH_OPERATOR_API_TOKEN"),
            ui_enabled=flag("QSTASH_WEBHOOK_UI", default=True),
            webhook_cache=flag("QSTASH_WEBHOOK_CACHE", default=True),
            status_delay_seconds=number("QSTASH_WEBHOOK_STATUS_DELAY", 1.0, 0.0),
            status_max_delay_seconds=number("QSTASH_WEBHOOK_STATUS_MAX_DELAY", 15.0, 0.0),
            cache_max_cronworkflows=whole("QSTASH_WEBHOOK_CACHE_MAX_CRONWORKFLOWS", 50_000, 1),
            cache_max_jobs=whole("QSTASH_WEBHOOK_CACHE_MAX_JOBS", 150_000, 1),
            api_audience=audience,
            pod_namespace=text("POD_NAMESPACE") or "default",
            pod_name=text("POD_NAME") or text("HOSTNAME") or "qstash-operator",
            slot_audit_seconds=number("QSTASH_OPERATOR_SLOT_AUDIT_SECONDS", 30.0, 1.0),
            missed_grace_seconds=number("QSTASH_OPERATOR_MISSED_GRACE_SECONDS", 90.0, 0.0),
            mirror_delay_seconds=number("QSTASH_OPERATOR_MIRROR_DELAY", 2.0, 0.0),
            mirror_record_grace_seconds=number("QSTASH_OPERATOR_MIRROR_RECORD_GRACE", 60.0, 0.0),
            mirror_cache_max_cronworkflows=whole(
                "QSTASH_OPERATOR_MIRROR_CACHE_MAX_CRONWORKFLOWS", 50_000, 1
            ),
        )
        if settings.status_max_delay_seconds < settings.status_delay_seconds:
            raise SettingsError(
                "QSTASH_WEBHOOK_STATUS_MAX_DELAY",
                f"is {settings.status_max_delay_seconds:g} s, below QSTASH_WEBHOOK_STATUS_DELAY "
                f"({settings.status_delay_seconds:g} s)",
                "set it to at least the delay (default 5 with the delay's default 1)",
            )
        if settings.backend is BackendChoice.QSTASH and (problem := settings.qstash_problem()):
            raise SettingsError(
                "QSTASH_OPERATOR_BACKEND",
                f"is QStash but {problem}",
                "set the QStash variables, or use Auto to fall back to CronJobs",
            )
        return settings
