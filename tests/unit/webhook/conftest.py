"""Fixtures for the webhook's app tests: an aiohttp test client over ``make_app``.

The Kubernetes side is our own adapter, :class:`Kube`, in one of two forms only: wired to a port
where nothing listens (the real transport fails, as with an API server that is down), or with its
transport replaced by one that fails the test if called (for paths that must be decided before
any API call: signature refusals, bad bodies, missing tokens). Everything that needs real answers
from an API server (Jobs, RBAC, TokenReview) is an integration test on the real control plane.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kubernetes.aio import client as k8s_client

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.signing_keys import SigningKeySource
from qstash_operator.settings import Settings
from qstash_webhook.app import make_app
from qstash_webhook.bodies import BODY_READ_SECONDS
from qstash_webhook.metrics import WebhookMetrics
from tests.unit.webhook import support


class UntouchableKube(Kube):
    """Our adapter whose transport fails the test: the code under test must not reach the API."""

    def __init__(self) -> None:
        super().__init__(k8s_client.ApiClient(k8s_client.Configuration(host="http://unused")))

    async def _run(self, method: str, path: str, **_: Any) -> Any:
        raise AssertionError(f"must not be called: {method} {path}")


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed on exit: nothing listens there


def unreachable_kube() -> Kube:
    """The real adapter pointed at a port where nothing listens."""
    configuration = k8s_client.Configuration(host=f"http://127.0.0.1:{_dead_port()}")
    return Kube(k8s_client.ApiClient(configuration))


class Clock:
    """A settable clock for ``make_app``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


MakeClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    clients: list[TestClient[web.Request, web.Application]] = []
    kubes: list[Kube] = []

    async def make(
        *,
        kube: Kube | None = None,
        settings: Settings | None = None,
        keys: SigningKeySource | None = None,
        clock: Clock | None = None,
        metrics: WebhookMetrics | None = None,
        body_deadline: float = BODY_READ_SECONDS,
    ) -> TestClient[web.Request, web.Application]:
        settings = settings or support.settings()
        kube = kube or UntouchableKube()
        kubes.append(kube)
        if keys is None:
            keys = SigningKeySource.from_settings(settings.qstash)
            keys.load()
        app = make_app(
            settings,
            kube=kube,
            keys=keys,
            clock=clock or Clock(support.JUST_AFTER_THE_HOUR),
            metrics=metrics,
            body_deadline=body_deadline,
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    for kube in kubes:
        await kube.close()
