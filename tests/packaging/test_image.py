"""The built image keeps the Dockerfile's promises: checked on the image, not on a replay.

``product_image`` is the real Dockerfile built with podman (``devstack/image.sh``) on a local
Debian base; the only difference from a user's ``docker build`` is ``PYTHON_IMAGE``. Each check
reads what the chart relies on from the image itself: its configuration, its filesystem (mounted
read-only on the host) and what happens when it runs as the chart runs it: read-only root, uid
10001, no capabilities, no privilege escalation. The size is printed in the terminal summary.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Final

import pytest

import qstash_operator
from qstash_devstack.containers import BuiltImage, mounted_image, podman, run_once

pytestmark = [pytest.mark.slow, pytest.mark.image]

HOST_CA_BUNDLE: Final = Path("/etc/ssl/certs/ca-certificates.crt")
SITE_PACKAGES: Final = "opt/venv/lib/python3.11/site-packages"
SIZE_BUDGET_MB: Final = 450
"""Today about 350 MB: the Debian base ~160 MB, the venv ~200 MB (the kubernetes client alone
~130 MB). A budget, so that a stray build tool or cache in the final stage fails here."""
PEM: Final = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
COMPILERS: Final = ("cc", "gcc", "g++", "c++", "clang", "x86_64-linux-gnu-gcc", "ld", "make")

PROBE: Final = """
import json, os, pathlib
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\\t" in line)
writes = {}
for target in ("/probe", "/opt/venv/probe", "/tmp/probe"):
    try:
        pathlib.Path(target).write_text("x")
        writes[target] = "written"
    except OSError as error:
        writes[target] = error.strerror
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "caps": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    "no_new_privs": status["NoNewPrivs"].strip(),
    "writes": writes,
}))
"""

IMPORT_EVERYTHING: Final = """
import importlib, pkgutil, sys
for name in ("qstash_operator", "qstash_webhook", "qstash_server"):
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        importlib.import_module(module.name)
print(len(sys.modules))
"""


def test_the_image_is_configured_as_the_chart_expects(product_image: BuiltImage) -> None:
    [inspected] = json.loads(podman("image", "inspect", product_image.ref).stdout)
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["qstash-operator"]
    assert config["Cmd"] == ["--help"]
    assert set(config["ExposedPorts"]) == {"8080/tcp", "8081/tcp"}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_it_runs_read_only_as_10001_with_no_capabilities(product_image: BuiltImage) -> None:
    result = run_once(product_image.ref, "-c", PROBE, entrypoint="python")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert (seen["uid"], seen["gid"]) == (10001, 10001)
    assert seen["groups"] in ([], [10001])
    assert set(seen["caps"].values()) == {"0000000000000000"}, seen["caps"]
    assert seen["no_new_privs"] == "1"
    # The root filesystem refuses writes, the venv included; /tmp is the chart's emptyDir.
    assert seen["writes"] == {
        "/probe": "Read-only file system",
        "/opt/venv/probe": "Read-only file system",
        "/tmp/probe": "written",
    }


def test_the_cli_answers_for_each_component(product_image: BuiltImage) -> None:
    version = run_once(product_image.ref, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"qstash-operator {qstash_operator.__version__}"
    for component in ("operator", "webhook", "qstash-server"):
        result = run_once(product_image.ref, component, "--help")
        assert result.returncode == 0, result.stderr
        assert f"usage: qstash-operator {component}" in result.stdout


def test_no_compiler_no_pip_cache_no_source_tree(product_image: BuiltImage) -> None:
    with mounted_image(product_image.ref) as root:
        on_path = [
            f"{directory}/{tool}"
            for directory in ("usr/local/bin", "usr/bin", "bin", "opt/venv/bin")
            for tool in COMPILERS
            if (root / directory / tool).exists()
        ]
        assert on_path == [], "a build tool reached the final stage"
        assert not list((root / "usr/include").glob("python3*")), "Python headers shipped"
        caches = [
            str(path.relative_to(root))
            for home in ("root", "home", "tmp", "var/cache")
            for path in (root / home).rglob("*")
            if path.name in {".cache", "pip", "pip-cache"}
        ]
        assert caches == [], "a pip cache shipped"
        assert not (root / "src").exists(), "the builder's source tree shipped"
        site = root / SITE_PACKAGES
        # A regular install: the packages live in site-packages, nothing points back at a tree.
        for package in ("qstash_operator", "qstash_webhook", "qstash_server"):
            assert (site / package / "__init__.py").is_file(), package
        assert not list(site.glob("__editable__*")), "an editable install shipped"
        assert not [p for p in site.glob("*.pth") if "/src" in p.read_text()]
        assert not list(site.glob("*.egg-link"))
        assert not list(root.glob("opt/venv/**/pyproject.toml")), "a source tree is in the venv"
        assert not (root / "tests").exists()
        assert not (root / "charts").exists()


def test_nothing_is_written_at_run_time_even_where_it_could_be(
    product_image: BuiltImage,
) -> None:
    """As root, on a writable root filesystem and with bytecode writing switched back on, Python
    would write any missing ``.pyc`` next to its module: the diff stays empty because every module
    was compiled at build time. (As the chart runs it, uid 10001 on a read-only root, a write would
    fail instead; this proves there is none to fail.)"""
    name = f"qso-diff-{uuid.uuid4().hex[:8]}"
    try:
        result = run_once(
            product_image.ref,
            "-c",
            'python -c "$IMPORT_EVERYTHING" && qstash-operator --version'
            " && qstash-operator operator --help && qstash-operator webhook --help"
            " && qstash-operator qstash-server --help",
            entrypoint="sh",
            read_only=False,
            user="0:0",
            env={"PYTHONDONTWRITEBYTECODE": "", "IMPORT_EVERYTHING": IMPORT_EVERYTHING},
            name=name,
            remove=False,
        )
        assert result.returncode == 0, result.stderr
        assert int(result.stdout.split()[0]) > 200  # the whole program was imported
        assert "usage: qstash-operator webhook" in result.stdout
        changes = podman("diff", "--format", "json", name).stdout
        written = {kind: paths for kind, paths in json.loads(changes or "{}").items() if paths}
        assert written == {}, written
    finally:
        podman("rm", "--force", "--ignore", name, check=False)


def certificates(bundle: bytes) -> set[bytes]:
    return set(PEM.findall(bundle))


def test_the_hosts_ca_bundle_is_not_in_the_image(product_image: BuiltImage) -> None:
    """The build mounts this machine's CA bundle read-only for pip; the image keeps the base's."""
    with mounted_image(product_image.base_ref) as base:
        base_bundle = (base / "etc/ssl/certs/ca-certificates.crt").read_bytes()
    with mounted_image(product_image.ref) as root:
        image_bundle = (root / "etc/ssl/certs/ca-certificates.crt").read_bytes()
    assert image_bundle == base_bundle
    host = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.exists() else b""
    host_only = set(
        re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", host, re.S)
    )
    host_only -= set(
        re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", base_bundle, re.S)
    )
    for certificate in host_only:
        assert certificate not in image_bundle


def test_its_size_stays_within_budget(product_image: BuiltImage) -> None:
    size_mb = product_image.size_bytes / 1e6
    print(f"image {product_image.ref}: {size_mb:.0f} MB")
    assert size_mb < SIZE_BUDGET_MB, f"{size_mb:.0f} MB; see what the final stage gained"
