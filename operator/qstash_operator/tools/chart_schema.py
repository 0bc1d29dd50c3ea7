"""Generate the chart's ``values.schema.json`` from its documented ``values.yaml``.

``values.yaml`` is the source of truth (cert-manager's convention): every key carries a comment
block right above it, and the schema is derived from the defaults plus a few directives in that
block, so the two cannot disagree. The schema closes every object (``additionalProperties:
false``), so Helm refuses a misspelt key or a wrong type at ``helm install``/``lint``/``template``.

Directives are comment lines starting with ``# +`` (everything else is the key's description):

``+type: integer, string, null``   the JSON types allowed (default: the default value's type)
``+enum: A, B, C``                  the allowed values
``+minimum: 1`` / ``+maximum: 9``   numeric bounds
``+pattern: ^[a-z]+$``              a regular expression for strings
``+items: string``                  the type of an array's items
``+map: string``                    an object with free keys whose values have this type
``+freeform``                       a Kubernetes-shaped value (resources, affinity, ...): only
                                    its top-level type is checked, its keys are not documented here
``+docs:section=Name``              starts a section of the reference (ignored by the schema)

Run::

    python -m qstash_operator.tools.chart_schema           # rewrite values.schema.json
    python -m qstash_operator.tools.chart_schema --check   # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from qstash_operator.tools.checkout import CHART, NotACheckoutError, find_checkout

SCHEMA_DRAFT: Final = "http://json-schema.org/draft-07/schema#"
_KEY_LINE: Final = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")
_JSON_TYPES: Final = ("string", "integer", "number", "boolean", "object", "array", "null")


class ValuesDocError(ValueError):
    """values.yaml breaks the documentation rules (an undocumented key, a bad directive)."""


@dataclasses.dataclass
class KeyDoc:
    """What the comment block above one key says."""

    path: tuple[str, ...]
    description: str
    directives: dict[str, str]
    section: str | None


def parse_docs(text: str) -> dict[tuple[str, ...], KeyDoc]:
    """Map each key path to its comment block. Keys inside ``+freeform`` values are skipped."""
    docs: dict[tuple[str, ...], KeyDoc] = {}
    stack: list[str] = []
    comments: list[str] = []
    section: str | None = None
    freeform_depth: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            comments = []
            continue
        if stripped.startswith("#"):
            body = stripped[1:].strip()
            if body.startswith("+docs:section="):
                section = body.split("=", 1)[1].strip()
                comments = []
            else:
                comments.append(body)
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            comments = []
            continue  # a list item or a continuation line of a value
        indent = len(match["indent"])
        if indent % 2:
            raise ValuesDocError(f"values.yaml:{number}: indent by two spaces")
        depth = indent // 2
        if freeform_depth is not None and depth > freeform_depth:
            comments = []
            continue
        freeform_depth = None
        del stack[depth:]
        stack.append(match["key"])
        path = tuple(stack)
        description_lines: list[str] = []
        directives: dict[str, str] = {}
        for comment in comments:
            if comment.startswith("+"):
                name, _, value = comment[1:].partition(":")
                directives[name.strip()] = value.strip()
            else:
                description_lines.append(comment)
        if not description_lines:
            raise ValuesDocError(
                f"values.yaml:{number}: {'.'.join(path)} has no comment; document every key"
            )
        docs[path] = KeyDoc(path, " ".join(description_lines), directives, section)
        if "freeform" in directives or "map" in directives:
            freeform_depth = depth
        comments = []
    return docs


def _types(raw: str) -> list[str]:
    names = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [name for name in names if name not in _JSON_TYPES]
    if unknown:
        raise ValuesDocError(f"unknown JSON types {unknown}")
    return names


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise ValuesDocError(f"{value!r} has no JSON type; add a +type directive")


def _number(raw: str) -> int | float:
    return float(raw) if "." in raw else int(raw)


def _schema(value: Any, doc: KeyDoc, docs: dict[tuple[str, ...], KeyDoc]) -> dict[str, Any]:
    where = ".".join(doc.path)
    directives = doc.directives
    schema: dict[str, Any] = {"description": doc.description}
    types = _types(directives["type"]) if "type" in directives else [_type_of(value)]
    schema["type"] = types[0] if len(types) == 1 else types
    if "enum" in directives:
        schema["enum"] = [part.strip() for part in directives["enum"].split(",")]
        if value not in schema["enum"]:
            raise ValuesDocError(f"{where}: default {value!r} is not in its +enum")
    for bound in ("minimum", "maximum"):
        if bound in directives:
            schema[bound] = _number(directives[bound])
    if "pattern" in directives:
        schema["pattern"] = directives["pattern"]
        if isinstance(value, str) and not re.search(directives["pattern"], value):
            raise ValuesDocError(f"{where}: default {value!r} does not match its +pattern")
    if "items" in directives:
        schema["items"] = {"type": _types(directives["items"])[0]}
    if "map" in directives:
        schema["additionalProperties"] = {"type": _types(directives["map"])[0]}
    elif isinstance(value, dict) and "freeform" not in directives:
        schema["properties"] = _properties(value, doc.path, docs)
        schema["additionalProperties"] = False
    return schema


def _properties(
    values: dict[str, Any], prefix: tuple[str, ...], docs: dict[tuple[str, ...], KeyDoc]
) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for key, value in values.items():
        path = (*prefix, key)
        doc = docs.get(path)
        if doc is None:
            raise ValuesDocError(f"{'.'.join(path)} has no comment block in values.yaml")
        properties[key] = _schema(value, doc, docs)
    return properties


def generate(values_text: str) -> dict[str, Any]:
    """The schema for one values.yaml text."""
    values = yaml.safe_load(values_text) or {}
    docs = parse_docs(values_text)
    return {
        "$schema": SCHEMA_DRAFT,
        "title": "Values of the qstash-operator chart (generated from values.yaml)",
        "type": "object",
        "additionalProperties": False,
        "properties": _properties(values, (), docs),
    }


def render(values_text: str) -> str:
    return json.dumps(generate(values_text), indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qstash_operator.tools.chart_schema", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only report a stale schema")
    parser.add_argument("--repo", type=Path, help="checkout root (default: found from the cwd)")
    args = parser.parse_args(argv)
    try:
        chart = (args.repo or find_checkout(CHART)) / CHART
        wanted = render((chart / "values.yaml").read_text())
    except (NotACheckoutError, ValuesDocError) as exc:
        print(f"chart_schema: {exc}", file=sys.stderr)
        return 2
    target = chart / "values.schema.json"
    if target.exists() and target.read_text() == wanted:
        return 0
    if args.check:
        print(f"stale {target}; run: python -m qstash_operator.tools.chart_schema", file=sys.stderr)
        return 1
    target.write_text(wanted)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
