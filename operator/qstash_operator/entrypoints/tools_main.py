"""``qstash-operator list | trigger ns/name | next ns/name -n 5``: the seed's API for people.

``list`` and ``trigger`` call the webhook's HTTP API (``GET /api/cron``, ``POST /api/test-cron``)
rather than the Kubernetes API, so they go through the same TokenReview/SubjectAccessReview checks
and the same run path as any script, and a manual run records who asked. ``next`` only reads the
CronWorkflow and does the cron maths locally, so it needs nothing but read access to the CR.

Where the API is and who you are, first match wins:

- URL: ``--url``, ``QSTASH_OPERATOR_API_URL``, ``WEBHOOK_PUBLIC_URL``, :data:`LOCAL_URL`;
- token: ``--token``, ``QSTASH_OPERATOR_API_TOKEN``, the current kubeconfig user's token, the
  last only for a loopback URL: that credential is the person's own key to the API server
  (perhaps cluster-admin), and the URL is often the webhook's public one. The webhook wants a
  token bound to its audience anyway (``kubectl create token <sa> --audience qstash-operator``).

Exit codes: 0 done, 1 the API said no (the reason is printed), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiohttp

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import cron, model, parameters, urls, window
from qstash_operator.domain.errors import (
    InvalidSpecError,
    NotFoundError,
    SettingsError,
    TransientError,
)
from qstash_operator.settings import DEFAULT_API_AUDIENCE, Settings

LOCAL_URL: Final = "http://127.0.0.1:8080"
"""The webhook's default listen address (``qstash-operator webhook``) on the local stack."""
REQUEST_TIMEOUT: Final = aiohttp.ClientTimeout(total=30.0)
"""A manual run is four API calls behind the webhook; 30 s means something is wrong."""
DEFAULT_COUNT: Final = 5

_HELP: Final = {
    "list": "List CronWorkflows (backend, state, next and last run) through the webhook API.",
    "trigger": "Run a CronWorkflow now through the webhook API, honouring concurrencyPolicy.",
    "backfill": "Run the past slots of a CronWorkflow that have no Job, through the webhook "
    "API: lists the slots in --from..--to by the cron model, skips those with a Job, creates the "
    "rest as the ticks' Jobs (honouring concurrencyPolicy unless --parallel).",
    "next": "Print the next fire times of a CronWorkflow, in its time zone and in UTC, "
    "marking runs that daylight saving skips or repeats.",
}
_SOURCES: Final = (
    "The API URL is --url, else $QSTASH_OPERATOR_API_URL, else $WEBHOOK_PUBLIC_URL, else "
    f"{LOCAL_URL}. The bearer token is --token, else $QSTASH_OPERATOR_API_TOKEN, else (for a "
    "loopback URL only) the current kubeconfig user's token. Make one with `kubectl create "
    f"token <serviceaccount> --audience {DEFAULT_API_AUDIENCE}`; RBAC on "
    "cronworkflows.qstash-operator.dev decides: verb list for `list`, trigger for `trigger`."
)


def _command(parser: argparse.ArgumentParser) -> str:
    return parser.prog.split()[-1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    command = _command(parser)
    parser.description = _HELP.get(command, parser.description)
    if command in ("trigger", "next", "backfill"):
        parser.add_argument("workflow", metavar="NAMESPACE/NAME", help="the CronWorkflow")
    if command == "next":
        parser.add_argument(
            "-n",
            "--count",
            type=int,
            default=DEFAULT_COUNT,
            help=f"how many fire times (default {DEFAULT_COUNT})",
        )
        parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: usual)")
    else:
        parser.add_argument("--url", default=None, help="base URL of the webhook service")
        parser.add_argument("--token", default=None, help="Kubernetes bearer token to send")
        parser.add_argument("--kubeconfig", default=None, help="kubeconfig to take a token from")
        parser.epilog = _SOURCES
    if command == "list":
        parser.add_argument("--namespace", default=None, help="only this namespace")
    if command == "trigger":
        parser.add_argument(
            "--idempotency-key",
            default=None,
            metavar="KEY",
            help="the request's id: running the command again with the same key (e.g. after a "
            "timeout) is answered with the Job the first run made instead of making another",
        )
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="override one of spec.parameters for this run (repeatable); checked against "
            "its declared type, a bad value is refused and no Job is made",
        )
        parser.add_argument(
            "--reason", default=None, help="why: recorded on the Job and in status.lastManualRun"
        )
    if command == "backfill":
        parser.add_argument("--from", dest="start", required=True, help="first slot, RFC 3339")
        parser.add_argument("--to", dest="end", required=True, help="last slot, RFC 3339")
        parser.add_argument(
            "--parallel",
            type=int,
            default=None,
            metavar="N",
            help="run up to N at once, whatever concurrencyPolicy says",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="list the slots and what would run, make none"
        )
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text")


