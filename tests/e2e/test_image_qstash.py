"""The QStash path with both components run from the built image, as the chart runs them.

The operator and the webhook are containers of the product image (podman, host network, read-only
root, uid 10001, no capabilities); the control plane and the QStash-compatible server are the
usual ones. A CronWorkflow applied with kubectl gets its schedule from the containerised operator;
a fired tick is delivered to the containerised webhook, which makes the Job. Then the webhook
container is sent SIGTERM, as a kubelet does, while a delivery is half done (held at its first API
call by a gate in front of the API server): it stops accepting connections, finishes that
delivery (its Job is made) and exits 0 within its grace.

Why not a delivery whose body is still arriving: aiohttp stops reading from every connection once
shutdown begins, so such a request can never finish; QStash sends small bodies in one go, and
the handler's API calls are where a delivery really spends its time.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from qstash import QStash

from qstash_devstack.containers import BuiltImage, ContainerChild
from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.gate import GatedProxy
from qstash_devstack.stack import Stack, backdate_schedules, cronworkflow, running_stack, wait
from qstash_operator.domain.signature import sign
from qstash_server.testing import ThreadedServer
from qstash_webhook.main import SHUTDOWN_GRACE_SECONDS

pytestmark = pytest.mark.slow

MANAGED = "qstash-operator.dev/cronworkflow"
MESSAGE_ANNOTATION = "qstash-operator.dev/message-id"


@pytest.fixture
def stack(
    control_plane: ControlPlane,
    qstash: ThreadedServer,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    product_image: BuiltImage,
) -> Iterator[Stack]:
    with running_stack(
        control_plane, qstash, tmp_path, namespace, request, image=product_image.ref
    ) as running:
        yield running


def sdk(stack: Stack) -> QStash:
    return QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)


def schedule_id(stack: Stack, name: str) -> str:
    return f"{stack.cluster_name}.{stack.namespace}.{name}"


def containers(stack: Stack) -> tuple[ContainerChild, ContainerChild]:
    webhook = stack.webhook()
    operator, _ = stack.operator()
    assert isinstance(webhook, ContainerChild)
    assert isinstance(operator, ContainerChild)
    return webhook, operator


def test_a_tick_goes_from_the_operator_container_through_qstash_to_the_webhook_container(
    stack: Stack,
) -> None:
    webhook, operator = containers(stack)
    stack.apply(cronworkflow("from-image", {"schedule": "* * * * *"}))
    stack.wait_condition("from-image", "Ready", "True", timeout=60)
    backdate_schedules(stack, ["from-image"])  # this minute's tick is not before the schedule
    sid = schedule_id(stack, "from-image")
    schedule = sdk(stack).schedule.get(sid)
    assert schedule.destination == f"{stack.public_url}/api/qstash/webhook"
    assert "production mode" in operator.output()

    message = stack.qstash.fire(sid, force=True)
    outcome = stack.qstash.wait_for_message(message)
    assert outcome["state"] == "SUCCESS", outcome
    [job] = stack.list("jobs", f"{MANAGED}=from-image")
    assert job["metadata"]["annotations"][MESSAGE_ANNOTATION] == message
    assert webhook.running
    assert operator.running
    # Both ran from the image the whole time, and neither complained of a read-only root.
    for child in (webhook, operator):
        assert "Read-only file system" not in child.output(), child.output()[-3000:]


def signed_delivery(stack: Stack, name: str) -> tuple[bytes, bytes]:
    """(head, body) of a first delivery attempt exactly as QStash would send it."""
    body = (sdk(stack).schedule.get(schedule_id(stack, name)).body or "").encode()
    assert body, "the schedule carries the CronWorkflow's reference"
    url = f"{stack.public_url}/api/qstash/webhook"
    signature = sign(
        body=body,
        url=url,
        key=stack.qstash.current_key,
        now=int(time.time()),
        jwt_id=f"jwt_{uuid.uuid4().hex}",
    )
    headers = {
        "Host": url.split("/")[2],
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Upstash-Signature": signature,
        "Upstash-Message-Id": f"msg_{uuid.uuid4().hex}",
        "Upstash-Retried": "0",
        "Upstash-Schedule-Id": schedule_id(stack, name),
        "User-Agent": "Upstash-QStash",
    }
    head = "POST /api/qstash/webhook HTTP/1.1\r\n"
    head += "".join(f"{key}: {value}\r\n" for key, value in headers.items()) + "\r\n"
    return head.encode(), body


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def kubeconfig_through(plane: ControlPlane, proxy: GatedProxy, path: Path) -> Path:
    """The admin kubeconfig, its server swapped for the proxy (the certificate names 127.0.0.1)."""
    config = json.loads(plane.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path.write_text(json.dumps(config))
    return path


def test_sigterm_lets_the_webhook_container_finish_a_delivery_and_exit_0(
    stack: Stack, tmp_path: Path
) -> None:
    api_port = urllib.parse.urlsplit(stack.plane.server).port
    assert api_port is not None
    with GatedProxy(api_port) as gate:
        webhook = stack.webhook(kubeconfig=kubeconfig_through(stack.plane, gate, tmp_path / "kc"))
        assert isinstance(webhook, ContainerChild)
        stack.operator()
        stack.apply(cronworkflow("drained", {"schedule": "* * * * *"}))
        stack.wait_condition("drained", "Ready", "True", timeout=60)
        backdate_schedules(stack, ["drained"])
        head, body = signed_delivery(stack, "drained")

        # The delivery arrives whole, and its handler stops at its first API call: in flight.
        gate.close()
        conn = socket.create_connection(("127.0.0.1", stack.webhook_port))
        with contextlib.closing(conn):
            conn.sendall(head + body)
            gate.wait_held()
            began = time.monotonic()
            webhook.signal("TERM")
            wait(lambda: "stopping" in webhook.output(), what="the webhook to log its SIGTERM")
            wait(lambda: refuses_connections(stack.webhook_port), what="the listener to close")
            assert webhook.running, "the webhook quit with a delivery in flight"
            gate.open()
            response = http.client.HTTPResponse(conn)
            response.begin()
            answer = json.loads(response.read() or b"{}")
        assert (response.status, answer["outcome"]) == (200, "run"), answer

        assert webhook.process is not None
        code = webhook.process.wait(SHUTDOWN_GRACE_SECONDS + 5)
        stopped_in = time.monotonic() - began
    assert code == 0, webhook.output()[-3000:]
    assert stopped_in < SHUTDOWN_GRACE_SECONDS, f"took {stopped_in:.1f}s"
    [job] = stack.list("jobs", f"{MANAGED}=drained")
    assert job["metadata"]["name"] == answer["job"]
