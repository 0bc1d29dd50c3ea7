"""The image, without a Docker engine: read the Dockerfile for its promises, then replay it.

No Docker daemon runs on the build machines, so the image cannot be built here. Instead:

* the Dockerfile is parsed and checked for what the chart relies on: two stages on the same slim
  Python 3.11 base, a venv copied from the builder, a numeric non-root user, the
  ``qstash-operator`` entrypoint, nothing run in the final stage, no bytecode written at run time;
* ``.dockerignore`` is checked to send what the builder copies and to keep the rest out;
* the builder's steps are replayed on this machine (same commands, the venv and source paths
  moved into a temporary directory) and both entrypoints' ``--help`` run from the resulting venv,
  which must not change while they run (the read-only root filesystem in the chart).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[2]
DOCKERFILE: Final = REPO / "Dockerfile"
DOCKERIGNORE: Final = REPO / ".dockerignore"


@dataclasses.dataclass
class Instruction:
    keyword: str
    argument: str


@dataclasses.dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.argument for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages). Handles comments and backslash continuations."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        argument = argument.strip()
        if keyword == "FROM":
            parts = argument.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name, instructions=[]))
        elif not stages and keyword == "ARG":
            key, _, default = argument.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, argument))
    return args, stages


def env_pairs(argument: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(argument))


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_two_stages_on_one_slim_python_3_11_base(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    args, stages = dockerfile
    assert [stage.name for stage in stages] == ["builder", None]
    assert {stage.base for stage in stages} == {"${PYTHON_IMAGE}"}
    image = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", image), image  # a tag, no digest pin


def test_the_final_stage_copies_the_venv_and_runs_nothing(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, (builder, final) = dockerfile
    assert "python -m venv /opt/venv" in builder.all("RUN")
    assert final.all("COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert final.all("RUN") == []  # nothing installed or changed on top of the base


def test_the_install_is_a_regular_one_not_editable(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, (builder, _) = dockerfile
    installs = [run for run in builder.all("RUN") if "pip install" in run]
    assert installs
    for run in installs:
        assert "pip install ." in run
        assert " -e " not in f" {run} "
        assert "--editable" not in run


def test_a_numeric_non_root_user_and_the_cli_as_entrypoint(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, (_, final) = dockerfile
    [user] = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) > 0
    assert int(gid) > 0
    assert json.loads(final.all("ENTRYPOINT")[0]) == ["qstash-operator"]
    assert json.loads(final.all("CMD")[0]) == ["--help"]
    env: dict[str, str] = {}
    for argument in final.all("ENV"):
        env.update(env_pairs(argument))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # nothing to write on a read-only root
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_the_chart_runs_the_image_as_its_user_with_its_subcommands() -> None:
    values = (REPO / "charts" / "qstash-operator" / "values.yaml").read_text()
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert user is not None
    assert values.count(f"runAsUser: {user[1]}") == 2
    assert values.count(f"runAsGroup: {user[2]}") == 2
    templates = REPO / "charts" / "qstash-operator" / "templates"
    assert "- operator\n" in (templates / "operator-deployment.yaml").read_text()
    assert "- webhook\n" in (templates / "webhook-deployment.yaml").read_text()


# -- .dockerignore ---------------------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a match on a parent
    directory covers what is inside it."""
    verdict = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.rstrip("/")
        if pattern.startswith("**/"):
            matched = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            matched = any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
        if matched:
            verdict = not negate
    return verdict


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def copied_sources(stage: Stage) -> list[str]:
    sources: list[str] = []
    for argument in stage.all("COPY"):
        parts = [part for part in argument.split() if not part.startswith("--")]
        sources += parts[:-1]
    return sources


def test_the_build_context_holds_what_the_builder_copies_and_nothing_else(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, (builder, _) = dockerfile
    patterns = dockerignore_patterns()
    sources = copied_sources(builder)
    assert set(sources) == {"pyproject.toml", "README.md", "operator", "webhook", "qstash-server"}
    for source in sources:
        assert not ignored(source, patterns), source
        assert (REPO / source).exists(), source
    assert not ignored("operator/qstash_operator/cli.py", patterns)
    for kept_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "charts/x/values.yaml",
        "operator/qstash_operator/__pycache__/cli.cpython-311.pyc",
        "qstash_operator.egg-info/PKG-INFO",
        "bench/harness.py",
    ):
        assert ignored(kept_out, patterns), kept_out


# -- replaying the builder -------------------------------------------------------------------------


def build_context(target: Path) -> None:
    """Copy what `docker build` would send: the repository minus .dockerignore's exclusions."""
    patterns = dockerignore_patterns()
    for path in sorted(REPO.rglob("*")):
        relative = path.relative_to(REPO).as_posix()
        if path.is_file() and not ignored(relative, patterns):
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file()
    }


@pytest.mark.slow
def test_the_builder_steps_make_a_venv_that_runs_both_components(
    dockerfile: tuple[dict[str, str], list[Stage]], tmp_path: Path
) -> None:
    _, (builder, final) = dockerfile
    context, venv, src = tmp_path / "context", tmp_path / "venv", tmp_path / "src"
    build_context(context)
    # The builder's filesystem, moved: /opt/venv -> venv, WORKDIR /src -> src.
    [workdir] = builder.all("WORKDIR")
    assert workdir == "/src"
    src.mkdir()
    for source in copied_sources(builder):
        origin = context / source
        if origin.is_dir():
            shutil.copytree(origin, src / source)
        else:
            shutil.copy2(origin, src / source)
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIRTUAL_ENV")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    for argument in builder.all("ENV"):
        env.update(env_pairs(argument))
    for command in builder.all("RUN"):
        replayed = command.replace("/opt/venv", str(venv))
        replayed = re.sub(r"^python ", f"{shlex.quote(sys.executable)} ", replayed)
        subprocess.run(
            ["sh", "-ec", replayed],
            cwd=src,
            env=env,
            check=True,
            timeout=900,
            capture_output=True,
            text=True,
        )

    # The final stage: only the venv, its PATH and environment; the source tree is gone.
    shutil.rmtree(src)
    runtime = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "no-home")}
    for argument in final.all("ENV"):
        for key, value in env_pairs(argument).items():
            runtime[key] = value.replace("/opt/venv", str(venv)).replace("$PATH", "/usr/bin:/bin")
    before = snapshot(venv)
    compiled = list((venv / "lib").glob("python3.*/site-packages/qstash_operator/__pycache__"))
    assert compiled, "pip did not compile the package; a read-only image would run uncompiled"
    for component in ("operator", "webhook"):
        result = subprocess.run(
            ["qstash-operator", component, "--help"],
            cwd="/",
            env=runtime,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert f"usage: qstash-operator {component}" in result.stdout
    located = subprocess.run(
        [
            "python",
            "-c",
            "import qstash_operator, qstash_webhook, qstash_server; "
            "print(qstash_operator.__file__); print(qstash_webhook.__file__); "
            "print(qstash_server.__file__)",
        ],
        cwd="/",
        env=runtime,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert all(path.startswith(str(venv)) for path in located), located
    assert snapshot(venv) == before, "running the components wrote into the venv"
