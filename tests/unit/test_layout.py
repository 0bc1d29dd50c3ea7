"""operator/, webhook/, qstash-server/ and devstack/ are source folders, never packages that
shadow the standard library or a package of ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_operator_is_still_the_standard_library() -> None:
    # With the repository root first on sys.path, a package folder named operator/ would win.
    code = "import operator, sys; print(operator.__file__); print(operator.itemgetter(0)([7]))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    location, value = result.stdout.split()
    assert not location.startswith(str(ROOT))
    assert value == "7"


def test_source_folders_hold_packages_and_are_not_packages() -> None:
    for folder, package in (
        ("operator", "qstash_operator"),
        ("webhook", "qstash_webhook"),
        ("qstash-server", "qstash_server"),
    ):
        assert not (ROOT / folder / "__init__.py").exists()
        assert (ROOT / folder / package / "__init__.py").exists()
        assert (ROOT / folder / package / "py.typed").exists()


def test_the_local_stack_is_a_distribution_of_its_own_and_never_shipped() -> None:
    import tomllib

    assert not (ROOT / "devstack" / "__init__.py").exists()
    assert (ROOT / "devstack" / "qstash_devstack" / "__init__.py").exists()
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "devstack" not in shipped["tool"]["setuptools"]["packages"]["find"]["where"]
    own = tomllib.loads((ROOT / "devstack" / "pyproject.toml").read_text())
    assert own["tool"]["setuptools"]["packages"]["find"]["include"] == ["qstash_devstack*"]
