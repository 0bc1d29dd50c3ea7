"""Shared fixtures: one real control plane per test session, and a fresh namespace per test.

Why session scope: the control plane starts in a few seconds, but every test paying that would
still add up, and tests isolate themselves by namespace anyway. Tests under ``tests/integration/``
and ``tests/e2e/``, and any test that asks for the control plane, are marked ``cluster``
automatically, so ``pytest -m "not cluster"`` runs the unit tests alone without starting anything;
tests that use the built image are marked ``image`` the same way (``-m "not image"`` skips podman).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from qstash_devstack.containers import BuiltImage, build_image, have_podman
from qstash_devstack.controlplane import ControlPlane, KubectlError, build_binaries
from qstash_devstack.polling import poll_until

TESTS_DIR = Path(__file__).parent
CLUSTER_TEST_DIRS = frozenset({"integration", "e2e"})
CLUSTER_FIXTURES = frozenset({"control_plane", "kubectl", "namespace"})

Kubectl = Callable[..., CompletedProcess[str]]

_started: list[ControlPlane] = []
_images: list[BuiltImage] = []
_figures: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            top = item.path.relative_to(TESTS_DIR).parts[0]
        except ValueError:
            top = ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if top in CLUSTER_TEST_DIRS or fixtures & CLUSTER_FIXTURES:
            item.add_marker(pytest.mark.cluster)
        if "product_image" in fixtures:
            item.add_marker(pytest.mark.image)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for plane in _started:
        if plane.startup_seconds is not None:
            phases = ", ".join(f"{k} {v:.1f}s" for k, v in plane.timings.items())
            terminalreporter.write_line(
                f"control plane: ready in {plane.startup_seconds:.1f}s ({phases})"
            )
    for line in _figures:
        terminalreporter.write_line(line)
    for image in _images:
        terminalreporter.write_line(
            f"image: {image.ref}, {image.size_bytes / 1e6:.0f} MB, "
            f"built or checked in {image.seconds:.1f}s (base {image.base_ref})"
        )


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """The real control plane (etcd, kube-apiserver, controllers, scheduler, kwok), CRDs applied.

    Builds the binaries first when the cache is cold, with build.sh's progress shown live.
    """
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            bin_dir = build_binaries()
    else:  # pragma: no cover - capture disabled by -p no:capture
        bin_dir = build_binaries()
    plane = ControlPlane(bin_dir)
    plane.start()
    _started.append(plane)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def figures() -> list[str]:
    """Lines a test measured (e.g. a node's time to Ready), printed in the terminal summary."""
    return _figures


@pytest.fixture(scope="session")
def product_image(request: pytest.FixtureRequest) -> BuiltImage:
    """The Dockerfile built with podman (devstack/image.sh; a no-op when the sources are
    unchanged), with the build's progress shown live when it has work to do."""
    if not have_podman():
        pytest.fail("podman and runc are needed: run devstack/host-packages.sh (make test does)")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            image = build_image()
    else:  # pragma: no cover - capture disabled by -p no:capture
        image = build_image()
    _images.append(image)
    return image


@pytest.fixture
def kubectl(control_plane: ControlPlane) -> Kubectl:
    """``kubectl("get", "pods", "-n", ns, input=None, check=True)`` as admin."""
    return control_plane.kubectl


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{uuid.uuid4().hex[:6]}"


def release_finalizers(plane: ControlPlane, namespace: str) -> None:
    """Drop our finalizer from CronWorkflows left behind: the operator that would have removed it
    has been stopped with its test, and the namespace would otherwise stay Terminating for the
    rest of the session, retried by the namespace controller while later tests wait on it."""
    path = f"/apis/qstash-operator.dev/v1alpha1/namespaces/{namespace}/cronworkflows"
    try:
        status, answer = plane.request("GET", path, timeout=30)
    except OSError:  # the cluster may be gone already
        return
    if status != 200:
        return
    for item in answer.get("items", []):
        if item["metadata"].get("finalizers"):
            plane.request(
                "PATCH",
                f"{path}/{item['metadata']['name']}",
                {"metadata": {"finalizers": None}},
                content_type="application/merge-patch+json",
            )


def create_namespace(plane: ControlPlane, name: str) -> None:
    """Create namespace ``name`` and wait for its default ServiceAccount."""
    status, answer = plane.request(
        "POST",
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"qstash-operator.dev/test": "true"}},
        },
    )
    assert status == 201, f"creating namespace {name} failed ({status}): {answer}"

    def default_sa_exists() -> bool:
        status, _ = plane.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
        return status == 200

    poll_until(
        default_sa_exists, timeout=60, interval=0.1, what=f"the default ServiceAccount in {name}"
    )


