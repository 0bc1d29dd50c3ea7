"""Hostile input at the delivery endpoint: over 10,000 generated requests, none accepted.

The app is the real one (``make_app``), in-process behind aiohttp's test client, its clock fixed.
Its Kubernetes side is our own adapter with an in-memory API behind its transport
(:class:`MemoryApi`: one CronWorkflow, Jobs by name with AlreadyExists, status patches, events),
so the requests that do pass the signature check travel the whole run path. Before the fuzzing,
one genuine delivery makes the one Job there should ever be.

Then hypothesis sends batches of requests of every hostile kind: forged (wrong key), expired, not
yet valid, wrong issuer or subject, other algorithms and ``alg: none``, tampered bodies and
tokens, replays of the genuine delivery (with its message id and with new ones), oversized bodies
and tokens, malformed headers and bodies, bodies signed correctly that name nothing of ours, and
wrong methods. For each: no 5xx; nothing but the replays answered 2xx, and those only as
duplicates. Afterwards: still exactly one Job, ``/healthz`` and ``/readyz`` answer 200, and no
log line holds either signing key.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import copy
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.aio import client as k8s_client
from tests.reliability.conftest import Tally, leaks
from tests.unit.webhook.support import claims, token, unsigned_token

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.signing_keys import SigningKeySource
from qstash_operator.domain import builders, signature, vocabulary
from qstash_operator.domain.errors import (
    AlreadyExistsError,
    KubernetesUnavailableError,
    NotFoundError,
    SignatureError,
)
from qstash_operator.settings import QStashSettings, Secret, Settings
from qstash_server.model import new_signing_key
from qstash_webhook import logs
from qstash_webhook.app import MAX_BODY_BYTES, make_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REQUESTS_WANTED = 10_000
BATCH = (25, 30)  # requests per hypothesis example
EXAMPLES = 420  # 420 x 25 >= 10,000 even when every batch is the smallest
CURRENT_KEY = new_signing_key()  # random per run: a test that passes with a public key proves less
NEXT_KEY = new_signing_key()
PUBLIC_URL = "https://cron.example.com"
DESTINATION = builders.webhook_destination(PUBLIC_URL)
NOW = datetime(2026, 11, 28, 10, 0, 2, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
TOLERANCE = 30
NAMESPACE, NAME, UID = "fuzz", "target", str(uuid.UUID(int=7))
GENUINE_BODY = json.dumps(
    {"namespace": NAMESPACE, "name": NAME, "uid": UID}, separators=(",", ":")
).encode()
GENUINE_MESSAGE = "msg_genuine0001"
CRONWORKFLOW_PATH = f"/apis/{vocabulary.API_VERSION}/namespaces/{NAMESPACE}/cronworkflows"
JOBS_PATH = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"


class MemoryApi(Kube):
    """Our adapter with an in-memory API server behind its transport (``_run``).

    Just enough of the API for the run path: one CronWorkflow, Jobs keyed by name (a second create
    of a name is AlreadyExists, as on the real API server), status patches, events. Any other call
    fails the test.
    """

    def __init__(self) -> None:
        super().__init__(k8s_client.ApiClient(k8s_client.Configuration(host="http://unused")))
        self.cronworkflow: dict[str, Any] = {
            "apiVersion": vocabulary.API_VERSION,
            "kind": vocabulary.KIND,
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "uid": UID,
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": {
                "schedule": "* * * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "main", "image": "busybox"}],
                            }
                        }
                    }
                },
            },
            "status": {
                "backend": "QStash",
                "scheduleSince": builders.rfc3339(NOW - timedelta(hours=1)),
            },
        }
        self.jobs: dict[str, dict[str, Any]] = {}
        self.creates = 0
        self.calls: collections.Counter[str] = collections.Counter()

    async def _run(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Any = (),
        content_type: str = "application/json",
    ) -> Any:
        self.calls[method] += 1
        if method == "GET" and path == "/version":
            return {"gitVersion": "v-memory"}
        if "/cronworkflows/" in path:
            name = path[len(CRONWORKFLOW_PATH) + 1 :].removesuffix("/status")
            if "/../" in path or "/./" in path:
                # What kube-apiserver answers for a dot segment (tried on the real one): 500.
                raise KubernetesUnavailableError(f"{method} {path}: HTTP 500")
            if not path.startswith(f"{CRONWORKFLOW_PATH}/") or name != NAME:
                raise NotFoundError(f"{method} {path}: HTTP 404")  # as the API server says
            if method == "GET":
                return copy.deepcopy(self.cronworkflow)
            if method == "PATCH":
                status = self.cronworkflow.setdefault("status", {})
                status.update({k: v for k, v in body.get("status", {}).items() if v is not None})
                meta = self.cronworkflow["metadata"]
                meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
                return copy.deepcopy(self.cronworkflow)
        if path == JOBS_PATH and method == "GET":
            return {"items": copy.deepcopy(list(self.jobs.values()))}
        if path == JOBS_PATH and method == "POST":
            if ("dryRun", "All") in list(query):
                return body
            name = body["metadata"]["name"]
            if name in self.jobs:
                raise AlreadyExistsError(f"POST {path}: HTTP 409 AlreadyExists")
            self.creates += 1
            job = copy.deepcopy(body)
            job["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=builders.rfc3339(NOW))
            job["status"] = {}
            self.jobs[name] = job
            return copy.deepcopy(job)
        if path.startswith(f"{JOBS_PATH}/") and method == "DELETE":
            self.jobs.pop(path.rsplit("/", 1)[1], None)
            return {}
        if path == f"/api/v1/namespaces/{NAMESPACE}/events" and method == "POST":
            return body
        raise AssertionError(f"unexpected API call {method} {path}")


# -- the requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    kind: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    replay: bool = False  # a replay of a genuine delivery: 200 as a duplicate, never a Job


WEBHOOK = builders.WEBHOOK_PATH


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _headers(tok: str | None, message_id: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if tok is not None:
        headers["Upstash-Signature"] = tok
    if message_id is not None:
        headers["Upstash-Message-Id"] = message_id
    return headers


message_ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=40
).map(lambda text: "msg_" + text)
ascii_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=120
)
random_bytes = st.binary(min_size=0, max_size=600)


def genuine(
    content: bytes = GENUINE_BODY, /, *, key: str = CURRENT_KEY, **claim_overrides: Any
) -> str:
    """A token QStash would send now for ``content``; claims can be overridden (None drops)."""
    return token(claims(content, now=NOW_S, url=DESTINATION, **claim_overrides), key=key)


@st.composite
def forged(draw: st.DrawFn) -> Attack:
    key = draw(st.one_of(st.just(new_signing_key()), ascii_text.filter(bool)))
    tok = token(claims(GENUINE_BODY, now=NOW_S, url=DESTINATION), key=key)
    return Attack("forged", "POST", WEBHOOK, _headers(tok, draw(message_ids)), GENUINE_BODY)


@st.composite
def expired(draw: st.DrawFn) -> Attack:
    age = draw(st.integers(min_value=300 + TOLERANCE + 1, max_value=10**8))
    issued = NOW_S - age
    tok = token(claims(GENUINE_BODY, now=issued, url=DESTINATION), key=CURRENT_KEY)
    return Attack("expired", "POST", WEBHOOK, _headers(tok, draw(message_ids)), GENUINE_BODY)


@st.composite
def not_yet_valid(draw: st.DrawFn) -> Attack:
    ahead = draw(st.integers(min_value=TOLERANCE + 1, max_value=10**8))
    field = draw(st.sampled_from(["nbf", "iat"]))
    tok = genuine(**{field: NOW_S + ahead}, exp=NOW_S + ahead + 300)
    return Attack("not_yet_valid", "POST", WEBHOOK, _headers(tok, draw(message_ids)), GENUINE_BODY)


@st.composite
def wrong_claims(draw: st.DrawFn) -> Attack:
    choice = draw(st.sampled_from(["iss", "sub", "missing", "types"]))
    if choice == "iss":
        overrides: dict[str, Any] = {"iss": draw(ascii_text.filter(lambda t: t != "Upstash"))}
    elif choice == "sub":
        overrides = {
            "sub": draw(
                st.one_of(
                    st.sampled_from(
                        [
                            DESTINATION + "/",
                            DESTINATION.replace("https", "http"),
                            DESTINATION.upper(),
                            DESTINATION + "?x=1",
                            "https://evil.example.com/api/qstash/webhook",
                            "http://127.0.0.1:8080/api/qstash/webhook",
                        ]
                    ),
                    ascii_text.filter(lambda t: t != DESTINATION),
                )
            )
        }
    elif choice == "missing":
        overrides = {draw(st.sampled_from(["iss", "sub", "exp", "body"])): None}
    else:
        overrides = {
            draw(st.sampled_from(["exp", "nbf", "iat", "body", "sub"])): draw(
                st.one_of(st.lists(st.integers(), max_size=2), st.booleans(), st.just({}))
            )
        }
    tok = genuine(**overrides)
    return Attack("wrong_claims", "POST", WEBHOOK, _headers(tok, draw(message_ids)), GENUINE_BODY)


@st.composite
def algorithms(draw: st.DrawFn) -> Attack:
    payload = claims(GENUINE_BODY, now=NOW_S, url=DESTINATION)
    choice = draw(st.sampled_from(["none", "HS384", "HS512", "lowercase", "header"]))
    if choice == "none":
        tok = unsigned_token(payload)
    elif choice in ("HS384", "HS512"):
        tok = token(payload, key=CURRENT_KEY, algorithm=choice)
    else:
        header = (
            {"alg": "hs256", "typ": "JWT"}
            if choice == "lowercase"
            else draw(st.dictionaries(ascii_text, st.one_of(ascii_text, st.integers()), max_size=3))
        )
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
        genuine_sig = genuine().rsplit(".", 1)[1]
        tok = f"{signing_input}.{genuine_sig}"
    return Attack("algorithm", "POST", WEBHOOK, _headers(tok, draw(message_ids)), GENUINE_BODY)


@st.composite
def tampered_body(draw: st.DrawFn) -> Attack:
    body = bytearray(GENUINE_BODY)
    how = draw(st.sampled_from(["flip", "append", "truncate", "respaced", "other"]))
    if how == "flip":
        index = draw(st.integers(min_value=0, max_value=len(body) - 1))
        body[index] ^= draw(st.integers(min_value=1, max_value=255))
    elif how == "append":
        body += draw(st.binary(min_size=1, max_size=40))
    elif how == "truncate":
        body = body[: draw(st.integers(min_value=0, max_value=len(body) - 1))]
    elif how == "respaced":
        body = bytearray(json.dumps(json.loads(GENUINE_BODY)).encode())  # ", " and ": "
    else:
        body = bytearray(
            json.dumps({"namespace": NAMESPACE, "name": draw(ascii_text), "uid": UID}).encode()
        )
    tok = genuine()  # signed over the genuine body
    headers = _headers(tok, draw(message_ids))
    return Attack("tampered_body", "POST", WEBHOOK, headers, bytes(body))


@st.composite
def tampered_token(draw: st.DrawFn) -> Attack:
    tok = genuine()
    how = draw(st.sampled_from(["char", "truncate", "segments", "extra", "padding", "swap"]))
    if how == "char":
        index = draw(st.integers(min_value=0, max_value=len(tok) - 1))
        replacement = draw(st.sampled_from("ABCxyz019-_.=+/ "))
        tok = tok[:index] + replacement + tok[index + 1 :]
    elif how == "truncate":
        tok = tok[: draw(st.integers(min_value=0, max_value=len(tok) - 1))]
    elif how == "segments":
        tok = ".".join(tok.split(".")[: draw(st.integers(min_value=1, max_value=2))])
    elif how == "extra":
        tok = tok + "." + draw(ascii_text)
    elif how == "padding":
        tok = tok + "=" * draw(st.integers(min_value=1, max_value=3))
    else:
        head, payload, sig = tok.split(".")
        tok = f"{payload}.{head}.{sig}"
    # Base64 is malleable: a changed last character or added padding can decode to the very
    # same bytes. Such a token *is* the genuine one (same header, claims and HMAC), so it must be
    # answered as a replay: a duplicate, never a Job.
    same = _decoded(tok) == _decoded(genuine())
    headers = _headers(tok, draw(message_ids))
    return Attack("tampered_token", "POST", WEBHOOK, headers, GENUINE_BODY, replay=same)


def _decoded(tok: str) -> tuple[bytes, ...] | None:
    try:
        return tuple(
            base64.urlsafe_b64decode(part.rstrip("=") + "=" * (-len(part.rstrip("=")) % 4))
            for part in tok.split(".")
        )
    except (ValueError, binascii.Error):
        return None


@st.composite
def replayed(draw: st.DrawFn) -> Attack:
    same_id = draw(st.booleans())
    message_id = GENUINE_MESSAGE if same_id else draw(message_ids)
    key = draw(st.sampled_from([CURRENT_KEY, NEXT_KEY]))  # a rotation does not open a door
    tok = genuine(key=key, jti=draw(st.text(alphabet="abcdef0123", min_size=1, max_size=10)))
    return Attack("replayed", "POST", WEBHOOK, _headers(tok, message_id), GENUINE_BODY, True)


@st.composite
def oversized(draw: st.DrawFn) -> Attack:
    how = draw(st.sampled_from(["body", "token", "message_id", "header"]))
    if how == "body":
        body = GENUINE_BODY + b" " * draw(
            st.integers(min_value=MAX_BODY_BYTES, max_value=4 * MAX_BODY_BYTES)
        )
        return Attack("oversized", "POST", WEBHOOK, _headers(genuine(body), "msg_big"), body)
    if how == "token":
        tok = genuine(jti="x" * draw(st.integers(min_value=6000, max_value=30000)))
        return Attack("oversized", "POST", WEBHOOK, _headers(tok, "msg_x"), GENUINE_BODY)
    if how == "message_id":
        message_id = "msg_" + "m" * draw(st.integers(min_value=253, max_value=6000))
        return Attack("oversized", "POST", WEBHOOK, _headers(genuine(), message_id), GENUINE_BODY)
    headers = _headers(genuine(), "msg_h")
    headers["X-Padding"] = "p" * draw(st.integers(min_value=8200, max_value=40000))
    return Attack("oversized", "POST", WEBHOOK, headers, GENUINE_BODY)


@st.composite
def malformed_headers(draw: st.DrawFn) -> Attack:
    headers: dict[str, str] = {}
    signature_value = draw(
        st.one_of(
            ascii_text,
            st.just(""),
            st.just("Bearer " + genuine()),
            st.just(genuine() + ", " + genuine()),
            st.lists(ascii_text, min_size=2, max_size=4).map(".".join),
            st.text(alphabet=st.characters(min_codepoint=0xA0, max_codepoint=0xFF), max_size=60),
        )
    )
    headers["Upstash-Signature"] = signature_value
    if draw(st.booleans()):
        headers["Upstash-Message-Id"] = draw(ascii_text)
    if draw(st.booleans()):
        headers["Upstash-Retried"] = draw(ascii_text)
    if draw(st.booleans()):
        headers["Content-Type"] = draw(ascii_text)
    return Attack("malformed_headers", "POST", WEBHOOK, headers, GENUINE_BODY)


PATHS = ["..", ".", "a/b", "../kube-system", "%2e%2e", "fuzz/cronworkflows/target", " ", "UPPER"]
"""Names that would make another API path if they were used as one."""


@st.composite
def malformed_bodies(draw: st.DrawFn) -> Attack:
    """Bodies QStash itself might have signed but that name nothing of ours: signed correctly."""
    body = draw(
        st.one_of(
            random_bytes,
            st.recursive(
                st.none() | st.booleans() | st.integers() | ascii_text,
                lambda children: (
                    st.lists(children, max_size=3)
                    | st.dictionaries(ascii_text, children, max_size=3)
                ),
                max_leaves=8,
            ).map(lambda value: json.dumps(value).encode()),
            st.fixed_dictionaries(
                {
                    "namespace": st.one_of(
                        st.just(NAMESPACE), st.sampled_from(PATHS), ascii_text, st.integers()
                    ),
                    "name": st.one_of(st.just(NAME), st.sampled_from(PATHS), ascii_text, st.none()),
                    "uid": st.one_of(ascii_text, st.just(str(uuid.uuid4()))),
                }
            ).map(lambda value: json.dumps(value).encode()),
        )
    )
    if body == GENUINE_BODY:
        body = b"{}"
    headers = _headers(genuine(body), draw(message_ids))
    return Attack("malformed_body", "POST", WEBHOOK, headers, body)


@st.composite
def wrong_routes(draw: st.DrawFn) -> Attack:
    method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST"]))
    path = WEBHOOK if method != "POST" else draw(st.sampled_from([WEBHOOK + "/", "/api/qstash"]))
    return Attack("wrong_route", method, path, _headers(genuine(), "msg_r"), GENUINE_BODY)


ATTACKS = st.one_of(
    forged(),
    expired(),
    not_yet_valid(),
    wrong_claims(),
    algorithms(),
    tampered_body(),
    tampered_token(),
    replayed(),
    oversized(),
    malformed_headers(),
    malformed_bodies(),
    wrong_routes(),
)


# -- the test -----------------------------------------------------------------------------------


class LogLines(logging.Handler):
    """Every log record, formatted as the webhook writes it (one JSON line)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _settings() -> Settings:
    return Settings(
        qstash=QStashSettings(
            current_signing_key=Secret(CURRENT_KEY), next_signing_key=Secret(NEXT_KEY)
        ),
        public_url=PUBLIC_URL,
        clock_tolerance_seconds=TOLERANCE,
    )