def _split(workflow: str) -> tuple[str, str]:
    namespace, _, name = workflow.partition("/")
    if not namespace or not name or "/" in name:
        raise SettingsError(
            "NAMESPACE/NAME", f"{workflow!r} is not <namespace>/<name>", "e.g. default/backup"
        )
    return namespace, name


# -- next ------------------------------------------------------------------------------------


def _daylight_saving(
    cw: model.CronWorkflow, now: datetime, ticks: list[datetime]
) -> list[cron.DaylightSavingDay]:
    """The clock-change days up to the last listed tick (the ones this listing crosses)."""
    if not ticks:
        return []
    horizon = max(ticks[-1] - now, timedelta(0)) + timedelta(days=1)
    days = cw.spec.timetable.daylight_saving_days(now, horizon)
    return [day for day in days if day.first_instant <= ticks[-1]]


def _marks(
    cw: model.CronWorkflow, ticks: list[datetime], days: list[cron.DaylightSavingDay]
) -> dict[datetime, str]:
    """Tick -> the message of the repeat (or extra run) it belongs to."""
    zone = cw.spec.timetable.zone
    by_time = {
        (day.date, moment): day.message
        for day in days
        if day.effect is not cron.DaylightSavingEffect.SKIP
        for moment in day.times
    }
    marks = {}
    for tick in ticks:
        local = tick.astimezone(zone)
        message = by_time.get((local.date(), local.time().replace(second=0)))
        if message:
            marks[tick] = message
    return marks


def _firing(cw: model.CronWorkflow, tick: datetime) -> list[str]:
    """The entries of ``spec.schedules`` that fire at ``tick``, in list order (the winner first)."""
    return [
        entry.name
        for entry in cw.spec.timetable.entries
        if entry.name is not None and entry.fires_at(tick)
    ]


def _entries_word(cw: model.CronWorkflow, tick: datetime) -> str:
    """``[nightly]``, or ``[nightly wins; also: weekly]`` when entries share the tick."""
    firing = _firing(cw, tick)
    if len(firing) <= 1:
        return f"[{''.join(firing)}]"
    return f"[{firing[0]} wins; also: {', '.join(firing[1:])}]"


def format_next(cw: model.CronWorkflow, now: datetime, count: int, runs: int = 0) -> list[str]:
    """The next ``count`` ticks, one line each, local time then UTC; clock-change days marked:
    a skipped run gets a line of its own, a tick that repeats (or is extra) says so. Only ticks
    that will run: inside ``activeFrom``/``activeUntil``, within what ``maxRuns`` leaves after
    ``runs`` (``status.scheduledRuns``)."""
    zone = cw.spec.timetable.zone
    ticks = window.next_ticks(cw.spec, now, count, runs)
    days = _daylight_saving(cw, now, ticks)
    marks = _marks(cw, ticks, days)
    skips = sorted(
        (day for day in days if day.effect is cron.DaylightSavingEffect.SKIP),
        key=lambda day: day.first_instant,
    )
    lines = []
    for tick in ticks:
        while skips and skips[0].first_instant < tick:
            lines.append(f"  {skips.pop(0).message}")
        local = tick.astimezone(zone)
        line = (
            f"{local.strftime('%Y-%m-%d %H:%M %Z')} ({cw.spec.time_zone})   "
            f"{tick.strftime('%Y-%m-%dT%H:%M:%SZ')} (UTC)"
        )
        if cw.spec.timetable.multiple:
            line += f"   {_entries_word(cw, tick)}"
        if tick in marks:
            line += f"   {marks[tick]}"
        lines.append(line)
    return lines


def next_json(cw: model.CronWorkflow, now: datetime, count: int, runs: int = 0) -> dict[str, Any]:
    """``next -o json``: the ticks, each with its clock-change note, and the days crossed."""
    zone = cw.spec.timetable.zone
    ticks = window.next_ticks(cw.spec, now, count, runs)
    days = _daylight_saving(cw, now, ticks)
    marks = _marks(cw, ticks, days)
    listed = []
    for tick in ticks:
        entry = {
            "utc": tick.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "local": tick.astimezone(zone).isoformat(),
        }
        if cw.spec.timetable.multiple:
            firing = _firing(cw, tick)
            entry["entries"] = firing  # type: ignore[assignment]
            entry["winner"] = firing[0] if firing else None  # type: ignore[assignment]
        if tick in marks:
            entry["daylightSaving"] = marks[tick]
        listed.append(entry)
    schedules = [
        {"name": e.name, "cron": e.schedule.original, "resolvedSchedule": e.schedule.expression}
        for e in cw.spec.timetable.entries
        if e.name is not None
    ]
    return {
        "cronWorkflow": cw.key,
        "schedules": schedules or None,
        "timeZone": cw.spec.time_zone,
        "suspended": cw.spec.suspend,
        "next": listed,
        "daylightSaving": [day.as_status() for day in days],
    }


