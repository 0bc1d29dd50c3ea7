"""``qstash-operator dev`` (what ``make dev`` runs): the whole stack locally, from a checkout.

The local stack is the test control plane (Kubernetes built from Go modules by
``tests/cluster/build.sh``) plus our own processes, so it only exists in a source checkout; the
orchestration lives there, in ``tests/cluster/devstack.py``, and this module only finds the
checkout, puts it on ``sys.path`` and hands over. ``--help`` works anywhere.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Final

from qstash_operator.tools.checkout import CLUSTER_BUILD, NotACheckoutError, find_checkout

DEVSTACK: Final = "tests.cluster.devstack"


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
        root = find_checkout(CLUSTER_BUILD)
    except NotACheckoutError as exc:
        print(
            f"qstash-operator dev: {exc}.\n"
            "The local stack builds its Kubernetes control plane from the repository's Go "
            "modules, so it runs from a clone: git clone <repo> && cd qstash-operator && make dev",
            file=sys.stderr,
        )
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    devstack = importlib.import_module(DEVSTACK)
    if args.example is not None:
        args.example = Path(args.example)
    code: int = devstack.run(args)
    return code
