"""The chart's generated files stay in step with their sources, and the generators keep the rules.

``crds/`` is the one source of the CRD and ``values.yaml`` the one source of the values schema;
the chart's copies are generated (``python -m qstash_operator.tools.sync_chart_crds`` and
``... .chart_schema``). These tests fail when someone edits one side only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from qstash_operator.tools import chart_schema, sync_chart_crds
from qstash_operator.tools.checkout import CHART, CRDS, NotACheckoutError, find_checkout

REPO = Path(__file__).resolve().parents[3]


def test_the_chart_crd_template_is_generated_from_crds() -> None:
    assert sync_chart_crds.sync(REPO, check=True) == [], (
        "run: python -m qstash_operator.tools.sync_chart_crds"
    )


def test_values_schema_is_generated_from_values_yaml() -> None:
    assert chart_schema.main(["--check", "--repo", str(REPO)]) == 0, (
        "run: python -m qstash_operator.tools.chart_schema"
    )


def test_an_edit_to_crds_makes_the_check_fail_and_a_sync_repairs_it(tmp_path: Path) -> None:
    (tmp_path / "crds").mkdir()
    (tmp_path / CHART / "templates").mkdir(parents=True)
    [source] = sorted((REPO / "crds").glob("*.yaml"))
    copy = tmp_path / "crds" / source.name
    shutil.copy(source, copy)
    assert sync_chart_crds.sync(tmp_path, check=False) == [
        "charts/qstash-operator/templates/crd-cronworkflows.yaml"
    ]
    assert sync_chart_crds.sync(tmp_path, check=True) == []
    copy.write_text(copy.read_text().replace("shortNames: [qcwf]", "shortNames: [qcwf, qc]"))
    assert sync_chart_crds.main(["--check", "--repo", str(tmp_path)]) == 1
    assert sync_chart_crds.main(["--repo", str(tmp_path)]) == 0
    template = (tmp_path / CHART / "templates" / "crd-cronworkflows.yaml").read_text()
    assert "shortNames: [qcwf, qc]" in template


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("kind: ConfigMap\nmetadata: {name: x}\nspec: {}\n", "not a Custom"),
        pytest.param(
            "kind: CustomResourceDefinition\nmetadata: {name: x}\nspec:\n  a: 1\nstatus: {}\n",
            "unexpected top-level keys",
        ),
        pytest.param(
            "kind: CustomResourceDefinition\nmetadata: {name: x}\nspec:\n  d: '{{ x }}'\n",
            "would read as a template",
        ),
    ],
)
def test_a_crd_source_the_template_cannot_carry_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    source = tmp_path / "x.yaml"
    source.write_text(text)
    with pytest.raises(sync_chart_crds.CrdSourceError, match=problem):
        sync_chart_crds.render(source)


def test_every_key_of_values_yaml_is_documented_in_the_schema() -> None:
    schema = json.loads((REPO / CHART / "values.schema.json").read_text())
    values = yaml.safe_load((REPO / CHART / "values.yaml").read_text())

    def walk(node: dict[str, object], props: dict[str, dict[str, object]], path: str) -> None:
        assert set(node) == set(props), path
        for key, value in node.items():
            sub = props[key]
            assert sub.get("description"), f"{path}{key}"
            if isinstance(value, dict) and "properties" in sub:
                assert sub["additionalProperties"] is False, f"{path}{key}"
                walk(value, sub["properties"], f"{path}{key}.")  # type: ignore[arg-type]

    assert schema["additionalProperties"] is False
    walk(values, schema["properties"], "")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("a: 1\n", "a has no comment", id="an undocumented key"),
        pytest.param("# A.\nb:\n  c: 1\n", "b.c has no comment", id="an undocumented child"),
        pytest.param(
            "# A.\n# +enum: x, y\na: z\n", r"not in its \+enum", id="a default off the enum"
        ),
        pytest.param("# A.\n# +type: strin\na: z\n", "unknown JSON types", id="a bad type"),
        pytest.param("# A.\na: null\n", "has no JSON type", id="a null without a type"),
        pytest.param("# A.\n# +pattern: ^[0-9]+$\na: z\n", "does not match", id="a bad pattern"),
    ],
)
def test_the_schema_generator_refuses_undocumented_or_inconsistent_values(
    text: str, problem: str
) -> None:
    with pytest.raises(chart_schema.ValuesDocError, match=problem):
        chart_schema.generate(text)


def test_the_schema_generator_reads_directives_and_closes_objects() -> None:
    schema = chart_schema.generate(
        "# Section.\n"
        "s:\n"
        "  # A count.\n"
        "  # +minimum: 1\n"
        "  n: 2\n"
        "  # Free labels.\n"
        "  # +map: string\n"
        "  labels: {}\n"
        "  # Kubernetes-shaped.\n"
        "  # +freeform\n"
        "  resources:\n"
        "    limits: {cpu: 1}\n"
        "  # Maybe a number.\n"
        "  # +type: integer, string, null\n"
        "  budget: null\n"
    )
    section = schema["properties"]["s"]
    assert section["additionalProperties"] is False
    props = section["properties"]
    assert props["n"] == {"description": "A count.", "type": "integer", "minimum": 1}
    assert props["labels"]["additionalProperties"] == {"type": "string"}
    assert props["resources"] == {"description": "Kubernetes-shaped.", "type": "object"}
    assert props["budget"]["type"] == ["integer", "string", "null"]


def test_the_checkout_is_found_from_anywhere_inside_it(tmp_path: Path) -> None:
    assert find_checkout(CRDS, start=REPO / "operator" / "qstash_operator") == REPO
    assert find_checkout(CHART, start=REPO / "charts" / "qstash-operator" / "templates") == REPO


def test_outside_a_checkout_the_error_says_what_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qstash_operator.tools import checkout

    monkeypatch.setattr(checkout, "PACKAGE_DIR", tmp_path)
    with pytest.raises(NotACheckoutError, match=r"charts/qstash-operator"):
        find_checkout(CHART, start=tmp_path)
