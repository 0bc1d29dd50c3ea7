"""The product image, built and run here without a Docker engine: podman with runc.

Why: the chart runs our image read-only, as uid 10001, with every capability dropped. A wrong
entrypoint, a write to the root filesystem or a file missing from the image only shows when the
image itself runs, so the tests build the real Dockerfile (``devstack/image.sh``: a debootstrap
base, podman, caches keyed by their inputs) and run the operator and the webhook from it.

:class:`ContainerChild` is :class:`~qstash_devstack.processes.Child` in a container: same
``start``/``stop``/``kill``/``output``, so :class:`~qstash_devstack.stack.Stack` runs either. The
container gets the host network (the control plane and the QStash-compatible server listen on
loopback), the chart's security settings, only the project's own environment variables, and a
copy of its kubeconfig with the certificates inlined and owned by the image's user (the control
plane's keys are root's, mode 0600, and stay so).

Containers outlive a SIGKILLed client (podman's monitor keeps them), so each carries the pid of
the test process that started it; :func:`sweep_stale_containers` removes those whose owner died.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from qstash_devstack.controlplane import REPO_ROOT, _child_setup, _pid_alive
from qstash_devstack.processes import STOP_GRACE, Child

IMAGE_SCRIPT: Final = REPO_ROOT / "devstack" / "image.sh"
PODMAN: Final = ("podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs")
"""runc, not crun (crun refuses this machine's cgroup v1/v2 hybrid); cgroupfs: no systemd runs."""
ULIMITS: Final = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")
"""At or below the host's: without CAP_SYS_RESOURCE a container cannot raise a limit above them."""
IMAGE_USER: Final = "10001:10001"
"""The Dockerfile's USER, which the chart's securityContext repeats (runAsUser/runAsGroup)."""
OWNER_LABEL: Final = "qstash-operator.dev/test-owner"
KUBECONFIG_IN_CONTAINER: Final = "/var/run/qstash-operator/kubeconfig"
PASSED_ENV_PREFIXES: Final = ("QSTASH_", "WEBHOOK_", "NEXT_PUBLIC_", "POD_")
"""The variables a container gets from its Child's environment: the project's settings, nothing
of the host's (its PATH, HOME or proxy settings would be wrong inside)."""

_names = itertools.count()


class ImageError(RuntimeError):
    """Building or running an image failed; the message carries podman's output."""


def podman(
    *args: str, check: bool = True, timeout: float = 120.0, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [*PODMAN, *args]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, input=input_text
    )
    if check and proc.returncode != 0:
        raise ImageError(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stderr}")
    return proc


def have_podman() -> bool:
    return shutil.which("podman") is not None and shutil.which("runc") is not None


@dataclass(frozen=True)
class BuiltImage:
    """The product image and what its build cost (``seconds`` is ~0 when it was current)."""

    ref: str
    size_bytes: int
    seconds: float
    base_ref: str


def _script(*args: str, quiet: bool) -> list[str]:
    proc = subprocess.run(
        [str(IMAGE_SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        text=True,
        check=False,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise ImageError(f"{IMAGE_SCRIPT} {' '.join(args)} failed with exit code {proc.returncode}")
    return proc.stdout.strip().splitlines()


IMAGE_OVERRIDE: Final = "QSO_IMAGE"
"""Set to an image reference podman knows to test that image instead of building the tree's
(e.g. one a user built with ``docker build`` on python:3.11-slim and loaded into podman)."""


def build_image(*, quiet: bool = False) -> BuiltImage:
    """Build the Dockerfile (a no-op when the sources are unchanged) and describe the image."""
    began = time.monotonic()
    ref = os.environ.get(IMAGE_OVERRIDE) or _script(quiet=quiet)[-1]
    seconds = time.monotonic() - began
    size = int(podman("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())
    base = _script("base", quiet=True)[-1]
    return BuiltImage(ref=ref, size_bytes=size, seconds=seconds, base_ref=base)


def build_node_images(*, quiet: bool = False) -> dict[str, str]:
    """The real node's helper images: ``pause`` (the sandbox) and ``job`` (busybox)."""
    lines = _script("extras", quiet=quiet)
    return dict(line.split("=", 1) for line in lines if "=" in line)


def save_image(ref: str, destination: Path) -> Path:
    """An archive of `ref` for ``ctr images import`` (the node has no registry); the docker
    format carries the full reference, which containerd names the image by."""
    destination.unlink(missing_ok=True)
    podman("save", "--format", "docker-archive", "--output", str(destination), ref, timeout=300)
    return destination


def run_once(
    ref: str,
    *args: str,
    entrypoint: str | None = None,
    read_only: bool = True,
    user: str = IMAGE_USER,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    remove: bool = True,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """``podman run`` with the chart's security settings, to completion."""
    # No network: podman's default one is a bridge with iptables rules and IP forwarding turned
    # on, host changes no check here needs.
    argv = ["run", "--network", "none", *hardening(read_only=read_only, user=user)]
    if remove:
        argv.append("--rm")
    if name:
        argv += ["--name", name]
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    for key, value in (env or {}).items():
        argv += ["--env", f"{key}={value}"]
    return podman(*argv, ref, *args, check=False, timeout=timeout)


def hardening(*, read_only: bool = True, user: str = IMAGE_USER) -> list[str]:
    """What the chart's securityContext asks of the runtime, as podman flags."""
    flags = [
        "--user",
        user,
        # podman would add the user to /etc/passwd; a kubelet's runtime does not, so neither here.
        "--passwd=false",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        *ULIMITS,
    ]
    if read_only:
        # The chart mounts an emptyDir at /tmp; podman's --read-only adds tmpfs mounts of its
        # own (/tmp, /var/tmp, /run) unless told not to, which would hide a write elsewhere.
        flags += ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=16m,mode=1777"]
    return flags


@contextlib.contextmanager
def mounted_image(ref: str) -> Iterator[Path]:
    """The image's root filesystem, read-only, on the host (rootful podman's ``image mount``)."""
    path = Path(podman("image", "mount", ref).stdout.strip())
    try:
        yield path
    finally:
        podman("image", "unmount", ref, check=False)


def sweep_stale_containers() -> list[str]:
    """Remove containers started by test processes that are gone (killed before their stop)."""
    proc = podman(
        "ps",
        "--all",
        "--filter",
        f"label={OWNER_LABEL}",
        "--format",
        '{{.Names}} {{index .Labels "' + OWNER_LABEL + '"}}',
        check=False,
    )
    removed = []
    for line in proc.stdout.splitlines():
        name, _, owner = line.partition(" ")
        if owner.isdigit() and not _pid_alive(int(owner)):
            podman("rm", "--force", "--time", "0", name, check=False)
            removed.append(name)
    return removed


def container_kubeconfig(source: Path, destination: Path) -> Path:
    """A copy of `source` with its certificate files inlined, readable by the image's user only.

    The control plane writes kubeconfigs as JSON (valid YAML) that point at files in its run
    directory; those files are root's and stay so.
    """
    config: dict[str, Any] = json.loads(source.read_text())
    inline = {
        "certificate-authority": "certificate-authority-data",
        "client-certificate": "client-certificate-data",
        "client-key": "client-key-data",
    }
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in config.get(section, []):
            body = entry.get(key, {})
            for file_field, data_field in inline.items():
                if file_field in body:
                    data = Path(body.pop(file_field)).read_bytes()
                    body[data_field] = base64.b64encode(data).decode()
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(config, indent=2) + "\n")
    destination.chmod(0o400)
    uid, gid = (int(part) for part in IMAGE_USER.split(":"))
    with contextlib.suppress(PermissionError):  # only root can give it away; then it stays ours
        os.chown(destination, uid, gid)
    return destination


@dataclass
class ContainerChild(Child):
    """A :class:`Child` run from the product image: ``qstash-operator <args>`` in a container.

    The podman client runs in the foreground (its output is the container's, into ``log``, and
    its exit status the container's); ``stop`` and ``kill`` signal the container itself, as a
    kubelet would.
    """

    image: str = ""
    kubeconfig: Path | None = None
    container: str = field(default="")
    stopped_in: float | None = None  # seconds from SIGTERM to exit, set by stop()

    def argv(self) -> list[str]:
        if not self.image:
            raise ImageError("ContainerChild needs an image")
        self.container = self.container or f"qso-{self.name}-{os.getpid()}-{next(_names)}"
        argv = [
            *PODMAN,
            "run",
            "--rm",
            "--name",
            self.container,
            "--label",
            f"{OWNER_LABEL}={os.getpid()}",
            "--network",
            "host",
            "--sig-proxy=false",
            *hardening(),
        ]
        env = {k: v for k, v in self.env.items() if k.startswith(PASSED_ENV_PREFIXES)}
        env["PYTHONUNBUFFERED"] = "1"
        if self.kubeconfig is not None:
            copy = container_kubeconfig(
                self.kubeconfig, self.log.parent / f"{self.container}.kubeconfig"
            )
            argv += ["--volume", f"{copy}:{KUBECONFIG_IN_CONTAINER}:ro"]
            env["KUBECONFIG"] = KUBECONFIG_IN_CONTAINER
        for key, value in sorted(env.items()):
            argv += ["--env", f"{key}={value}"]
        return [*argv, self.image, *self.args]

    def start(self) -> ContainerChild:
        sweep_stale_containers()
        argv = self.argv()
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_child_setup(os.getpid()),
            )
        return self

    def signal(self, signal_name: str) -> None:
        podman("kill", "--signal", signal_name, self.container, check=False, timeout=30)

    def kill(self) -> None:
        if self.process is not None and self.running:
            self.signal("KILL")
            self.process.wait(30)

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM to the container, SIGKILL after ``grace``; returns the container's exit status
        (137 when it had to be killed)."""
        if self.process is None:
            return None
        if self.running:
            began = time.monotonic()
            self.signal("TERM")
            try:
                self.process.wait(grace)
                self.stopped_in = time.monotonic() - began
            except subprocess.TimeoutExpired:
                self.signal("KILL")
                self.process.wait(30)
        podman("rm", "--force", "--time", "0", "--ignore", self.container, check=False)
        return self.process.returncode
