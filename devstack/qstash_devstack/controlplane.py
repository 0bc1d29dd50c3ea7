"""A real, throw-away Kubernetes control plane for integration and end-to-end tests.

Why this exists: the operator's behaviour lives in what the API server does with it — CRD schema
validation and defaulting, CEL rules, RBAC, the status subresource, owner references and garbage
collection, CronJob and Job controllers — and none of that can be faked faithfully. So the tests run
the real binaries (built from Go modules by ``devstack/build.sh``) as ordinary processes on
loopback, with no Docker and no network:

* etcd, on tmpfs when ``/dev/shm`` exists, without fsync;
* kube-apiserver with TLS, client-certificate and service-account-token authentication, and RBAC
  (so a ServiceAccount token really is denied what its Roles do not grant);
* kube-controller-manager with the controllers the project relies on (job, cronjob, garbage
  collector, namespace, service accounts and their tokens, deployments, RBAC aggregation);
* kube-scheduler, and kwok with one fake node, so pods are scheduled, "run" and finish (see
  ``kwok-stages.yaml`` for the simulated life cycle and its test knobs).

Every process gets its own process group, its own log file in the run directory, and a parent-death
signal, so nothing outlives the Python process that started it — not even after ``kill -9``.
``stop()`` ends the groups (SIGTERM, then SIGKILL after a deadline) and deletes the run directory;
it is also wired to ``atexit`` and to SIGTERM/SIGINT/SIGHUP. Run directories left behind by a
process that was killed outright are swept at the next start.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "devstack" / "build.sh"
KWOK_STAGES = REPO_ROOT / "devstack" / "kwok-stages.yaml"
CRD_DIR = REPO_ROOT / "crds"

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "helm",
    "kwok",
)
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
FAKE_NODE = "kwok-node-0"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
# The node annotation kwok is told to select on: it manages this node and no other.
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "deployment-controller",
    "replicaset-controller",
    "ttl-after-finished-controller",
)
RUN_DIR_PREFIX = "qso-cp-"
ETCD_DIR_PREFIX = "qso-etcd-"
KEEP_MARKER = ".keep"  # a run dir holding this is never swept
KUBELET_CLIENT = "apiserver-kubelet-client"
_NEW_EC_KEY = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -config req.cnf"
_CERT_COMMON = (
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "subjectKeyIdentifier=hash\n"
    "authorityKeyIdentifier=keyid,issuer\n"
)
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    # Who a ServiceAccount token turned out to be, for every request made with one (the chart's
    # pods on the real node, the RBAC proof's tokens); nothing for the admin certificate.
    "rules": [
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}
AUDIT_EVERYTHING = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    # Every request's verb, object, code, user agent and times (the benchmarks' breakdown of who
    # called what when); not the scrapes of /metrics that the breakdown itself makes.
    "rules": [
        {"level": "None", "nonResourceURLs": ["/metrics", "/readyz", "/livez", "/healthz"]},
        {"level": "Metadata"},
    ],
}

_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or driven; the message carries the log tail."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl (or helm) call failed; str() shows the command and its stderr."""

    def __str__(self) -> str:
        cmd = " ".join(str(part) for part in self.cmd)
        return f"`{cmd}` exited {self.returncode}:\n{self.stderr or ''}{self.stdout or ''}"


# --- binaries ---------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where build.sh keeps (or would keep) the binaries, without building anything."""
    out = subprocess.run(
        [str(BUILD_SCRIPT), "--print"], check=True, capture_output=True, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def build_binaries(*, quiet: bool = False) -> Path:
    """Run build.sh (a no-op when the cache is warm) and return the binaries' directory.

    The script's progress goes to stderr, which is passed through so a cold build (tens of
    minutes) is visibly alive; only its last stdout line, the directory, is captured.
    """
    proc = subprocess.run(
        [str(BUILD_SCRIPT)],
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        text=True,
    )
    if proc.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}")
    bin_dir = Path(proc.stdout.strip().splitlines()[-1])
    missing = [name for name in BINARIES if not (bin_dir / name).is_file()]
    if missing:
        raise ControlPlaneError(f"{bin_dir} lacks {', '.join(missing)}; rerun {BUILD_SCRIPT}")
    return bin_dir


