"""``qstash-operator qstash-server``: run the QStash-compatible server from the command line.

At start it prints four lines a user can paste into an env file (or ``eval``/``source``), as the
official dev server does, with the real port when ``--port 0`` asked for any free one::

    QSTASH_URL=http://127.0.0.1:8080
    QSTASH_TOKEN=...
    QSTASH_CURRENT_SIGNING_KEY=...
    QSTASH_NEXT_SIGNING_KEY=...

Only these go to stdout (a parent process reads them to learn where the server is); logs go to
stderr. SIGINT and SIGTERM stop it cleanly, saving the state file when there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path

from aiohttp import web

from qstash_server import config, model
from qstash_server.app import make_app
from qstash_server.state import StateError
from qstash_server.typedefs import CORE_KEY

ENV_NAMES = ("QSTASH_URL", "QSTASH_TOKEN", "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY")


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a UTC offset, e.g. 2030-01-01T00:00:00Z")
    return moment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=config.DEFAULT_PORT,
        help="port (default 8080, as the official dev server; 0 picks a free one and prints it)",
    )
    parser.add_argument(
        "--state", type=Path, metavar="FILE", help="keep schedules and messages in FILE (JSON)"
    )
    parser.add_argument("--token", help="API token to accept (default: the public dev token)")
    parser.add_argument("--current-signing-key", help="key deliveries are signed with")
    parser.add_argument("--next-signing-key", help="key that becomes current on rotation")
    parser.add_argument(
        "--random-credentials",
        action="store_true",
        help="make a fresh token and keys instead of the public development values",
    )
    parser.add_argument("--public-url", help="QSTASH_URL to print when clients use another name")
    parser.add_argument(
        "--test-controls", action="store_true", help="serve /__control/ (clock, faults, logs)"
    )
    parser.add_argument(
        "--driven-clock",
        action="store_true",
        help="time stands still until /__control/clock/advance (needs --test-controls)",
    )
    parser.add_argument("--start-time", type=_instant, help="start of the driven clock (ISO 8601)")
    parser.add_argument(
        "--backoff-factor",
        type=float,
        default=1.0,
        help="multiply retry backoff and delays (0.001: QStash's minutes become milliseconds)",
    )
    parser.add_argument(
        "--strict-destinations",
        action="store_true",
        help="refuse loopback/private destinations, as production QStash does",
    )
    parser.add_argument("--region", default=config.DEFAULT_REGION, help="Upstash-Region header")
    parser.add_argument(
        "--signing-clock",
        choices=("wall", "server"),
        default="wall",
        help="time in signed tokens: wall clock (default) or the server's (driven) clock",
    )
    parser.add_argument(
        "--nbf",
        choices=("zero", "iat"),
        default="zero",
        help="nbf claim: 0 as QStash sends today (default), or equal to iat",
    )
    parser.add_argument("--max-schedules", type=int, help="answer 412 beyond this many schedules")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")


def config_from_args(args: argparse.Namespace) -> config.ServerConfig:
    token = args.token
    current = args.current_signing_key
    upcoming = args.next_signing_key
    if args.random_credentials:
        token = token or model.new_id("", 43)  # about 250 bits, the length of a real token
        current = current or model.new_signing_key()
        upcoming = upcoming or model.new_signing_key()
    return config.ServerConfig(
        host=args.host,
        port=args.port,
        token=token or config.DEV_TOKEN,
        current_signing_key=current,
        next_signing_key=upcoming,
        state_path=args.state,
        public_url=args.public_url,
        test_controls=args.test_controls,
        driven_clock=args.driven_clock,
        start_time=args.start_time,
        backoff_factor=args.backoff_factor,
        strict_destinations=args.strict_destinations,
        region=args.region or None,
        signing_clock=args.signing_clock,
        not_before=args.nbf,
        max_schedules=args.max_schedules,
    )


def display_url(host: str, port: int) -> str:
    """A URL clients on this machine can use: wildcard binds are reached through loopback."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (comparing, not binding)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def env_lines(url: str, token: str, current: str, upcoming: str) -> list[str]:
    return [
        f"{name}={value}"
        for name, value in zip(ENV_NAMES, (url, token, current, upcoming), strict=True)
    ]


async def serve(server_config: config.ServerConfig) -> int:
    # Handlers first: a parent that reads the env lines and stops us at once must get a clean
    # shutdown (state saved), not the default SIGTERM death.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # platforms without signal handlers
            loop.add_signal_handler(signum, stop.set)
    app = make_app(server_config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    try:
        await runner.setup()
    except StateError as exc:
        print(f"qstash-server: {exc}", file=sys.stderr)
        return 2
    try:
        site = web.TCPSite(runner, server_config.host, server_config.port)
        await site.start()
    except OSError as exc:
        print(
            f"qstash-server: cannot listen on {server_config.host}:{server_config.port}: {exc}",
            file=sys.stderr,
        )
        await runner.cleanup()
        return 1
    port = int(runner.addresses[0][1])
    url = server_config.public_url or display_url(server_config.host, port)
    keys = app[CORE_KEY].store.keys
    for line in env_lines(url, server_config.token, keys.current, keys.next):
        print(line)
    sys.stdout.flush()
    print(
        f"qstash-server: listening on {url}"
        + (" with test controls at /__control/" if server_config.test_controls else "")
        + (f", state in {server_config.state_path}" if server_config.state_path else ""),
        file=sys.stderr,
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=str(args.log_level).upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        server_config = config_from_args(args)
    except ValueError as exc:
        print(f"qstash-server: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(server_config))
