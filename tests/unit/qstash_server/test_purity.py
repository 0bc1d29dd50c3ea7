"""The pure modules of the server stay pure: no network, no event loop, no web framework.

import-linter guards the package as a whole (it sits in the entrypoint layer); this guards the
split inside it, which the layers contract cannot see.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import qstash_server as package

PURE = ("model", "backoff", "firing", "clock", "faults")
FORBIDDEN = ("aiohttp", "asyncio", "socket", "httpx", "qstash", "threading", "subprocess")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports(module: str) -> None:
    path = Path(package.__file__).parent / f"{module}.py"
    bad = {
        name
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
        or (
            name.startswith("qstash_operator.")
            and not name.startswith(("qstash_operator.domain", "qstash_server"))
        )
    }
    assert bad == set()
