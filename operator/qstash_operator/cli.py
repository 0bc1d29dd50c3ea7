"""``qstash-operator``: one command, one subcommand per part of the project.

Each subcommand lives in its own module with two functions, ``add_arguments(parser)`` and
``run(args) -> int``, imported lazily so ``qstash-operator --help`` stays fast and a part's
dependencies load only when that part runs. Settings are read from the environment inside ``run``
(once), so ``--help`` works without any configuration.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Final, Protocol

from qstash_operator import __version__
from qstash_operator.domain.errors import SettingsError


class _Subcommand(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


# name -> (module implementing it, one-line help)
SUBCOMMANDS: Final[dict[str, tuple[str, str]]] = {
    "operator": (
        "qstash_operator.entrypoints.operator_main",
        "run the kopf operator that keeps one schedule per CronWorkflow",
    ),
    "webhook": (
        "qstash_webhook.main",
        "run the aiohttp service QStash delivers to (and the seed's /api/cron endpoints)",
    ),
    "qstash-server": (
        "qstash_server.main",
        "run the local QStash-compatible server (development and tests)",
    ),
    "dev": (
        "qstash_operator.entrypoints.dev_main",
        "start the whole stack locally: control plane, QStash server, operator, webhook, example",
    ),
    "list": (
        "qstash_operator.entrypoints.tools_main",
        "list CronWorkflows through the webhook API",
    ),
    "trigger": (
        "qstash_operator.entrypoints.tools_main",
        "run a CronWorkflow now (ns/name) through the webhook API",
    ),
    "backfill": (
        "qstash_operator.entrypoints.tools_main",
        "run the past slots of a CronWorkflow (ns/name) that have no Job, through the webhook API",
    ),
    "next": (
        "qstash_operator.entrypoints.tools_main",
        "print the next fire times of a CronWorkflow (ns/name) in its time zone",
    ),
}


def _load(module_name: str) -> _Subcommand:
    module: _Subcommand = importlib.import_module(module_name)
    return module


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qstash-operator",
        description="Scheduled work on Kubernetes: CronWorkflows on Upstash QStash or CronJobs.",
    )
    parser.add_argument("--version", action="version", version=f"qstash-operator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        if name == only:
            _load(module_name).add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in arguments if not arg.startswith("-")), None)
    parser = build_parser(only=command if command in SUBCOMMANDS else None)
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _load(args._module).run(args)
    except SettingsError as exc:
        print(f"qstash-operator {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