# --- process plumbing -------------------------------------------------------------------------


def _libc_prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - not Linux
        return None
    return getattr(libc, "prctl", None)


_PRCTL = _libc_prctl()


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """Return a preexec_fn: die with the parent (even on SIGKILL), and not a moment later.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits; the control plane is
    started from the main thread (pytest's session fixture, the up.py script), which lives as long
    as the process. If the parent died between fork and prctl, the child kills itself.
    """
    prctl = _PRCTL

    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for binding now; held together so they are distinct."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Process:
    """One control-plane binary running in its own process group, logging to one file."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    pgids: list[int] = field(default_factory=list)

    def start(self) -> None:
        with self.log.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_child_setup(os.getpid()),
            )
        # start_new_session makes the child a session and group leader: pgid == pid.
        self.pgids.append(self.popen.pid)

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def failure(self, what: str) -> ControlPlaneError:
        code = None if self.popen is None else self.popen.poll()
        state = "is running" if code is None else f"exited with code {code}"
        return ControlPlaneError(
            f"{what}: {self.name} {state}; last lines of {self.log}:\n{_tail(self.log)}"
        )


def _stop_processes(processes: Sequence[_Process], grace: float) -> None:
    """SIGTERM every group at once, wait up to `grace` seconds, then SIGKILL what is left."""
    for proc in processes:
        proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in processes:
        if proc.popen is None:
            continue
        remaining = max(0.0, deadline - time.monotonic())
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=remaining)
    for proc in processes:
        # Also catches grandchildren left in the group after the leader exited.
        proc.signal_group(signal.SIGKILL)
        if proc.popen is not None:
            proc.popen.wait()


# --- signal and exit handling -----------------------------------------------------------------

_LIVE: list[ControlPlane] = []
_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_previous_handlers: dict[int, Any] = {}
_handlers_installed = False


def _stop_all() -> None:
    for plane in list(_LIVE):
        plane.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)  # e.g. SIGINT's default raises KeyboardInterrupt
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_exit_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still applies
    for sig in _HANDLED_SIGNALS:
        previous = signal.getsignal(sig)
        if previous == signal.SIG_IGN:
            continue
        _previous_handlers[sig] = previous
        signal.signal(sig, _on_signal)


def sweep_stale_run_dirs() -> list[Path]:
    """Delete run directories whose owning process is gone (it was killed before stop())."""
    removed: list[Path] = []
    roots = {(Path(tempfile.gettempdir()), RUN_DIR_PREFIX), (Path("/dev/shm"), ETCD_DIR_PREFIX)}
    for root, prefix in roots:
        if not root.is_dir():
            continue
        for path in root.glob(f"{prefix}*"):
            owner = path.name[len(prefix) :].split("-", 1)[0]
            if (path / KEEP_MARKER).exists():
                continue  # kept on purpose (keep_run_dir) for a post-mortem
            if owner.isdigit() and not _pid_alive(int(owner)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


# --- the control plane ------------------------------------------------------------------------


class ControlPlane:
    """etcd + kube-apiserver + controllers + scheduler + kwok on loopback, in a temporary dir.

    Use as a context manager or call start()/stop(). Everything a test needs to talk to it is a
    property or helper here: ``kubeconfig``, ``server``, ``ca_file``, ``env()``, ``kubectl()``,
    ``helm()``, ``request()``, ``create_service_account_token()``, ``kubeconfig_for_token()``.
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        crd_dir: Path | None = CRD_DIR,
        start_timeout: float = 90.0,
        stop_grace: float = 10.0,
        keep_run_dir: bool = False,
        audit_policy: Mapping[str, Any] | None = None,
    ) -> None:
        """``audit_policy``: the API server's (default :data:`AUDIT_POLICY`; the benchmarks'
        breakdown passes :data:`AUDIT_EVERYTHING`)."""
        self.audit_policy = audit_policy if audit_policy is not None else AUDIT_POLICY
        self.bin_dir = bin_dir if bin_dir is not None else cache_dir()
        self.crd_dir = crd_dir
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.keep_run_dir = keep_run_dir or os.environ.get("QSO_KEEP_CLUSTER_DIR") == "1"
        self.startup_seconds: float | None = None
        self.timings: dict[str, float] = {}
        self._run_dir: Path | None = None
        self._etcd_dir: Path | None = None
        self._processes: dict[str, _Process] = {}
        self._api_port = 0
        self._ssl: ssl.SSLContext | None = None
        self._stopped = False

    # -- public surface ---------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        if self._run_dir is None:
            raise ControlPlaneError("the control plane has not been started")
        return self._run_dir

    @property
    def etcd_dir(self) -> Path:
        """etcd's data directory (on tmpfs when /dev/shm exists)."""
        if self._etcd_dir is None:
            raise ControlPlaneError("the control plane has not been started")
        return self._etcd_dir

    @property
    def pki_dir(self) -> Path:
        return self.run_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (client certificate in system:masters; bypasses RBAC)."""
        return self.run_dir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._api_port}"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def node_name(self) -> str:
        return FAKE_NODE

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON event per request made with a ServiceAccount
        token (see AUDIT_POLICY), saying who the token authenticated as."""
        return self.run_dir / "audit.log"

    def audit_events(self) -> list[dict[str, Any]]:
        """The audit log's events so far (lines being written are skipped)."""
        events = []
        try:
            lines = self.audit_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):
                events.append(json.loads(line))
        return events

    def log_file(self, component: str) -> Path:
        """The log of one component: etcd, kube-apiserver, kube-controller-manager, ..."""
        return self.run_dir / f"{component}.log"

    def pids(self) -> dict[str, int]:
        """Process ids of the components that are running now."""
        return {
            name: proc.popen.pid
            for name, proc in self._processes.items()
            if proc.popen is not None and proc.running()
        }

    def process_groups(self) -> list[int]:
        """Every process group this control plane has ever started (restarts included)."""
        return [pgid for proc in self._processes.values() for pgid in proc.pgids]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for subprocesses: KUBECONFIG, the built binaries first on PATH, kubectl's
        cache and helm's homes inside the run directory, and loopback exempt from any proxy."""
        env = dict(os.environ)
        no_proxy = ",".join(
            part for part in (env.get("NO_PROXY", ""), "127.0.0.1,localhost") if part
        )
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            PATH=f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}",
            NO_PROXY=no_proxy,
            no_proxy=no_proxy,
            KUBECACHEDIR=str(self.run_dir / "kube-cache"),  # not ~/.kube/cache
            HELM_CACHE_HOME=str(self.run_dir / "helm" / "cache"),
            HELM_CONFIG_HOME=str(self.run_dir / "helm" / "config"),
            HELM_DATA_HOME=str(self.run_dir / "helm" / "data"),
        )
        if extra:
            env.update(extra)
        return env

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster (as admin unless `kubeconfig` is given)."""
        extra = {"KUBECONFIG": str(kubeconfig)} if kubeconfig is not None else None
        return self._run_tool("kubectl", args, input, check, timeout, extra)

    def helm(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built helm against this cluster."""
        return self._run_tool("helm", args, input, check, timeout, None)

    def create_service_account_token(
        self,
        namespace: str,
        service_account: str,
        *,
        duration: str = "1h",
        audience: str | None = None,
    ) -> str:
        """A bound token for the ServiceAccount, minted through the TokenRequest API; for the API
        server itself, or with ``audience`` for another service (the webhook's API wants
        ``qstash-operator``)."""
        args = ["create", "token", service_account, "--namespace", namespace]
        args.append(f"--duration={duration}")
        if audience is not None:
            args.append(f"--audience={audience}")
        return self.kubectl(*args).stdout.strip()

    def kubeconfig_for_token(self, token: str, path: Path | str) -> Path:
        """Write a kubeconfig that authenticates with `token` (e.g. a chart's ServiceAccount)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self._kubeconfig_text("token-user", {"token": token}))
        path.chmod(0o600)
        return path

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """One raw HTTPS request to the API server: (status, decoded JSON or text).

        Authenticates with the admin client certificate, or with `token` as a bearer token (the
        client certificate is then not offered, so RBAC applies to the token's subject).
        """
        context = self._ssl_context(client_cert=token is None)
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self._api_port, context=context, timeout=timeout
        )
        headers = {"Accept": "application/json"}
        payload: bytes | None = None
        if body is not None:
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read().decode(errors="replace")
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw)
        except json.JSONDecodeError:
            return response.status, raw

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        if self._run_dir is not None:
            raise ControlPlaneError("a ControlPlane starts once; make a new one")
        missing = [name for name in BINARIES if not (self.bin_dir / name).is_file()]
        if missing:
            raise ControlPlaneError(
                f"{self.bin_dir} lacks {', '.join(missing)}; run {BUILD_SCRIPT} first"
            )
        sweep_stale_run_dirs()
        _install_exit_handlers()
        began = time.monotonic()
        owner = f"{os.getpid()}-"
        self._run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{owner}"))
        shm = Path("/dev/shm")
        self._etcd_dir = Path(
            tempfile.mkdtemp(
                prefix=f"{ETCD_DIR_PREFIX}{owner}", dir=shm if shm.is_dir() else self._run_dir
            )
        )
        if self.keep_run_dir:
            for directory in (self._run_dir, self._etcd_dir):
                (directory / KEEP_MARKER).touch()
        _LIVE.append(self)
        try:
            self._boot(began)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every process group and delete the run directory. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self in _LIVE:
            _LIVE.remove(self)
        # etcd last: an API server that loses etcd first hangs in its shutdown until timeouts.
        # Everything else goes at once; the clients hold no state worth an ordered shutdown.
        procs = list(self._processes.values())
        _stop_processes([p for p in procs if p.name != "etcd"], self.stop_grace)
        _stop_processes([p for p in procs if p.name == "etcd"], self.stop_grace)
        if not self.keep_run_dir:
            for directory in (self._etcd_dir, self._run_dir):
                if directory is not None:
                    shutil.rmtree(directory, ignore_errors=True)

    @contextlib.contextmanager
    def apiserver_down(self) -> Iterator[None]:
        """Stop kube-apiserver for the duration of the block, then start it again on the same
        port and wait until it is ready. Controllers, kwok and clients reconnect on their own."""
        proc = self._processes["kube-apiserver"]
        _stop_processes([proc], self.stop_grace)
        try:
            yield
        finally:
            proc.start()
            self._wait_apiserver_ready(time.monotonic() + self.start_timeout)

    @contextlib.contextmanager
    def apiserver_paused(self) -> Iterator[None]:
        """Freeze kube-apiserver (SIGSTOP) for the duration of the block, then thaw it (SIGCONT)
        and wait until it is ready. Frozen, it still accepts connections (the kernel completes
        the handshake) but never answers, on new connections or open ones: the hang of a stuck
        or partitioned API server, which a stopped one (refused connections) does not give."""
        proc = self._processes["kube-apiserver"]
        proc.signal_group(signal.SIGSTOP)
        try:
            yield
        finally:
            proc.signal_group(signal.SIGCONT)
            self._wait_apiserver_ready(time.monotonic() + self.start_timeout)

    def restart_apiserver(self) -> float:
        """Stop and start kube-apiserver on the same port; return the seconds it was away."""
        began = time.monotonic()
        with self.apiserver_down():
            pass
        return time.monotonic() - began

    # -- internals --------------------------------------------------------------------------

    def _run_tool(
        self,
        tool: str,
        args: Sequence[str],
        input_text: str | None,
        check: bool,
        timeout: float,
        extra_env: Mapping[str, str] | None,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin_dir / tool), *args]
        proc = subprocess.run(
            argv,
            input=input_text,
            capture_output=True,
            text=True,
            env=self.env(extra_env),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def _boot(self, began: float) -> None:
        deadline = began + self.start_timeout
        self._make_pki()
        self.timings["pki"] = time.monotonic() - began
        etcd_client, etcd_peer, self._api_port = _free_ports(3)
        self.kubeconfig.write_text(
            self._kubeconfig_text(
                "admin",
                {
                    "client-certificate": str(self.pki_dir / "admin.crt"),
                    "client-key": str(self.pki_dir / "admin.key"),
                },
            )
        )
        self.kubeconfig.chmod(0o600)

        self._spawn("etcd", self._etcd_argv(etcd_client, etcd_peer))
        self._wait_etcd(etcd_client, deadline)
        self.timings["etcd"] = time.monotonic() - began

        (self.run_dir / "audit-policy.json").write_text(json.dumps(self.audit_policy))
        self._spawn("kube-apiserver", self._apiserver_argv(etcd_client))
        self._wait_apiserver_ready(deadline)
        self.timings["apiserver"] = time.monotonic() - began

        self._spawn("kube-controller-manager", self._controller_manager_argv())
        self._spawn("kube-scheduler", self._scheduler_argv())
        self._spawn("kwok", self._kwok_argv())
        self._create_fake_node()
        if self.crd_dir is not None:
            self._apply_crds(deadline)
        self.timings["crds"] = time.monotonic() - began
        self._wait_for(
            "the default ServiceAccount in namespace default",
            lambda: (
                self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
            ),
            deadline,
            watch="kube-controller-manager",
        )
        self._wait_for(f"node {FAKE_NODE} to be Ready", self._node_ready, deadline, watch="kwok")
        self.timings["ready"] = time.monotonic() - began

    def _make_pki(self) -> None:
        pki = self.pki_dir
        pki.mkdir(parents=True)
        # A minimal request config: the distro's default one adds extensions of its own.
        (pki / "req.cnf").write_text(
            "[req]\ndistinguished_name = dn\n[dn]\n"
            "[ca]\n"
            "basicConstraints = critical,CA:TRUE\n"
            "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid:always\n"
        )
        (pki / "server.ext").write_text(
            _CERT_COMMON + "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,"
            "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local\n"
        )
        (pki / "client.ext").write_text(_CERT_COMMON + "extendedKeyUsage=clientAuth\n")

        self._openssl(
            f"req -x509 {_NEW_EC_KEY} -extensions ca -days 30 -keyout ca.key -out ca.crt "
            "-subj /CN=qstash-operator-test-ca"
        )
        for name, subject in (
            ("apiserver", "/CN=kube-apiserver"),
            ("admin", "/O=system:masters/CN=admin"),
            # What the API server presents to a kubelet (logs, exec, stats): a real node
            # authorises it by SubjectAccessReview, which system:masters passes.
            (KUBELET_CLIENT, "/O=system:masters/CN=kube-apiserver-kubelet-client"),
        ):
            self._sign(pki, name, subject, "server.ext" if name == "apiserver" else "client.ext")
        # The ServiceAccount token signer: RSA, as in real clusters (RS256 tokens).
        self._openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key")
        self._openssl("pkey -in sa.key -pubout -out sa.pub")
        for key in pki.glob("*.key"):
            key.chmod(0o600)

    def _openssl(self, command: str, cwd: Path | None = None) -> None:
        """Run `openssl <command>` in the PKI directory, its arguments written as one string (none
        has blanks)."""
        argv = ["openssl", *command.split()]
        proc = subprocess.run(
            argv, cwd=cwd or self.pki_dir, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"{' '.join(argv)} failed:\n{proc.stderr}")

    def _sign(self, directory: Path, name: str, subject: str, extfile: str) -> tuple[Path, Path]:
        """A new EC key and a certificate for it signed by the test CA: (certificate, key)."""
        ca, ca_key = self.ca_file, self.pki_dir / "ca.key"
        csr, crt, key = (directory / f"{name}.{suffix}" for suffix in ("csr", "crt", "key"))
        self._openssl(f"req {_NEW_EC_KEY} -keyout {key} -out {csr} -subj {subject}")
        self._openssl(
            f"x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -days 30 "
            f"-extfile {extfile} -out {crt}"
        )
        key.chmod(0o600)
        return crt, key

    def issue_certificate(
        self,
        directory: Path,
        name: str,
        subject: str,
        *,
        server_names: Sequence[str] = (),
    ) -> tuple[Path, Path]:
        """A certificate signed by this cluster's CA, written to ``directory/<name>.crt|.key``.

        A client certificate for ``subject`` (``/O=<group>/CN=<user>``, e.g. a node's
        ``/O=system:nodes/CN=system:node:<name>``), or with ``server_names`` (``IP:...``,
        ``DNS:...``) a serving one. Used for the real node's kubelet (qstash_devstack.node).
        """
        directory.mkdir(parents=True, exist_ok=True)
        extfile = self.pki_dir / "client.ext"
        if server_names:
            extfile = directory / f"{name}.ext"
            extfile.write_text(
                _CERT_COMMON + "extendedKeyUsage=serverAuth\n"
                f"subjectAltName={','.join(server_names)}\n"
            )
        return self._sign(directory, name, subject, str(extfile))

    def kubeconfig_for_certificate(self, certificate: Path, key: Path, path: Path) -> Path:
        """Write a kubeconfig that authenticates with a client certificate (e.g. a kubelet's)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            self._kubeconfig_text(
                "cert-user", {"client-certificate": str(certificate), "client-key": str(key)}
            )
        )
        path.chmod(0o600)
        return path

    def _kubeconfig_text(self, user: str, credentials: Mapping[str, str]) -> str:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "qso-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": dict(credentials)}],
            "contexts": [{"name": "qso-test", "context": {"cluster": "qso-test", "user": user}}],
            "current-context": "qso-test",
        }
        # JSON is valid YAML, and every kubeconfig reader accepts it.
        return json.dumps(config, indent=2) + "\n"

    def _spawn(self, name: str, argv: list[str]) -> None:
        if self._stopped:
            raise ControlPlaneError(f"not starting {name}: the control plane is stopping")
        env = self.env()
        proc = _Process(name=name, argv=argv, log=self.log_file(name), env=env)
        self._processes[name] = proc
        proc.start()

    def _etcd_argv(self, client: int, peer: int) -> list[str]:
        assert self._etcd_dir is not None
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        return [
            str(self.bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={self._etcd_dir / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, etcd_client: int) -> list[str]:
        pki = self.pki_dir
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._api_port}",
            f"--cert-dir={self.run_dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}",
            # Node: what a real kubelet may read and write (qstash_devstack.node); RBAC: the rest.
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Endpoints may not hold loopback addresses, and nothing here needs them.
            "--endpoint-reconciler-type=none",
            # That plugin gives every new node the not-ready taint, which only the node
            # lifecycle controller lifts; the fake node would never take a pod without it.
            "--disable-admission-plugins=TaintNodesByCondition",
            # Off by default upstream, on in OpenShift: setting blockOwnerDeletion on an owner
            # reference needs `update` on the owner's finalizers. Running it here proves the
            # chart's RBAC holds on such clusters too.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement,NodeRestriction",
            f"--kubelet-client-certificate={pki / (KUBELET_CLIENT + '.crt')}",
            f"--kubelet-client-key={pki / (KUBELET_CLIENT + '.key')}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--audit-policy-file={self.run_dir / 'audit-policy.json'}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--allow-privileged=true",
            "--profiling=false",
            # Close open watches promptly on SIGTERM; otherwise a stop while clients stay
            # connected (restart_apiserver) waits for the HTTP server's own 60 s timeout.
            "--shutdown-watch-termination-grace-period=2s",
        ]

    def _controller_manager_argv(self) -> list[str]:
        return [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
            f"--root-ca-file={self.ca_file}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
        ]

    def _scheduler_argv(self) -> list[str]:
        return [
            str(self.bin_dir / "kube-scheduler"),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--profiling=false",
        ]

    def _kwok_argv(self) -> list[str]:
        key, value = KWOK_NODE_ANNOTATION
        return [
            str(self.bin_dir / "kwok"),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={KWOK_STAGES}",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.240.0.10",
        ]

    def _create_fake_node(self) -> None:
        key, value = KWOK_NODE_ANNOTATION
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": FAKE_NODE,
                "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": FAKE_NODE,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            # No taints: every pod may land here, as on a one-node dev cluster.
            "spec": {},
        }
        status, answer = self.request("POST", "/api/v1/nodes", node)
        if status != 201:
            raise ControlPlaneError(f"creating node {FAKE_NODE} failed ({status}): {answer}")

    def _apply_crds(self, deadline: float) -> None:
        assert self.crd_dir is not None
        files = sorted(str(p) for p in self.crd_dir.glob("*.yaml"))
        if not files:
            return
        file_args = [arg for f in files for arg in ("-f", f)]
        self.kubectl("apply", "--server-side", "--force-conflicts", *file_args)
        names = [
            name.rpartition("/")[2]
            for name in self.kubectl("get", *file_args, "-o", "name").stdout.split()
        ]
        # Polled here rather than with `kubectl wait --for=condition=Established`: a CRD read
        # before the apiextensions controller first writes its status has `conditions: null`,
        # which kubectl 1.36 reports as an error (".status.conditions accessor error") instead
        # of waiting (seen on a loaded machine: the whole session's control plane failed).
        for crd in names:
            self._wait_for(
                f"CRD {crd} to be Established",
                lambda crd=crd: self._crd_established(crd),
                deadline,
                watch="kube-apiserver",
            )
        # Established is not yet servable: until its watch cache is filled, a list of the new
        # resource answers 429 "storage is (re)initializing", which the first test would meet.
        for crd in names:
            plural, _, group = crd.partition(".")
            status, discovery = self.request("GET", f"/apis/{group}")
            if status != 200 or not isinstance(discovery, dict):
                raise ControlPlaneError(f"/apis/{group} answered {status}: {discovery}")
            version = discovery["preferredVersion"]["version"]
            path = f"/apis/{group}/{version}/{plural}?limit=1"
            self._wait_for(
                f"{plural}.{group} to be listable",
                lambda path=path: self.request("GET", path)[0] == 200,
                deadline,
                watch="kube-apiserver",
            )

    def _crd_established(self, name: str) -> bool:
        status, crd = self.request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        )
        if status != 200 or not isinstance(crd, dict):
            return False
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    def _node_ready(self) -> bool:
        status, node = self.request("GET", f"/api/v1/nodes/{FAKE_NODE}")
        if status != 200:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _ssl_context(self, *, client_cert: bool = True) -> ssl.SSLContext:
        if client_cert and self._ssl is not None:
            return self._ssl
        context = ssl.create_default_context(cafile=str(self.ca_file))
        # What Python 3.13's default context does; checking it here keeps the PKI acceptable
        # to strict verifiers whichever Python runs the tests.
        context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
        if client_cert:
            context.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
            self._ssl = context
        return context

    def _wait_etcd(self, port: int, deadline: float) -> None:
        def healthy() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/health")
                response = conn.getresponse()
                return response.status == 200 and json.loads(response.read()).get("health") in (
                    "true",
                    True,
                )
            finally:
                conn.close()

        self._wait_for("etcd to be healthy", healthy, deadline, watch="etcd")

    def _wait_apiserver_ready(self, deadline: float) -> None:
        def ready() -> bool:
            status, _ = self.request("GET", "/readyz", timeout=5)
            return status == 200

        self._wait_for("kube-apiserver /readyz", ready, deadline, watch="kube-apiserver")

    def _wait_for(
        self, what: str, check: Callable[[], bool], deadline: float, *, watch: str
    ) -> None:
        """Poll `check` until it holds; fail early, with the log, if any component died."""
        delay = 0.05
        while True:
            for proc in self._processes.values():
                if not proc.running():
                    raise proc.failure(f"while waiting for {what}")
            try:
                if check():
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass  # not listening yet, or answering half-started
            if time.monotonic() > deadline:
                raise self._processes[watch].failure(f"timed out waiting for {what}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)


def main_pid_children() -> list[int]:
    """Pids of this process's direct children that are still alive (for leak checks)."""
    me = os.getpid()
    children: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields[0] is the state, fields[1] the parent pid.
        if int(fields[1]) == me and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def processes_in_groups(pgids: Sequence[int]) -> list[int]:
    """Pids of live processes in any of the given process groups."""
    wanted = set(pgids)
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state, ppid, pgrp, ...
        if int(fields[2]) in wanted and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


if __name__ == "__main__":  # pragma: no cover - use `python -m qstash_devstack.up`
    sys.exit("run `python -m qstash_devstack.up` to start a cluster by hand")
