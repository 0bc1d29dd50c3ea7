"""A real node for the test control plane: a kubelet on containerd, on this machine.

Why: kwok's node only pretends; a wrong probe port, a write to a read-only root or a token the API
server refuses shows only when a kubelet really runs the chart's pods. :class:`RealNode` joins a
:class:`~qstash_devstack.controlplane.ControlPlane` with:

* a private containerd (Debian's 1.6, its CRI plugin; runc; ``restrict_oom_score_adj`` because this
  machine lacks ``CAP_SYS_RESOURCE``), with its root, state and socket in the node's run directory
  and every image a pod uses imported ahead of time: no registry is reachable (pods use
  ``imagePullPolicy: Never``/``IfNotPresent``), the pause image included (``catatonit -P``);
* CNI from Debian's containernetworking-plugins: ``bridge`` + ``host-local`` on a bridge made here
  (``qso-br0``, 10.250.0.1/24, no masquerade, no IP forwarding), ``loopback`` by containerd;
  the node's InternalIP is the bridge's address (a kubelet refuses a loopback node IP), so every
  byte stays on this machine;
* the kubelet built from the control plane's own module pins (``devstack/build-node.sh``), with
  ``failCgroupV1: false`` and ``cgroupDriver: cgroupfs`` (cgroup v1/v2 hybrid, no systemd), its
  cgroups under ``/qso-node``, a client certificate ``system:node:<name>`` from the cluster's CA
  (the API server runs the Node authorizer), and a taint plus a label so that only pods that ask
  for it land here (kwok's node keeps every other test's pods).

Nothing global changes: a kubelet sets six kernel tunables at start (``vm.overcommit_memory=1``,
``kernel.panic_on_oops=1``, ...) unless told to fail instead; this one runs in a mount namespace of
its own where those ``/proc/sys`` files read as what it wants, while its root directory stays a
shared mount so the volumes it mounts reach containerd. It finds no iptables (``KUBELET_PATH``),
so it leaves no chains behind. ``stop()`` removes the pods through the
API (so CNI tears their networks down), stops both daemons, kills any shim left, unmounts what the
node mounted, and deletes the bridge, the cgroups, the run directory and the Node object.

There is no kube-proxy: the chart's pods run on the host network and reach the API server on
loopback (``KUBERNETES_SERVICE_HOST``/``PORT`` in their env), so the ``kubernetes`` Service is
never routed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from qstash_devstack.containers import save_image
from qstash_devstack.controlplane import (
    REPO_ROOT,
    ControlPlane,
    ControlPlaneError,
    _free_ports,
    _pid_alive,
    _Process,
    _stop_processes,
    _tail,
)

NODE_BUILD_SCRIPT: Final = REPO_ROOT / "devstack" / "build-node.sh"
NODE_NAME: Final = "qso-node-0"
BRIDGE: Final = "qso-br0"
NODE_IP: Final = "10.250.0.1"
POD_SUBNET: Final = "10.250.0.0/24"
TAINT: Final = {"key": "qstash-operator.dev/real-node", "value": "true", "effect": "NoSchedule"}
LABEL: Final = ("qstash-operator.dev/node", "real")
CGROUP_ROOT: Final = "qso-node"
CGROUP_MOUNT: Final = Path("/sys/fs/cgroup")
CNI_BIN_DIR: Final = Path("/usr/lib/cni")
NETNS_DIR: Final = Path("/var/run/netns")
RUN_DIR_PREFIX: Final = "qso-node-"
KERNEL_TUNABLES: Final = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
"""What the kubelet's container manager sets (pkg/kubelet/cm setupKernelTunables), as it reads them
in its own mount namespace: the host's values never change."""
KUBELET_PATH: Final = "/usr/local/bin:/usr/bin:/bin"
"""No sbin: without an iptables binary the kubelet skips the chains it keeps for kube-proxy's sake
(KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), which would outlive it. There is no
kube-proxy here, and nothing else the kubelet runs for these pods lives in sbin."""


class NodeError(ControlPlaneError):
    """The node could not be started or driven; the message carries the log tail."""


