"""Start the test control plane by hand and keep it up until Ctrl-C.

Why: poking at the operator with kubectl, helm or a debugger is easier against the very cluster the
tests use than against a description of it. Run from the repository root:

    python -m qstash_devstack.up            # or: make cluster-up

It builds the binaries if the cache is cold, starts etcd, kube-apiserver, the controllers, the
scheduler and kwok (one fake node), applies crds/, prints the `export KUBECONFIG=...` line to paste
into another shell, and on Ctrl-C (or SIGTERM) stops everything and deletes the run directory.
``--keep`` keeps the run directory (logs, PKI, kubeconfig) for a post-mortem.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from qstash_devstack.controlplane import CRD_DIR, ControlPlane, ControlPlaneError, build_binaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qstash_devstack.up",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run directory (logs, PKI) after stopping"
    )
    parser.add_argument("--no-crds", action="store_true", help="do not apply crds/")
    args = parser.parse_args(argv)

    bin_dir = build_binaries()
    plane = ControlPlane(bin_dir, keep_run_dir=args.keep, crd_dir=None if args.no_crds else CRD_DIR)
    try:
        plane.start()
    except ControlPlaneError as error:
        print(f"control plane failed to start: {error}", file=sys.stderr)
        return 1
    try:
        print(
            f"# control plane up in {plane.startup_seconds:.1f}s; logs in {plane.run_dir}",
            file=sys.stderr,
        )
        print(f"export KUBECONFIG={plane.kubeconfig}")
        print(f"export PATH={plane.bin_dir}:$PATH")
        print("# Ctrl-C to stop and clean up", file=sys.stderr, flush=True)
        # Sleep until a signal arrives; SIGTERM and SIGHUP stop the plane through its own
        # handlers, SIGINT raises KeyboardInterrupt here.
        stop = threading.Event()
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        print("\n# stopping", file=sys.stderr)
    finally:
        plane.stop()
        if args.keep:
            print(
                f"# kept {plane.run_dir} and {plane.etcd_dir}; delete them by hand", file=sys.stderr
            )
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