@dataclass
class Outcomes:
    sent: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)


async def _send(client: TestClient[web.Request, web.Application], attack: Attack) -> int:
    async with client.request(
        attack.method, attack.path, data=attack.body, headers=attack.headers
    ) as response:
        text = await response.text()
        status = response.status
    assert status < 500, f"{attack.kind}: {status} {text[:300]}"
    if attack.replay:
        assert status == 200, f"replay answered {status}: {text[:300]}"
        outcome = json.loads(text)["outcome"]
        assert outcome in ("duplicate_message", "duplicate_tick"), outcome
    else:
        assert not 200 <= status < 300, f"{attack.kind} was accepted: {status} {text[:300]}"
    return status


def test_ten_thousand_hostile_requests_make_no_job_no_5xx_and_leave_it_healthy(
    tally: Tally,
) -> None:
    api = MemoryApi()
    keys = SigningKeySource.from_settings(_settings().qstash)
    keys.load()
    app = make_app(_settings(), kube=api, keys=keys, clock=lambda: NOW)
    handler = LogLines()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    outcomes = Outcomes()
    with asyncio.Runner() as runner:

        async def start() -> TestClient[web.Request, web.Application]:
            started: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
            await started.start_server()
            return started

        client = runner.run(start())
        try:
            # The one genuine delivery: one Job.
            async def first() -> dict[str, Any]:
                headers = _headers(genuine(), GENUINE_MESSAGE)
                async with client.post(WEBHOOK, data=GENUINE_BODY, headers=headers) as response:
                    assert response.status == 200, await response.text()
                    answer: dict[str, Any] = await response.json()
                    return answer

            assert runner.run(first())["outcome"] == "run"
            assert api.creates == 1

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=False,
                suppress_health_check=[
                    HealthCheck.too_slow,
                    HealthCheck.data_too_large,
                    HealthCheck.large_base_example,
                ],
            )
            @given(st.lists(ATTACKS, min_size=BATCH[0], max_size=BATCH[1]))
            def attack(batch: list[Attack]) -> None:
                async def send_all() -> None:
                    for item in batch:
                        status = await _send(client, item)
                        outcomes.sent += 1
                        outcomes.statuses[status] += 1
                        outcomes.kinds[item.kind] += 1

                runner.run(send_all())
                assert api.creates == 1, f"a hostile request made a Job: {sorted(api.jobs)}"

            attack()

            async def health() -> tuple[int, int]:
                async with client.get("/healthz") as live, client.get("/readyz") as ready:
                    return live.status, ready.status

            assert runner.run(health()) == (200, 200)
        finally:
            runner.run(client.close())
            root.removeHandler(handler)
            root.setLevel(previous_level)

    tally.requests_fuzzed += outcomes.sent
    tally.fuzz_outcomes.update({str(code): n for code, n in outcomes.statuses.items()})
    tally.jobs_checked += len(api.jobs)
    assert outcomes.sent >= REQUESTS_WANTED, outcomes
    assert len(api.jobs) == 1
    assert set(outcomes.kinds) >= {
        "forged",
        "expired",
        "not_yet_valid",
        "wrong_claims",
        "algorithm",
        "tampered_body",
        "tampered_token",
        "replayed",
        "oversized",
        "malformed_headers",
        "malformed_body",
        "wrong_route",
    }
    found = leaks(handler.lines, [CURRENT_KEY, NEXT_KEY])
    tally.log_lines_scanned += len(handler.lines)
    assert not found, found[:5]
    print(f"fuzzed {outcomes.sent} requests: {dict(outcomes.statuses)}; {dict(outcomes.kinds)}")


def test_the_verifier_refuses_what_the_fuzzer_sends_as_forged() -> None:
    """The fuzzer's genuine token verifies and its forged one does not: the test can fail."""
    good = genuine()
    signature.verify(
        body=GENUINE_BODY,
        signature=good,
        url=DESTINATION,
        current_key=CURRENT_KEY,
        next_key=NEXT_KEY,
        now=NOW.timestamp(),
        tolerance=TOLERANCE,
    )
    with pytest.raises(SignatureError):
        signature.verify(
            body=GENUINE_BODY,
            signature=genuine(key=new_signing_key()),
            url=DESTINATION,
            current_key=CURRENT_KEY,
            next_key=NEXT_KEY,
            now=NOW.timestamp(),
            tolerance=TOLERANCE,
        )