def delete_namespace(plane: ControlPlane, name: str, request: pytest.FixtureRequest) -> None:
    """Release our finalizers and delete ``name`` without waiting (see :func:`namespace`)."""
    release_finalizers(plane, name)
    try:
        plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", timeout=30)
    except (
        KubectlError,
        subprocess.TimeoutExpired,
    ) as error:  # the cluster may be gone already; not this test's fault
        request.node.warn(pytest.PytestWarning(f"could not delete namespace {name}: {error}"))


@contextlib.contextmanager
def extra_namespace(
    plane: ControlPlane, request: pytest.FixtureRequest, suffix: str
) -> Iterator[str]:
    """A second fresh namespace for tests that need two (e.g. two namespaced releases)."""
    name = _namespace_name(f"{suffix}-{request.node.name}")
    create_namespace(plane, name)
    try:
        yield name
    finally:
        delete_namespace(plane, name, request)


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted after the test.

    Deletion is not awaited: the namespace controller finishes it in the background, and the
    next test's namespace has a different name.
    """
    name = _namespace_name(request.node.name)
    create_namespace(control_plane, name)
    try:
        yield name
    finally:
        delete_namespace(control_plane, name, request)


# The components whose complaints explain most cluster-test timeouts (a Job with no pod, a pod
# never scheduled or never finished), and the klog lines worth showing from them.
WATCHED_COMPONENTS = ("kube-controller-manager", "kube-scheduler", "kwok")
_COMPLAINT = re.compile(r"^[EW]\d{4} |throttling|level=(WARN|ERROR)")
_COMPLAINTS_SHOWN = 30
_OFFSETS = pytest.StashKey[dict[str, int]]()


def _log_offsets() -> dict[str, int]:
    offsets = {}
    for plane in _started:
        for component in WATCHED_COMPONENTS:
            path = plane.log_file(component)
            offsets[str(path)] = path.stat().st_size if path.exists() else 0
    return offsets


def _complaints_since(offsets: dict[str, int]) -> list[tuple[str, str]]:
    sections = []
    for plane in _started:
        for component in WATCHED_COMPONENTS:
            path = plane.log_file(component)
            if not path.exists():
                continue
            with path.open("rb") as log:
                log.seek(offsets.get(str(path), 0))
                text = log.read().decode(errors="replace")
            lines = [line for line in text.splitlines() if _COMPLAINT.search(line)]
            if lines:
                shown = "\n".join(lines[-_COMPLAINTS_SHOWN:])
                sections.append((f"{component} warnings during the test ({len(lines)})", shown))
    return sections


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_OFFSETS] = _log_offsets()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Keep each phase's report on the test item, so fixtures can tell a failed test at teardown
    (the end-to-end stacks print their children's logs then).

    A failed cluster test also carries what the controllers, the scheduler and kwok complained
    about while it ran, so a timeout in CI can be explained from CI's output alone.
    """
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    if report.failed and item.get_closest_marker("cluster") is not None:
        for title, text in _complaints_since(item.stash.get(_OFFSETS, {})):
            report.sections.append((title, text))
