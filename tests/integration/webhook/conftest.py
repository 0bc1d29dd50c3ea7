"""The webhook on the real control plane, fed by the QStash-compatible server.

``stack`` gives each test: a fresh namespace, the in-process QStash-compatible server (driven
clock, random keys), and the webhook app listening on a free loopback port with those keys and
the admin kubeconfig. The webhook's clock *is* the QStash server's driven clock, so tokens are
fresh and ticks derive exactly as they would against real QStash; no test waits on the wall
clock for a minute boundary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
import pytest
from aiohttp import web
from qstash import AsyncQStash

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.processes import free_port
from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.signing_keys import SigningKeySource
from qstash_operator.domain import builders, model, naming, signature, vocabulary
from qstash_operator.settings import QStashSettings, Secret, Settings
from qstash_server.testing import RunningServer
from qstash_webhook.app import make_app
from qstash_webhook.metrics import WebhookMetrics

START: Final = datetime(2026, 11, 28, 9, 59, 58, tzinfo=UTC)
"""Two seconds before a top of the hour on the QStash server's driven clock. The server signs
with that clock too (``signing_clock="server"``), the same clock the webhook is given."""
FIRST_TICK: Final = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
DELIVERY_DELAY: Final = 2.0
"""Advance this far past a tick: QStash delivers a second or two after the minute."""
CLUSTER: Final = "itest"
POLL: Final = 0.05
# How long a wait on the job controller (a pod run to completion, a Job marked Complete) may take.
# Since Kubernetes 1.36 (StaleControllerConsistencyJob, beta and on) the controller refuses to sync
# a Job while its pod cache is older than its own last write, and requeues it with a per-Job
# backoff of 1 s doubling to 60 s; on two busy cores a few such misses add up to more than 20 s
# (CI saw it). This is a ceiling, not a sleep: a healthy run completes in about two seconds.
JOB_CONTROLLER_PATIENCE: Final = 90.0


def job_template(**pod_annotations: str) -> dict[str, Any]:
    return {
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": pod_annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                },
            },
        }
    }


@dataclasses.dataclass
class Webhook:
    url: str
    app: web.Application
    runner: web.AppRunner

    @property
    def metrics(self) -> WebhookMetrics:
        from qstash_webhook import typedefs

        return self.app[typedefs.metrics_key]


@dataclasses.dataclass
class Stack:
    control_plane: ControlPlane
    namespace: str
    qstash: RunningServer
    kube: Kube
    public_url: str
    webhook: Webhook
    clock: Callable[[], datetime]
    start: datetime
    extra: list[Webhook] = dataclasses.field(default_factory=list)

    @property
    def first_tick(self) -> datetime:
        return FIRST_TICK

    @property
    def destination(self) -> str:
        return builders.webhook_destination(self.public_url)

    def settings(self) -> Settings:
        return Settings(
            qstash=QStashSettings(
                url=self.qstash.url,
                token=Secret(self.qstash.token),
                current_signing_key=Secret(self.qstash.current_key),
                next_signing_key=Secret(self.qstash.next_key),
            ),
            public_url=self.public_url,
            cluster_name=CLUSTER,
            allow_private_url=True,
            clock_tolerance_seconds=30,
        )

    async def start_webhook(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        kube: Kube | None = None,
        hot: bool = False,
    ) -> Webhook:
        """Another replica (same public URL, own port, own client); ``hot``: on the hot path
        (its caches list and watch through the stack's client, as the process uses its own)."""
        webhook = await _start_webhook(
            self, clock or self.clock, kube or self.kube, free_port(), hot=hot
        )
        self.extra.append(webhook)
        return webhook

    async def create_cronworkflow(
        self, name: str, *, template: dict[str, Any] | None = None, **spec: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": vocabulary.API_VERSION,
            "kind": vocabulary.KIND,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"schedule": "* * * * *", "jobTemplate": template or job_template(), **spec},
        }
        path = f"/apis/{vocabulary.API_VERSION}/namespaces/{self.namespace}/cronworkflows"
        status, answer = await asyncio.to_thread(self.control_plane.request, "POST", path, body)
        assert status == 201, answer
        created: dict[str, Any] = answer if isinstance(answer, dict) else json.loads(answer)
        return created

    async def schedule(self, cw: dict[str, Any], *, retries: int = 3) -> str:
        """Create the QStash schedule the operator would create for ``cw``."""
        parsed = model.parse(cw)
        desired = builders.build_schedule(parsed, cluster=CLUSTER, public_url=self.public_url)
        client = AsyncQStash(self.qstash.token, base_url=self.qstash.url, retry=False)
        try:
            return await client.schedule.create(
                destination=desired.destination,
                cron=desired.cron,
                body=desired.body,
                content_type="application/json",
                schedule_id=desired.schedule_id,
                retries=retries,
            )
        finally:
            await client.http._client.aclose()

    async def jobs(self, name: str) -> list[dict[str, Any]]:
        jobs = await self.kube.list_jobs(self.namespace, f"{vocabulary.LABEL_CRONWORKFLOW}={name}")
        return sorted(jobs, key=lambda job: job["metadata"]["name"])

    async def job_is_going(self, name: str, job_name: str) -> bool:
        """Whether ``job_name`` of CronWorkflow ``name`` is gone or being deleted."""
        for job in await self.jobs(name):
            if job["metadata"]["name"] == job_name:
                return bool(job["metadata"].get("deletionTimestamp"))
        return True

    async def get(self, name: str) -> dict[str, Any]:
        return await self.kube.get_cronworkflow(self.namespace, name)

    async def describe_runs(self) -> str:
        """The namespace's Jobs, pods and events in one line each: what a timeout reports."""
        lines = []
        for kind, path in (
            ("job", f"/apis/batch/v1/namespaces/{self.namespace}/jobs"),
            ("pod", f"/api/v1/namespaces/{self.namespace}/pods"),
        ):
            _, answer = await asyncio.to_thread(self.control_plane.request, "GET", path)
            for item in answer.get("items", []):
                status = item.get("status", {})
                summary = status.get("phase") or {
                    c["type"]: c["status"] for c in status.get("conditions") or []
                }
                created = item["metadata"].get("creationTimestamp")
                lines.append(f"{kind} {item['metadata']['name']} created {created}: {summary}")
        path = f"/api/v1/namespaces/{self.namespace}/events"
        _, answer = await asyncio.to_thread(self.control_plane.request, "GET", path)
        for event in answer.get("items", []):
            involved = event["involvedObject"]
            lines.append(
                f"event {event.get('lastTimestamp') or event.get('eventTime')} "
                f"{involved['kind']}/{involved['name']} {event['reason']}: {event.get('message')}"
            )
        return "\n".join(lines) or f"nothing in namespace {self.namespace}"

    async def events(self, name: str) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{self.namespace}/events"
        status, answer = await asyncio.to_thread(self.control_plane.request, "GET", path)
        assert status == 200
        return [event for event in answer["items"] if event["involvedObject"]["name"] == name]

    async def deliver(
        self,
        name: str,
        *,
        message_id: str,
        uid: str | None = None,
        webhook: Webhook | None = None,
        retried: int = 0,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """POST a delivery for ``name`` signed as QStash would now (by the driven clock);
        ``retried`` is its ``Upstash-Retried`` (0: a first attempt)."""
        if uid is None:
            uid = (await self.get(name))["metadata"]["uid"]
        body = json.dumps(
            {"name": name, "namespace": self.namespace, "uid": uid}, separators=(",", ":")
        ).encode()
        token = signature.sign(
            body=body,
            url=self.destination,
            key=self.qstash.current_key,
            now=int(self.clock().timestamp()),
            jwt_id=f"jwt_{message_id}",
        )
        headers = {
            "Upstash-Signature": token,
            "Upstash-Message-Id": message_id,
            "Upstash-Retried": str(retried),
        }
        url = f"{(webhook or self.webhook).url}/api/qstash/webhook"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return response.status, await response.json(), dict(response.headers)

    def metric(self, name: str, **labels: str) -> float:
        value = self.webhook.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def schedule_id(self, name: str) -> str:
        return naming.schedule_id(CLUSTER, self.namespace, name)


async def _start_webhook(
    stack: Stack, clock: Callable[[], datetime], kube: Kube, port: int, *, hot: bool = False
) -> Webhook:
    settings = stack.settings()
    keys = SigningKeySource.from_settings(settings.qstash)
    keys.load()
    watch_kube = stack.kube if hot else None
    app = make_app(settings, kube=kube, keys=keys, clock=clock, watch_kube=watch_kube)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Webhook(url=f"http://127.0.0.1:{port}", app=app, runner=runner)


@pytest.fixture
async def stack(control_plane: ControlPlane, namespace: str) -> AsyncIterator[Stack]:
    kube = await Kube.from_environment(str(control_plane.kubeconfig))
    port = free_port()
    start = START
    async with RunningServer(start_time=start, signing_clock="server") as qstash:
        stack = Stack(
            control_plane=control_plane,
            namespace=namespace,
            qstash=qstash,
            kube=kube,
            public_url=f"http://127.0.0.1:{port}",
            webhook=None,  # type: ignore[arg-type]  # set just below
            clock=qstash.core.clock.now,
            start=start,
        )
        stack.webhook = await _start_webhook(stack, stack.clock, kube, port)
        try:
            yield stack
        finally:
            for webhook in [stack.webhook, *stack.extra]:
                await webhook.runner.cleanup()
            await kube.close()


async def poll(
    check: Callable[[], Any],
    *,
    within: float = 20.0,
    what: str = "condition",
    describe: Callable[[], Awaitable[str]] | None = None,
) -> Any:
    """Await ``check()`` until it returns something truthy, for at most ``within`` seconds.

    ``describe`` is awaited on timeout, so the failure says what the cluster looked like instead
    of only that the wait ran out.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            detail = f"\n{await describe()}" if describe is not None else ""
            raise TimeoutError(f"{what} not reached in {within} s{detail}")
        await asyncio.sleep(POLL)
