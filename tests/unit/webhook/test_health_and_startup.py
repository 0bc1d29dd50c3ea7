"""Operability: probes, metrics, and what the process does at start.

The process tests run the real command (``qstash-operator webhook``) with a kubeconfig aimed at
a closed port: it must start anyway, say it is not ready, and answer deliveries 503.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from qstash_devstack.processes import free_port
from qstash_operator import cli
from tests.unit.webhook import support
from tests.unit.webhook.conftest import MakeClient, unreachable_kube


async def test_healthz_is_up_while_readyz_waits_for_the_api_server(
    make_client: MakeClient,
) -> None:
    client = await make_client(kube=unreachable_kube())
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {
        "ready": False,
        "checks": {"signingKeys": True, "kubernetesApi": False},
    }


async def test_metrics_expose_the_four_families(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    for family in (
        "qstash_webhook_deliveries_total",
        "qstash_webhook_signature_failures_total",
        "qstash_webhook_job_creation_seconds",
        "qstash_webhook_skips_total",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        pytest.param("WEBHOOK_PUBLIC_URL", "WEBHOOK_PUBLIC_URL", id="no public URL"),
        pytest.param(
            "QSTASH_NEXT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY", id="only the current key"
        ),
        pytest.param(
            "both keys", "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY", id="no keys"
        ),
        pytest.param("QSTASH_TOKEN", "QSTASH_TOKEN", id="no token to look retries up with"),
    ],
)
def test_the_webhook_refuses_to_start_naming_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], missing: str, named: str
) -> None:
    env = {
        "WEBHOOK_PUBLIC_URL": support.PUBLIC_URL,
        "QSTASH_CURRENT_SIGNING_KEY": support.CURRENT_KEY,
        "QSTASH_NEXT_SIGNING_KEY": support.NEXT_KEY,
        "QSTASH_TOKEN": "token-for-message-lookups",
    }
    for name in (*env, "NEXT_PUBLIC_APP_URL", "QSTASH_SIGNING_KEYS_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if name != missing and not (missing == "both keys" and "SIGNING_KEY" in name):
            monkeypatch.setenv(name, value)
    assert cli.main(["webhook", "--port", "1"]) == 2
    error = capsys.readouterr().err
    assert named in error
    assert support.CURRENT_KEY not in error


def _kubeconfig(path: Path, port: int) -> Path:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: dead, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: nobody, user: {{token: not-a-real-token}}}}]
contexts: [{{name: dead, context: {{cluster: dead, user: nobody}}}}]
current-context: dead
"""
    )
    return path


def _get(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_webhook_starts_without_an_api_server_and_answers_503(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WEBHOOK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "QSTASH_OPERATOR_ALLOW_PRIVATE_URL": "true",
        "QSTASH_CURRENT_SIGNING_KEY": support.CURRENT_KEY,
        "QSTASH_NEXT_SIGNING_KEY": support.NEXT_KEY,
        "QSTASH_TOKEN": "token-for-message-lookups",
        "KUBECONFIG": str(_kubeconfig(tmp_path / "kubeconfig", free_port())),
    }
    env.pop("QSTASH_SIGNING_KEYS_DIR", None)
    command = [sys.executable, "-m", "qstash_operator.cli", "webhook", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if _get(f"{base}/healthz") == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, "the webhook exited"
            assert time.monotonic() < deadline, "the webhook never answered /healthz"
            time.sleep(0.05)
        assert _get(f"{base}/readyz") == 503
        body = support.BODY
        token = support.token(
            support.claims(body, now=int(time.time()), url=f"{base}/api/qstash/webhook")
        )
        status = _get(f"{base}/api/qstash/webhook", data=body, headers={"Upstash-Signature": token})
        assert status == 503
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert '"message":"delivery"' in stderr
    assert support.CURRENT_KEY not in stderr
