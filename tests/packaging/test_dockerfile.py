"""The Dockerfile read for its promises, before anything is built.

Fast, static checks of what the chart and users rely on: two stages on the same slim Python 3.11
base, a venv copied from the builder, a numeric non-root user, the ``qstash-operator`` entrypoint,
nothing run in the final stage, no bytecode written at run time; and ``.dockerignore`` sending what
the builder copies and keeping the rest out. The image itself is built and run by
``test_image.py`` (podman, no Docker engine) and by the end-to-end and real-node tests.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
import shlex
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
