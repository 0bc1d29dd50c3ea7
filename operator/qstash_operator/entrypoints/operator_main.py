"""``qstash-operator operator``: wire the services, say which mode we are in, run kopf as leader.

Start-up order: settings (stop on bad ones) → one log line naming the mode and why → clients →
the health/metrics server (every replica) → wait for the leader Lease → kopf handlers and the
drift loop (the leader only; it outlives any failed pass, and readiness reports it when passes
have failed for three periods). Losing the lease stops the work before a standby may lead
(``adapters.leader``) and then the process, with exit code 3, so the Deployment restarts it as a
standby rather than risk two leaders; work that does not stop in time ends the process at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, cast

import kopf
from aiohttp import web

from qstash_operator import __version__
from qstash_operator.adapters.informer import Informer
from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.leader import Ending, lead
from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.adapters.qstash_api import QStashSchedules
from qstash_operator.adapters.tls_buffers import limit_tls_read_buffers
from qstash_operator.domain import builders
from qstash_operator.domain.model import BackendChoice
from qstash_operator.entrypoints.handlers import (
    MANAGED_SELECTOR,
    OperatorServices,
    build_registry,
    job_events,
    look_tick,
    periodic_look,
    use_job_index,
)
from qstash_operator.services import collector
from qstash_operator.services.drift import DriftLoop, DriftRepair
from qstash_operator.services.job_index import JobIndexStore
from qstash_operator.services.markers import MarkerRuns
from qstash_operator.services.observe import StatusMirror
from qstash_operator.services.periodic import PeriodicLooks
from qstash_operator.services.reconcile import Reconciler
from qstash_operator.services.runs import RunService
from qstash_operator.services.slots import SlotAudit
from qstash_operator.settings import Settings

if TYPE_CHECKING:  # kopf.operator's parameter type, which kopf does not re-export
    from kopf._core.engines.peering import Identity

logger = logging.getLogger("qstash_operator")

LOST_LEADERSHIP_EXIT: Final = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--http-host",
        default="0.0.0.0",  # noqa: S104  (a Pod serves probes on its own IP)
        help="address of /healthz, /readyz, /metrics",
    )
    parser.add_argument(
        "--http-port", type=int, default=8081, help="port of /healthz, /readyz, /metrics"
    )
    parser.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hold a Lease so only one replica reconciles (default: on)",
    )
    parser.add_argument("--lease-name", default="qstash-operator", help="name of the leader Lease")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def mode_line(settings: Settings) -> str:
    """The one line that says which backend ``Auto`` means here, and why."""
    problem = settings.qstash_problem()
    if settings.backend is BackendChoice.CRONJOB:
        return (
            "development mode: QSTASH_OPERATOR_BACKEND=CronJob, so CronWorkflows run as native "
            "CronJobs"
        )
    if problem is None:
        destination = builders.webhook_destination(settings.public_url or "")
        return (
            f"production mode: CronWorkflows run on QStash ({settings.qstash.url}), which delivers "
            f"to {destination}"
        )
    return f"development mode: {problem}, so CronWorkflows with backend Auto run as native CronJobs"


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every QStash call at INFO; our own lines say what was done and why.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").setLevel(
        logging.WARNING if not args.verbose else logging.DEBUG
    )
    logger.info(mode_line(settings))
    # Before any connection opens: a 256 KiB read buffer each was half of what the operator's
    # memory grew by at 2,000 CronWorkflows (adapters.tls_buffers).
    limit_tls_read_buffers()
    try:
        return asyncio.run(_main(settings, args))
    except KeyboardInterrupt:
        return 0


async def _health_app(
    services: OperatorServices, leading: asyncio.Event, drift: DriftLoop | None
) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        """Ready: the API server answers and, on the leader, drift repair is not failing for
        more than three periods (``problem`` says which, in words)."""
        api_server = await services.kube.ready()
        drift_problem = drift.problem(services.clock()) if drift is not None else None
        problems = [] if api_server else ["the Kubernetes API server does not answer"]
        if drift_problem is not None:
            problems.append(drift_problem)
        body = {
            "apiServer": api_server,
            "leader": leading.is_set(),
            "drift": None if drift is None else drift_problem is None,
            "problem": "; ".join(problems) or None,
        }
        return web.json_response(body, status=503 if problems else 200)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=services.metrics.render(), content_type="text/plain", charset="utf-8"
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    return runner


async def _main(settings: Settings, args: argparse.Namespace) -> int:
    kube = await Kube.from_environment(user_agent=f"qstash-operator/{__version__}")
    # The Job watches hold a connection each for as long as they run: on a pool of their own,
    # so they never take one the reconciles and status writes need.
    watch_kube = await Kube.from_environment(
        max_connections=len(settings.namespaces) or 1,
        user_agent=f"qstash-operator/{__version__} (jobs watch)",
    )
    qstash = (
        QStashSchedules(token=settings.qstash.token.reveal(), base_url=settings.qstash.url)
        if settings.qstash.token is not None
        else None
    )
    metrics = OperatorMetrics()
    runs = RunService(
        kube,
        component="qstash-operator",
        tolerance=timedelta(seconds=settings.clock_tolerance_seconds),
    )
    services = OperatorServices(
        settings=settings,
        kube=kube,
        qstash=qstash,
        reconciler=Reconciler(settings=settings, kube=kube, qstash=qstash, metrics=metrics),
        drift=(
            DriftRepair(settings=settings, kube=kube, qstash=qstash, metrics=metrics)
            if qstash is not None and settings.qstash_problem() is None
            else None
        ),
        mirror=StatusMirror(
            kube,
            delay=settings.mirror_delay_seconds,
            record_grace=settings.mirror_record_grace_seconds,
            cache_max=settings.mirror_cache_max_cronworkflows,
        ),
        runs=runs,
        metrics=metrics,
        clock=lambda: datetime.now(UTC),
        audit=SlotAudit(
            kube, runs, metrics, grace=timedelta(seconds=settings.missed_grace_seconds)
        ),
    )
    drift = (
        DriftLoop(
            services.drift,
            period=settings.resync_seconds,
            clock=services.clock,
            metrics=metrics,
        )
        if services.drift is not None
        else None
    )
    leading = asyncio.Event()
    runner = await _health_app(services, leading, drift)
    site = web.TCPSite(runner, args.http_host, args.http_port)
    await site.start()

    async def work() -> None:
        leading.set()
        metrics.leader.set(1)
        drift_task = asyncio.create_task(drift.run()) if drift is not None else None
        looks = services.looks = PeriodicLooks(
            periodic_look(services, audit_seconds=settings.slot_audit_seconds),
            tick=look_tick(settings.slot_audit_seconds),
            wall=services.clock,
        )
        looks_task = asyncio.create_task(looks.run())
        collector_task = asyncio.create_task(collector.hold_through_bursts(clock=services.clock))
        markers = services.markers = MarkerRuns(
            lambda marker: runs.run_marker(marker=marker, now=services.clock())
        )
        scopes: tuple[str | None, ...] = settings.namespaces or (None,)
        job_index = JobIndexStore(
            scopes,
            on_event=job_events(services),
            on_synced=lambda index: use_job_index(services, index),
        )
        job_tasks = [
            asyncio.create_task(
                Informer(
                    watch_kube, "jobs", job_index, namespace=scope, selector=MANAGED_SELECTOR
                ).run()
            )
            for scope in scopes
        ]
        try:
            await kopf.operator(
                registry=build_registry(),
                memo=kopf.Memo(services=services),
                # kopf would otherwise derive one from getpass.getuser(), which fails for a uid
                # with no passwd entry: the image's 10001 under any kubelet's runtime. (Only
                # peering reads it, and this operator runs standalone behind its own Lease.)
                identity=cast("Identity", settings.pod_name),
                standalone=True,
                clusterwide=not settings.namespaces,
                namespaces=settings.namespaces,
            )
        finally:
            for task in job_tasks:
                task.cancel()
            for task in job_tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            use_job_index(services, None)
            looks_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await looks_task
            services.looks = None
            collector_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector_task
            await markers.close()
            services.markers = None
            if drift_task is not None:
                drift_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drift_task
            leading.clear()
            metrics.leader.set(0)

    try:
        if not args.leader_election:
            await work()
            return 0
        ending = await lead(
            kube,
            name=args.lease_name,
            namespace=settings.pod_namespace,
            identity=settings.pod_name,
            work=work,
        )
        if ending is Ending.STUCK:
            # The work ignored its cancellation and the lease is about to pass to a standby:
            # nothing of this process may act any more, not even its clean-up.
            logger.critical("leader lease lost and the work did not stop; exiting now")
            logging.shutdown()
            sys.stderr.flush()
            os._exit(LOST_LEADERSHIP_EXIT)
        if ending is Ending.LOST:
            logger.error("leader lease lost; exiting so a standby can take over")
            return LOST_LEADERSHIP_EXIT
        return 0
    finally:
        await runner.cleanup()
        if qstash is not None:
            await qstash.close()
        await kube.close()
        await watch_kube.close()
