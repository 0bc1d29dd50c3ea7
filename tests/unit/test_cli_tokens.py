"""``qstash-operator list|trigger``: whose token goes where.

The kubeconfig user's credential is the person's own key to the API server (perhaps
cluster-admin); the API URL defaults to the webhook's public one. So that credential is only ever
sent to this machine, and for anywhere else the command asks for ``--token`` and sends nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from qstash_operator import cli
from qstash_operator.domain import urls

KUBECONFIG_TOKEN = "kubeconfig-users-own-token"


def kubeconfig(path: Path) -> Path:
    path.write_text(
        f"""
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:1"}}}}]
users: [{{name: u, user: {{token: {KUBECONFIG_TOKEN}}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    )
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QSTASH_OPERATOR_API_URL", "QSTASH_OPERATOR_API_TOKEN", "WEBHOOK_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://cron.example.com", id="the public webhook"),
        pytest.param("http://10.0.0.7:8080", id="a private address"),
        pytest.param("http://qstash-operator-webhook.qso.svc", id="an in-cluster name"),
        pytest.param("http://localhost.example.com", id="a name that only looks local"),
    ],
)
def test_the_kubeconfig_token_is_never_sent_off_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    config = str(kubeconfig(tmp_path / "config"))
    assert cli.main(["list", "--url", url, "--kubeconfig", config]) == 2
    error = capsys.readouterr().err
    assert f"never sent to {url}" in error
    assert "--token" in error
    assert "--audience qstash-operator" in error
    assert KUBECONFIG_TOKEN not in error


async def _recording_server(seen: list[str]) -> TestServer:
    async def listing(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"items": []})

    app = web.Application()
    app.router.add_get("/api/cron", listing)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("extra", "sent"),
    [
        pytest.param([], f"Bearer {KUBECONFIG_TOKEN}", id="loopback: the kubeconfig token"),
        pytest.param(["--token", "explicit"], "Bearer explicit", id="--token wins"),
    ],
)
async def test_a_loopback_url_may_use_the_kubeconfig_token(
    tmp_path: Path, extra: list[str], sent: str
) -> None:
    seen: list[str] = []
    server = await _recording_server(seen)
    config = str(kubeconfig(tmp_path / "config"))
    url = f"http://127.0.0.1:{server.port}"
    try:
        argv: list[Any] = ["list", "--url", url, "--kubeconfig", config, *extra]
        assert await asyncio.to_thread(cli.main, argv) == 0
    finally:
        await server.close()
    assert seen == [sent]


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        pytest.param("http://127.0.0.1:8080", True, id="IPv4 loopback"),
        pytest.param("http://127.1.2.3", True, id="anywhere in 127/8"),
        pytest.param("http://[::1]:8080", True, id="IPv6 loopback"),
        pytest.param("http://[::ffff:127.0.0.1]", True, id="IPv4 loopback, IPv6-mapped"),
        pytest.param("http://localhost:8080", True, id="localhost"),
        pytest.param("http://LOCALHOST.", True, id="localhost, any case, rooted"),
        pytest.param("http://localhost.example.com", False, id="a public name"),
        pytest.param("https://cron.example.com", False, id="the public webhook"),
        pytest.param("http://10.0.0.7", False, id="a private address is another machine"),
        pytest.param("http://[::ffff:10.0.0.7]", False, id="so is its IPv6-mapped form"),
        pytest.param("http://", False, id="no host"),
        pytest.param("http://[::1", False, id="unparseable"),
    ],
)
def test_which_urls_are_this_machine(url: str, loopback: bool) -> None:
    assert urls.is_loopback(url) is loopback