async def _next(args: argparse.Namespace, now: datetime) -> int:
    namespace, name = _split(args.workflow)
    if args.count < 1:
        raise SettingsError("--count", f"{args.count} is below 1", "ask for at least one")
    kube = await Kube.from_environment(args.kubeconfig)
    try:
        body = await kube.get_cronworkflow(namespace, name)
    except NotFoundError:
        print(f"CronWorkflow {namespace}/{name} not found", file=sys.stderr)
        return 1
    finally:
        await kube.close()
    try:
        cw = model.parse(body)
    except InvalidSpecError as exc:
        print(f"CronWorkflow {namespace}/{name} is invalid: {exc}", file=sys.stderr)
        return 1
    runs = window.runs_made(body.get("status") or {})
    if args.output == "json":
        print(json.dumps(next_json(cw, now, args.count, runs), indent=2))
        return 0
    if cw.spec.suspend:
        print(f"# {namespace}/{name} is suspended: these ticks will not run until it is resumed")
    for entry in cw.spec.timetable.entries:
        schedule = entry.schedule
        label = f"{entry.name}: " if entry.name is not None else ""
        if schedule.expression != schedule.original:
            print(f"# {label}{schedule.original!r} resolves to {schedule.expression!r}")
        elif entry.name is not None:
            print(f"# {label}{schedule.expression!r}")
    if cw.spec.timetable.multiple:
        print("# a tick two entries share runs once, with the first listed entry's parameters")
    if window.limited(cw.spec):
        print(f"# only ticks the window and maxRuns allow ({runs} scheduled runs made so far)")
    for line in format_next(cw, now, args.count, runs):
        print(line)
    return 0


# -- list and trigger (the webhook API) ------------------------------------------------------


async def _token(args: argparse.Namespace, settings: Settings, url: str) -> str:
    """The bearer token for ``url`` (the sources in the module docstring, in order)."""
    if args.token:
        return str(args.token)
    if settings.api_token is not None:
        return settings.api_token.reveal()
    make_one = (
        f'pass --token "$(kubectl create token <serviceaccount> --audience '
        f'{settings.api_audience})" or set QSTASH_OPERATOR_API_TOKEN'
    )
    if not urls.is_loopback(url):
        raise SettingsError(
            "--token",
            f"not given, and the kubeconfig user's credentials are never sent to {url} (only "
            "to a loopback URL: they are your key to the API server, not a token for the "
            "webhook)",
            make_one,
        )
    try:
        kube = await Kube.from_environment(args.kubeconfig)
    except Exception:  # no kubeconfig at all: fall through to the message below
        token = None
    else:
        token = kube.bearer_token()
        await kube.close()
    if token:
        return token
    raise SettingsError(
        "QSTASH_OPERATOR_API_TOKEN",
        "no bearer token: the kubeconfig user has none (client certificates cannot be forwarded)",
        make_one,
    )


def _base_url(args: argparse.Namespace, settings: Settings) -> str:
    return str(args.url or settings.api_url or settings.public_url or LOCAL_URL).rstrip("/")


async def _call(
    method: str,
    url: str,
    token: str,
    params: dict[str, str],
    extra_headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    headers.update(extra_headers or {})
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        try:
            async with session.request(
                method, url, params=params, headers=headers, json=body
            ) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = {"error": (await response.text())[:200]}
                return response.status, data if isinstance(data, dict) else {"data": data}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"cannot reach {url}: {type(exc).__name__} {exc}") from exc


def _failed(status: int, data: dict[str, Any]) -> int:
    reason = data.get("reason") or f"HTTP {status}"
    print(f"error: {data.get('error', 'request failed')} ({reason})", file=sys.stderr)
    return 1


