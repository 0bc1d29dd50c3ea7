"""``qstash-operator dev`` (what ``make dev`` runs): the whole stack locally, from a checkout.

The local stack is the test control plane (Kubernetes built from Go modules by
``devstack/build.sh``) plus our own processes, so it only exists in a source checkout: it is the
``qstash-operator-devstack`` distribution in ``devstack/``, which ``make venv`` installs editable
beside the product and which the wheel and the image never carry. This module imports its
orchestration (``qstash_devstack.dev``) by name and hands over; without it, it says how to get a
checkout. ``--help`` works anywhere.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Final

DEVSTACK: Final = "qstash_devstack.dev"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=["qstash", "cronjob"],
        default="qstash",
        help="qstash (default): a local QStash-compatible server delivers to the webhook; "
        "cronjob: no QStash, the operator's development mode runs native CronJobs",
    )
    parser.add_argument(
        "--cronjob",
        dest="backend",
        action="store_const",
        const="cronjob",
        help="same as --backend cronjob",
    )
    parser.add_argument(
        "--example",
        default=None,
        help="CronWorkflow manifest to apply and watch (default examples/every-minute.yaml)",
    )
    parser.add_argument("--namespace", default="default", help="where to apply it")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the control plane's directory (logs, kubeconfig) after stopping",
    )
    parser.epilog = (
        "Needs a source checkout (it builds Kubernetes from the Go modules pinned there) and Go "
        "1.26+. The first run builds the control plane: about 6 minutes on 2 cores."
    )


def run(args: argparse.Namespace) -> int:
    try:
        devstack = importlib.import_module(DEVSTACK)
    except ModuleNotFoundError as exc:
        if exc.name is None or not DEVSTACK.startswith(exc.name):
            raise  # the local stack is there but one of its own imports is broken: show it
        print(
            "qstash-operator dev: the local stack (the qstash-operator-devstack package, "
            "devstack/ in the repository) is not installed.\n"
            "It builds its Kubernetes control plane from the repository's Go modules, so it "
            "runs from a clone: git clone <repo> && cd qstash-operator && make dev",
            file=sys.stderr,
        )
        return 2
    if args.example is not None:
        args.example = Path(args.example)
    code: int = devstack.run(args)
    return code