def node_bins_dir() -> Path:
    out = subprocess.run(
        [str(NODE_BUILD_SCRIPT), "--print"], check=True, capture_output=True, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def build_kubelet(*, quiet: bool = False) -> Path:
    """Run build-node.sh (a no-op when warm) and return the directory holding ``kubelet``."""
    proc = subprocess.run(
        [str(NODE_BUILD_SCRIPT)],
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        text=True,
    )
    if proc.returncode != 0:
        raise NodeError(f"{NODE_BUILD_SCRIPT} failed with exit code {proc.returncode}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _run(*argv: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NodeError(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stderr}")
    return proc


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` in this mount namespace, deepest first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def _remove_cgroups() -> None:
    """rmdir our cgroup tree in every v1 hierarchy (and the unified one), leaves first."""
    for hierarchy in CGROUP_MOUNT.iterdir():
        top = hierarchy / CGROUP_ROOT
        if not top.is_dir():
            continue
        for directory in sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _make_cgroups() -> None:
    """The kubelet's cgroupRoot must exist in every hierarchy; cpuset needs its cpus and mems."""
    for hierarchy in CGROUP_MOUNT.iterdir():
        if not hierarchy.is_dir() or hierarchy.is_symlink():
            continue
        top = hierarchy / CGROUP_ROOT
        top.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / name).exists():
                (top / name).write_text((hierarchy / name).read_text())


def sweep_stale_nodes() -> None:
    """Undo what a node whose test process died left: its bridge, its cgroups, its run dir."""
    for path in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*"):
        owner = path.name[len(RUN_DIR_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not _pid_alive(int(owner)):
            _kill_shims(path)
            for point in _mounts_under(path):
                _run("umount", "-l", point, check=False)
            shutil.rmtree(path, ignore_errors=True)
            _run("ip", "link", "delete", BRIDGE, check=False)
            _remove_cgroups()


def _kill_shims(run_dir: Path) -> None:
    """containerd's shims outlive it (they are daemons): find ours by the socket they name."""
    marker = str(run_dir).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in text and marker in text:
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)


class RealNode:
    """A kubelet on containerd that registers ``name`` with `plane`; see the module docstring.

    ``images``: references podman knows, imported into containerd before the kubelet starts;
    ``pause_image`` is the sandbox image (one of them, or added).
    """

    def __init__(
        self,
        plane: ControlPlane,
        *,
        pause_image: str,
        images: Sequence[str] = (),
        name: str = NODE_NAME,
        kubelet_dir: Path | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.plane = plane
        self.name = name
        self.pause_image = pause_image
        self.images = list(dict.fromkeys([pause_image, *images]))
        self.kubelet_dir = kubelet_dir if kubelet_dir is not None else node_bins_dir()
        self.start_timeout = start_timeout
        self.timings: dict[str, float] = {}
        self.run_dir = Path()
        self._processes: dict[str, _Process] = {}
        self._netns_before: set[str] = set()
        self._started = False
        self._stopped = False

    # -- public surface ---------------------------------------------------------------------

    @property
    def socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    def log_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.log"

    def ctr(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        """``ctr`` against this node's containerd, in the CRI's namespace."""
        argv = ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args]
        return _run(*argv, check=check, timeout=timeout).stdout

    def containers(self) -> list[str]:
        """Ids of the containers containerd holds (sandboxes included)."""
        return self.ctr("containers", "list", "--quiet").split()

    def stats_summary(self) -> dict[str, Any]:
        """The kubelet's /stats/summary, read through the API server's node proxy."""
        status, body = self.plane.request(
            "GET", f"/api/v1/nodes/{self.name}/proxy/stats/summary", timeout=30
        )
        if status != 200:
            raise NodeError(f"stats/summary answered {status}: {body}")
        return dict(body)

    def diagnostics(self, lines: int = 40) -> str:
        """The kubelet's and containerd's last log lines, for a failed test's report."""
        return "\n".join(
            f"----- {name} (last {lines} lines) -----\n{_tail(self.log_file(name), lines)}"
            for name in ("kubelet", "containerd")
        )

    def node_selector(self) -> dict[str, str]:
        return {LABEL[0]: LABEL[1]}

    def tolerations(self) -> list[dict[str, str]]:
        return [
            {"key": TAINT["key"], "operator": "Equal", **{k: TAINT[k] for k in ("value", "effect")}}
        ]

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> RealNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RealNode:
        if self._started:
            raise NodeError("a RealNode starts once; make a new one")
        self._started = True
        if os.geteuid() != 0:
            raise NodeError("a real node needs root (containerd, CNI, cgroups, mounts)")
        missing = [
            tool
            for tool in ("containerd", "ctr", "runc", "unshare", "ip")
            if shutil.which(tool) is None
        ] + [str(p) for p in (CNI_BIN_DIR / "bridge", CNI_BIN_DIR / "host-local") if not p.exists()]
        if not (self.kubelet_dir / "kubelet").is_file():
            missing.append(str(self.kubelet_dir / "kubelet"))
        if missing:
            raise NodeError(f"missing {', '.join(missing)}: run devstack/host-packages.sh and "
                            "devstack/build-node.sh")  # fmt: skip
        sweep_stale_nodes()
        began = time.monotonic()
        _make_cgroups()
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-"))
        self._netns_before = set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set()
        try:
            self._bridge_up()
            self._start_containerd(began + self.start_timeout)
            self.timings["containerd"] = time.monotonic() - began
            self._import_images()
            self.timings["images"] = time.monotonic() - began
            self._start_kubelet()
            self._wait_ready(began + self.start_timeout)
            self.timings["ready"] = time.monotonic() - began
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Remove the pods, stop both daemons and undo every host change. Safe to call twice."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        if self._processes.get("kubelet") is not None and self._processes["kubelet"].running():
            self._drain_pods()
        _stop_processes([p for n, p in self._processes.items() if n == "kubelet"], 10)
        if (
            self._processes.get("containerd") is not None
            and self._processes["containerd"].running()
        ):
            self._remove_containers()
        _stop_processes([p for n, p in self._processes.items() if n == "containerd"], 10)
        _kill_shims(self.run_dir)
        for point in _mounts_under(self.run_dir):
            _run("umount", "-l", point, check=False)
        if NETNS_DIR.is_dir():
            for name in set(os.listdir(NETNS_DIR)) - self._netns_before:
                _run("umount", "-l", str(NETNS_DIR / name), check=False)
                with contextlib.suppress(OSError):
                    (NETNS_DIR / name).unlink()
        _run("ip", "link", "delete", BRIDGE, check=False)
        _remove_cgroups()
        with contextlib.suppress(OSError):
            self.plane.request("DELETE", f"/api/v1/nodes/{self.name}")
        if os.environ.get("QSO_KEEP_CLUSTER_DIR") != "1":
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- internals --------------------------------------------------------------------------

    def _bridge_up(self) -> None:
        _run("ip", "link", "delete", BRIDGE, check=False)
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "address", "add", f"{NODE_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        cni = self.run_dir / "cni"
        cni.mkdir()
        (cni / "10-qso-node.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "qso-node",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            # The bridge already has the gateway address; no NAT, no forwarding:
                            # pods talk to this host only.
                            "isGateway": False,
                            "ipMasq": False,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [
                                    [
                                        {
                                            "subnet": POD_SUBNET,
                                            "rangeStart": "10.250.0.10",
                                            "gateway": NODE_IP,
                                        }
                                    ]
                                ],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.run_dir / "cni-ipam"),
                            },
                        }
                    ],
                },
                indent=2,
            )
        )

    def _containerd_config(self) -> str:
        d = self.run_dir
        runc = shutil.which("runc")
        return f"""version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
oom_score = 0

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.pause_image}"
  # This machine lacks CAP_SYS_RESOURCE: never ask for an oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{d}/cni"
    max_conf_num = 1
"""

    def _spawn(self, name: str, argv: list[str], *, path: str | None = None) -> None:
        env = {"PATH": path or os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        proc = _Process(name=name, argv=argv, log=self.log_file(name), env=env)
        self._processes[name] = proc
        proc.start()

    def _start_containerd(self, deadline: float) -> None:
        config = self.run_dir / "containerd.toml"
        config.write_text(self._containerd_config())
        self._spawn("containerd", ["containerd", "--config", str(config), "--log-level", "info"])
        while not (self.socket.exists() and self.ctr("version", check=False)):
            if not self._processes["containerd"].running():
                raise self._failure("containerd exited", "containerd")
            if time.monotonic() > deadline:
                raise self._failure("timed out waiting for containerd", "containerd")
            time.sleep(0.1)

    def _import_images(self) -> None:
        archives = self.run_dir / "images"
        archives.mkdir()
        for index, ref in enumerate(self.images):
            archive = save_image(ref, archives / f"{index}.tar")
            self.ctr("images", "import", str(archive), timeout=600)
            archive.unlink()
        present = self.ctr("images", "list", "--quiet").split()
        missing = [ref for ref in self.images if ref not in present]
        if missing:
            raise NodeError(f"containerd lacks {missing} after import; it has {present}")

    def _kernel_tunable_binds(self) -> list[str]:
        """Shell lines binding a file with the kubelet's wanted value over each differing one."""
        values = self.run_dir / "sysctl"
        values.mkdir()
        lines = []
        for path, wanted in KERNEL_TUNABLES.items():
            current = (Path("/proc/sys") / path).read_text().strip()
            if current == wanted:
                continue
            value_file = values / path.replace("/", ".")
            value_file.write_text(wanted + "\n")
            lines.append(f"mount --bind {value_file} /proc/sys/{path}")
        return lines

    def _kubelet_config(self, port: int, healthz_port: int, cert: Path, key: Path) -> str:
        d = self.run_dir
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This machine mounts cgroup v1 controllers (with v2 beside them) and runs no
            # systemd: the kubelet refuses v1 unless told, and must manage cgroupfs itself.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "imageServiceEndpoint": f"unix://{self.socket}",
            "address": NODE_IP,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            "tlsCertFile": str(cert),
            "tlsPrivateKeyFile": str(key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.plane.ca_file)},
            },
            "authorization": {"mode": "Webhook"},
            "registerNode": True,
            "registerWithTaints": [TAINT],
            "podLogsDir": str(d / "pod-logs"),
            "volumePluginDir": str(d / "volume-plugins"),
            "failSwapOn": False,
            # Lowering its own score needs CAP_SYS_RESOURCE, which this machine does not grant.
            "oomScoreAdj": 0,
            # Preloaded images cannot be pulled again: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "maxPods": 16,
            "shutdownGracePeriod": "0s",
            "containerLogMaxSize": "1Mi",
            "nodeStatusUpdateFrequency": "4s",
        }
        return json.dumps(config, indent=2)

    def _start_kubelet(self) -> None:
        pki = self.run_dir / "pki"
        client_crt, client_key = self.plane.issue_certificate(
            pki, "kubelet-client", f"/O=system:nodes/CN=system:node:{self.name}"
        )
        serving_crt, serving_key = self.plane.issue_certificate(
            pki, "kubelet-serving", f"/CN={self.name}",
            server_names=(f"IP:{NODE_IP}", f"DNS:{self.name}"),
        )  # fmt: skip
        kubeconfig = self.plane.kubeconfig_for_certificate(
            client_crt, client_key, self.run_dir / "kubelet.kubeconfig"
        )
        port, healthz_port = _free_ports(2)
        config = self.run_dir / "kubelet.json"
        config.write_text(self._kubelet_config(port, healthz_port, serving_crt, serving_key))
        root = self.run_dir / "kubelet"
        root.mkdir()
        # Shared, so what the kubelet mounts in its namespace (volumes) shows in containerd's.
        _run("mount", "--bind", str(root), str(root))
        _run("mount", "--make-rshared", str(root))
        kubelet = [
            str(self.kubelet_dir / "kubelet"),
            f"--config={config}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={root}",
            f"--hostname-override={self.name}",
            f"--node-ip={NODE_IP}",
            f"--node-labels={LABEL[0]}={LABEL[1]}",
            "--v=2",
        ]
        script = " && ".join([*self._kernel_tunable_binds(), 'exec "$@"'])
        self._spawn(
            "kubelet",
            ["unshare", "--mount", "--propagation", "unchanged", "--", "sh", "-c", script,
             "kubelet", *kubelet],
            path=KUBELET_PATH,
        )  # fmt: skip

    def _wait_ready(self, deadline: float) -> None:
        while True:
            for name, proc in self._processes.items():
                if not proc.running():
                    raise self._failure(f"{name} exited while the node came up", name)
            with contextlib.suppress(OSError, ValueError):
                status, node = self.plane.request("GET", f"/api/v1/nodes/{self.name}")
                if status == 200:
                    conditions = node.get("status", {}).get("conditions", [])
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                        return
            if time.monotonic() > deadline:
                raise self._failure(
                    f"timed out waiting for node {self.name} to be Ready", "kubelet"
                )
            time.sleep(0.25)

    def _drain_pods(self) -> None:
        """Delete the pods bound here, at once, and wait until containerd holds no container:
        the kubelet then has stopped every sandbox, so CNI has released every address."""
        with contextlib.suppress(OSError, ValueError):
            status, pods = self.plane.request(
                "GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{self.name}", timeout=30
            )
            for pod in pods.get("items", []) if status == 200 else []:
                meta = pod["metadata"]
                self.plane.request(
                    "DELETE",
                    f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                    {"gracePeriodSeconds": 0},
                )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(NodeError):
                if not self.containers():
                    return
            time.sleep(0.25)

    def _remove_containers(self) -> None:
        """What the kubelet left (it was killed, or a pod outlived the drain)."""
        for task in self.ctr("tasks", "list", "--quiet", check=False).split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
            self.ctr("tasks", "delete", "--force", task, check=False)
        for container in self.containers():
            self.ctr("containers", "delete", container, check=False)

    def _failure(self, what: str, component: str) -> NodeError:
        return NodeError(f"{what}; last lines of {self.log_file(component)}:\n"
                         f"{_tail(self.log_file(component), 60)}")  # fmt: skip


def pod_memory(summary: Mapping[str, Any], namespace: str) -> dict[str, int]:
    """Working-set bytes of each pod of `namespace` in a /stats/summary (what the kubelet's
    eviction and `kubectl top` count)."""
    found = {}
    for pod in summary.get("pods", []):
        ref = pod.get("podRef", {})
        if ref.get("namespace") == namespace:
            found[ref["name"]] = int(pod.get("memory", {}).get("workingSetBytes", 0))
    return found
