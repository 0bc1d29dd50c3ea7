"""The test control plane itself: does it behave like a cluster, and does it leave nothing behind?

Why: every other cluster test trusts this harness. These tests pin the properties they rely on —
real controllers turn a CronJob into a Job whose pod runs and finishes on the fake node, RBAC
really denies an unprivileged ServiceAccount, the API server can be restarted under running
clients, and stopping (or killing) the owner leaves no process and no directory behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from qstash_devstack.controlplane import (
    REPO_ROOT,
    ControlPlane,
    main_pid_children,
    processes_in_groups,
    sweep_stale_run_dirs,
)
from qstash_devstack.polling import poll_until


def _get(plane: ControlPlane, path: str) -> Any:
    status, body = plane.request("GET", path)
    assert status == 200, f"GET {path} answered {status}: {body}"
    return body


def _condition(obj: dict[str, Any], kind: str) -> str | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def test_the_startup_time_is_recorded(control_plane: ControlPlane) -> None:
    assert control_plane.startup_seconds is not None
    assert 0 < control_plane.startup_seconds < control_plane.start_timeout
    assert list(control_plane.timings) == ["pki", "etcd", "apiserver", "crds", "ready"]
    crd = control_plane.kubectl("get", "crd", "cronworkflows.qstash-operator.dev").stdout
    assert "cronworkflows.qstash-operator.dev" in crd


@pytest.mark.slow
def test_a_cronjob_runs_a_job_whose_pod_runs_and_succeeds(
    control_plane: ControlPlane, namespace: str
) -> None:
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "every-minute", "namespace": namespace},
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        # Long enough that polling sees the Running phase, not just the end.
                        "metadata": {"annotations": {"kwok.qstash-operator.dev/run-for": "3s"}},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "main", "image": "busybox", "args": ["true"]}],
                        },
                    },
                }
            },
        },
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(cronjob))
    jobs_path = f"/apis/batch/v1/namespaces/{namespace}/jobs"

    def job_of_the_cronjob() -> dict[str, Any] | None:
        for job in _get(control_plane, jobs_path)["items"]:
            owners = job["metadata"].get("ownerReferences", [])
            if any(o["kind"] == "CronJob" and o["name"] == "every-minute" for o in owners):
                return dict(job)
        return None

    # The controller fires on the next minute boundary: up to 60 s away, plus its own delay.
    job = poll_until(
        job_of_the_cronjob, timeout=100, interval=1.0, what="the cronjob controller to create a Job"
    )
    job_name = job["metadata"]["name"]
    pods_path = f"/api/v1/namespaces/{namespace}/pods?labelSelector=job-name%3D{job_name}"
    phases: list[str] = []

    def pod_succeeded() -> bool:
        pods = _get(control_plane, pods_path)["items"]
        phase = pods[0].get("status", {}).get("phase", "") if pods else ""
        if phase and (not phases or phases[-1] != phase):
            phases.append(phase)
        return phase == "Succeeded"

    poll_until(
        pod_succeeded,
        timeout=30,
        interval=0.2,
        what=f"the pod of {job_name} to succeed",
        describe_last=lambda: phases,
    )
    assert "Running" in phases, f"the pod never showed as Running: {phases}"
    assert phases.index("Running") < phases.index("Succeeded")

    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{job_name}"
    poll_until(
        lambda: _condition(_get(control_plane, job_path), "Complete") == "True",
        timeout=30,
        what=f"Job {job_name} to complete",
        describe_last=lambda: _get(control_plane, job_path).get("status"),
    )
    cronjob_path = f"/apis/batch/v1/namespaces/{namespace}/cronjobs/every-minute"
    poll_until(
        lambda: _get(control_plane, cronjob_path)["status"].get("lastSuccessfulTime"),
        timeout=30,
        what="the CronJob to record its last success",
    )


def test_an_unprivileged_service_account_token_is_denied_where_admin_is_allowed(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl("create", "serviceaccount", "nobody", "--namespace", namespace)
    token = control_plane.create_service_account_token(namespace, "nobody")
    kubeconfig = control_plane.kubeconfig_for_token(token, tmp_path / "nobody.kubeconfig")

    # The token authenticates: a denial below is RBAC's answer, not a broken credential.
    whoami = control_plane.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=kubeconfig
    )
    assert whoami.stdout == f"system:serviceaccount:{namespace}:nobody"

    paths = {
        "secrets": f"/api/v1/namespaces/{namespace}/secrets",
        "cronworkflows.qstash-operator.dev": (
            f"/apis/qstash-operator.dev/v1alpha1/namespaces/{namespace}/cronworkflows"
        ),
    }
    for resource, path in paths.items():
        denied = control_plane.kubectl(
            "get", resource, "--namespace", namespace, kubeconfig=kubeconfig, check=False
        )
        assert denied.returncode != 0
        assert "Forbidden" in denied.stderr
        assert f'cannot list resource "{resource.split(".")[0]}"' in denied.stderr
        status, body = control_plane.request("GET", path, token=token)
        assert status == 403, body
        assert body["reason"] == "Forbidden"
        # The admin (system:masters client certificate) may.
        control_plane.kubectl("get", resource, "--namespace", namespace)
        assert control_plane.request("GET", path)[0] == 200

    # Granting exactly one permission lifts exactly that denial.
    control_plane.kubectl(
        "create",
        "role",
        "cronworkflow-reader",
        "--namespace",
        namespace,
        "--verb=list",
        "--resource=cronworkflows.qstash-operator.dev",
    )
    control_plane.kubectl(
        "create",
        "rolebinding",
        "nobody-reads",
        "--namespace",
        namespace,
        "--role=cronworkflow-reader",
        f"--serviceaccount={namespace}:nobody",
    )
    crs = paths["cronworkflows.qstash-operator.dev"]
    poll_until(
        lambda: control_plane.request("GET", crs, token=token)[0] == 200,
        timeout=10,
        what="the RoleBinding to take effect",
    )
    assert control_plane.request("GET", paths["secrets"], token=token)[0] == 403


def test_the_api_server_restarts_on_its_port_and_the_controllers_carry_on(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl(
        "create", "configmap", "survivor", "--namespace", namespace, "--from-literal=k=v"
    )
    server_before = control_plane.server
    away = control_plane.restart_apiserver()
    assert control_plane.server == server_before
    assert away < 30
    stored = _get(control_plane, f"/api/v1/namespaces/{namespace}/configmaps/survivor")
    assert stored["data"] == {"k": "v"}

    # The job controller, scheduler and kwok reconnected: a new Job still runs to completion.
    control_plane.kubectl(
        "create", "job", "after-restart", "--namespace", namespace, "--image=busybox", "--", "true"
    )
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/after-restart"
    poll_until(
        lambda: _condition(_get(control_plane, job_path), "Complete") == "True",
        timeout=60,
        what="a Job created after the restart to complete",
        describe_last=lambda: _get(control_plane, job_path).get("status"),
    )


def test_stop_leaves_no_process_and_no_directory(control_plane: ControlPlane) -> None:
    plane = ControlPlane(control_plane.bin_dir, crd_dir=None).start()
    try:
        groups = plane.process_groups()
        pids = set(plane.pids().values())
        run_dir, etcd_dir = plane.run_dir, plane.etcd_dir
        assert len(groups) == 5
        assert set(processes_in_groups(groups)) >= pids
    finally:
        plane.stop()
    assert processes_in_groups(groups) == []
    assert not pids & set(main_pid_children()), "stop() left a child (or an unreaped zombie)"
    assert not run_dir.exists()
    assert not etcd_dir.exists()
    plane.stop()  # a second stop is harmless


_OWNER = textwrap.dedent(
    """
    import faulthandler, json, signal, sys, threading
    from pathlib import Path
    from qstash_devstack.controlplane import ControlPlane

    plane = ControlPlane(Path(sys.argv[1]), crd_dir=None).start()

    # If the clean-up a signal starts ever hangs, print every thread's stack to stderr (the
    # test shows it): an owner that never exits would otherwise leave nothing to read.
    def with_watchdog(inner):
        def handler(signum, frame):
            faulthandler.dump_traceback_later(%(watchdog)s, exit=False)
            inner(signum, frame)
        return handler

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, with_watchdog(signal.getsignal(sig)))
    print(json.dumps({"groups": plane.process_groups(), "run_dir": str(plane.run_dir),
                      "etcd_dir": str(plane.etcd_dir)}), flush=True)
    threading.Event().wait()
    """
)
# A signalled owner stops the components with stop_grace (10 s) each for the clients and for etcd,
# then SIGKILLs and reaps: about 1 s usually, 20 s and a little at worst. The watchdog speaks
# after the worst case; the test waits twice as long before calling it stuck.
OWNER_WATCHDOG_SECONDS = 25
OWNER_EXIT_SECONDS = 50


@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(signal.SIGTERM, id="SIGTERM makes the owner clean up before it exits"),
        pytest.param(signal.SIGINT, id="Ctrl-C makes the owner clean up before it exits"),
        pytest.param(
            signal.SIGKILL, id="kill -9 of the owner still takes every process down with it"
        ),
    ],
)
def test_a_signalled_owner_leaves_no_process_behind(
    control_plane: ControlPlane, sig: signal.Signals
) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _OWNER % {"watchdog": OWNER_WATCHDOG_SECONDS},
            str(control_plane.bin_dir),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        if not line:
            owner.wait(timeout=30)
            pytest.fail(f"the owner failed to start a control plane:\n{owner.communicate()[1]}")
        started = json.loads(line)
        groups: list[int] = started["groups"]
        assert len(processes_in_groups(groups)) >= 5
        owner.send_signal(sig)
        try:
            owner.wait(timeout=OWNER_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            owner.kill()
            stack = owner.communicate()[1]
            pytest.fail(f"the owner did not exit {OWNER_EXIT_SECONDS} s after {sig.name}:\n{stack}")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    poll_until(
        lambda: processes_in_groups(groups) == [],
        timeout=15,
        interval=0.1,
        what="the owner's control plane to go away",
        describe_last=lambda: processes_in_groups(groups),
    )
    run_dir, etcd_dir = Path(started["run_dir"]), Path(started["etcd_dir"])
    if sig == signal.SIGKILL:
        # Nothing could clean up; the next start sweeps what a dead owner left.
        sweep_stale_run_dirs()
    assert not run_dir.exists()
    assert not etcd_dir.exists()
