"""The real node's kubelet is the control plane's version: its module pins agree with build.sh's.

``devstack/nodebins/go.mod`` is a sibling of ``devstack/kubebins/go.mod`` (kept apart so kubelet's
extra dependencies never touch the control plane's build or cache key). Both must name the same
``k8s.io/kubernetes``, the same staging replaces, and the same version of every module they share;
this reads the two files and fails on any drift, naming the module.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

DEVSTACK: Final = Path(__file__).resolve().parents[2] / "devstack"
REQUIRE: Final = re.compile(r"^\s+(\S+) (v\S+)(?: // indirect)?$", re.MULTILINE)
REPLACE: Final = re.compile(r"^replace (\S+) => (\S+) (v\S+)$", re.MULTILINE)


def pins(name: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    text = (DEVSTACK / name / "go.mod").read_text()
    requires = dict(REQUIRE.findall(text))
    replaces = {module: (target, version) for module, target, version in REPLACE.findall(text)}
    return requires, replaces


def test_the_node_module_pins_what_the_control_plane_module_pins() -> None:
    node_requires, node_replaces = pins("nodebins")
    plane_requires, plane_replaces = pins("kubebins")
    assert node_requires["k8s.io/kubernetes"] == plane_requires["k8s.io/kubernetes"]
    assert node_replaces == plane_replaces
    assert len(node_replaces) > 20  # the staging modules; the pattern did match
    shared = set(node_requires) & set(plane_requires)
    assert len(shared) > 100
    drift = {
        module: (node_requires[module], plane_requires[module])
        for module in shared
        if node_requires[module] != plane_requires[module] and module not in plane_replaces
    }
    assert drift == {}, f"nodebins vs kubebins versions differ: {drift}"


def test_the_node_module_builds_only_kubelet() -> None:
    text = (DEVSTACK / "nodebins" / "go.mod").read_text()
    assert re.findall(r"^tool (\S+)$", text, re.MULTILINE) == ["k8s.io/kubernetes/cmd/kubelet"]
