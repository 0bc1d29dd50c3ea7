"""Generate the chart's CRD template from ``crds/``, the single source of the CRD.

``crds/<name>.yaml`` is what ``kubectl apply -f crds/`` installs and what the tests apply; the
chart renders the same ``spec`` from ``templates/crd-<plural>.yaml``, wrapped in
``crds.enabled`` with the chart's labels and, when ``crds.keep``, ``helm.sh/resource-policy:
keep``. The spec is copied as text, byte for byte, so comments survive and a drift test can
compare files. Run::

    python -m qstash_operator.tools.sync_chart_crds           # rewrite the templates
    python -m qstash_operator.tools.sync_chart_crds --check   # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from qstash_operator.tools.checkout import CHART, CRDS, NotACheckoutError, find_checkout

ALLOWED_TOP_LEVEL: Final = ("apiVersion", "kind", "metadata", "spec")

HEADER: Final = """\
{{{{- /*
Generated from crds/{source} by `python -m qstash_operator.tools.sync_chart_crds`.
Do not edit: change crds/{source} and run the command again (tests fail when they differ).
*/ -}}}}
{{{{- if .Values.crds.enabled }}}}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {name}
  {{{{- if .Values.crds.keep }}}}
  annotations:
    # Deleting the CRD deletes every {kind} in the cluster, so `helm uninstall` leaves it.
    helm.sh/resource-policy: keep
  {{{{- end }}}}
  labels:
    {{{{- include "qstash-operator.labels" . | nindent 4 }}}}
    app.kubernetes.io/component: crd
"""
FOOTER: Final = "{{- end }}\n"


class CrdSourceError(ValueError):
    """A file in crds/ is not a single CRD whose last top-level key is ``spec``."""


def render(source: Path) -> tuple[str, str]:
    """(template file name, template text) for one CRD source file."""
    text = source.read_text()
    documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    if len(documents) != 1:
        raise CrdSourceError(f"{source}: expected one YAML document, found {len(documents)}")
    crd: dict[str, Any] = documents[0]
    if crd.get("kind") != "CustomResourceDefinition":
        raise CrdSourceError(f"{source}: not a CustomResourceDefinition")
    extra = [key for key in crd if key not in ALLOWED_TOP_LEVEL]
    if extra:
        raise CrdSourceError(f"{source}: unexpected top-level keys {extra}")
    if "{{" in text:
        raise CrdSourceError(f"{source}: contains '{{{{', which Helm would read as a template")
    lines = text.splitlines(keepends=True)
    starts = [index for index, line in enumerate(lines) if line.rstrip() == "spec:"]
    if len(starts) != 1:
        raise CrdSourceError(f"{source}: expected exactly one top-level 'spec:' line")
    after = lines[starts[0] + 1 :]
    if any(line[:1] not in (" ", "\n", "#", "") for line in after):
        raise CrdSourceError(f"{source}: 'spec' must be the last top-level key")
    spec = "".join(lines[starts[0] :])
    if not spec.endswith("\n"):
        spec += "\n"
    header = HEADER.format(
        source=source.name, name=crd["metadata"]["name"], kind=crd["spec"]["names"]["kind"]
    )
    filename = f"crd-{crd['spec']['names']['plural']}.yaml"
    return filename, header + spec + FOOTER


def sync(repo: Path, *, check: bool) -> list[str]:
    """Write (or with ``check`` only compare) every template; return the stale file names."""
    stale: list[str] = []
    templates = repo / CHART / "templates"
    sources = sorted((repo / CRDS).glob("*.yaml"))
    if not sources:
        raise CrdSourceError(f"no CRD files in {repo / CRDS}")
    for source in sources:
        filename, wanted = render(source)
        target = templates / filename
        current = target.read_text() if target.exists() else None
        if current != wanted:
            stale.append(str(target.relative_to(repo)))
            if not check:
                target.write_text(wanted)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qstash_operator.tools.sync_chart_crds", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only report stale templates")
    parser.add_argument("--repo", type=Path, help="checkout root (default: found from the cwd)")
    args = parser.parse_args(argv)
    try:
        repo = args.repo or find_checkout(CHART)
        stale = sync(repo, check=args.check)
    except (NotACheckoutError, CrdSourceError) as exc:
        print(f"sync_chart_crds: {exc}", file=sys.stderr)
        return 2
    for name in stale:
        print(f"{'stale' if args.check else 'wrote'} {name}")
    if args.check and stale:
        print("run: python -m qstash_operator.tools.sync_chart_crds", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