def format_list(items: list[dict[str, Any]]) -> list[str]:
    header = (
        "NAMESPACE",
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "BACKEND",
        "STATE",
        "NEXT RUN",
        "LAST RUN",
        "READY",
        "FRESH",
    )
    rows = [header]
    for item in items:
        next_run = (item.get("nextRun") or {}).get("local") or "-"
        rows.append(
            (
                item.get("namespace", ""),
                item.get("name", ""),
                item.get("schedule", ""),
                item.get("timeZone", ""),
                item.get("backend") or "-",
                item.get("state", ""),
                next_run[:16].replace("T", " ") if next_run != "-" else "-",
                (item.get("lastRun") or "-").replace("T", " ").rstrip("Z"),
                (item.get("ready") or {}).get("status", "Unknown"),
                (item.get("fresh") or {}).get("status", "-"),
            )
        )
    widths = [max(len(str(row[col])) for row in rows) for col in range(len(header))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    base = _base_url(args, settings)
    token = await _token(args, settings, base)
    params = {"namespace": args.namespace} if args.namespace else {}
    status, data = await _call("GET", f"{base}/api/cron", token, params)
    if status != 200:
        return _failed(status, data)
    if args.output == "json":
        print(json.dumps(data, indent=2))
    else:
        for line in format_list(list(data.get("items") or [])):
            print(line)
    return 0


async def _trigger(args: argparse.Namespace, settings: Settings) -> int:
    namespace, name = _split(args.workflow)
    base = _base_url(args, settings)
    token = await _token(args, settings, base)
    params = {"workflowId": f"{namespace}/{name}", "action": "trigger"}
    key = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    url = f"{base}/api/test-cron"
    request: dict[str, Any] = {}
    if args.reason:
        request["reason"] = args.reason
    if args.param:
        request["parameters"] = parameters.parse_assignments(args.param)
    status, data = await _call("POST", url, token, params, key, request or None)
    if status not in (200, 201):
        return _failed(status, data)
    if args.output == "json":
        print(json.dumps(data, indent=2))
    elif data.get("replayed"):
        print(f"job/{data.get('job')} in {namespace} was already made for this idempotency key")
    else:
        print(f"job/{data.get('job')} created in {namespace} (asked by {data.get('requestedBy')})")
    return 0


BACKFILL_POLL_SECONDS: Final = 2.0
"""How often ``backfill`` asks again while concurrencyPolicy holds the next slot back."""


def _progress(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


async def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    namespace, name = _split(args.workflow)
    base = _base_url(args, settings)
    token = await _token(args, settings, base)
    url = f"{base}/api/cron/backfill/{namespace}/{name}"
    request: dict[str, Any] = {"from": args.start, "to": args.end, "dryRun": args.dry_run}
    if args.parallel is not None:
        request["parallel"] = args.parallel
    created: list[str] = []
    skipped: list[str] = []
    first: dict[str, Any] | None = None
    while True:
        status, data = await _call("POST", url, token, {}, None, request)
        if status not in (200, 201):
            return _failed(status, data)
        first = first or data
        created.extend(data.get("created") or [])
        skipped.extend(data.get("skipped") or [])
        missing = len(first.get("missing") or [])
        if not args.dry_run and args.output == "text" and missing:
            print(f"\r{_progress(len(created), missing)}", end="", file=sys.stderr, flush=True)
        if args.dry_run or not data.get("pending") or (not data.get("created") and skipped):
            break
        if not data.get("created"):
            await asyncio.sleep(BACKFILL_POLL_SECONDS)  # an active Job holds the next slot back
    if not args.dry_run and args.output == "text" and missing:
        print(file=sys.stderr)
    summary = {**first, "created": created, "skipped": skipped, "pending": data.get("pending")}
    if args.output == "json":
        print(json.dumps(summary, indent=2))
        return 0
    slots, existing = len(first.get("slots") or []), len(first.get("existing") or [])
    if args.dry_run:
        print(
            f"{slots} slots in {args.start}..{args.end}: {existing} have a Job, {missing} would run"
        )
        for slot in first.get("missing") or []:
            print(f"  would run {slot}")
        return 0
    print(
        f"{slots} slots in {args.start}..{args.end}: {existing} already had a Job, "
        f"{len(created)} created, {len(skipped)} skipped"
    )
    for job in created:
        print(f"  job/{job}")
    for line in skipped:
        print(f"  skipped {line}")
    return 0


async def _main(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)  # the one reading of the clock for this command
    if args.command == "next":
        return await _next(args, now)
    settings = Settings.from_env(os.environ)
    if args.command == "list":
        return await _list(args, settings)
    if args.command == "backfill":
        return await _backfill(args, settings)
    return await _trigger(args, settings)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except TransientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except InvalidSpecError as exc:  # a malformed --param, before anything was sent
        print(f"error: {exc}", file=sys.stderr)
        return 2
