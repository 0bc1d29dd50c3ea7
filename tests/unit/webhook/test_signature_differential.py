"""Our verifier against the SDK's ``Receiver`` on one corpus of tokens.

Each case states what *we* answer (accept, or the refusal category) and what the SDK answers
(accept, reject, or crash with a non-``SignatureError``). Where they differ, ``why`` says why ours
is right, with the wire reference section that establishes it; a disagreement without a reason, or
a reason without a disagreement, fails the table's own sanity test.

The SDK reads the wall clock inside PyJWT, so this corpus is built relative to ``time.time()``
(the one place in the webhook tests that does), with margins of many seconds either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qstash import Receiver
from qstash.errors import SignatureError as SdkSignatureError

from qstash_operator.domain import signature
from qstash_operator.domain.errors import SignatureError, SignatureFailure
from tests.unit.webhook.support import (
    BODY,
    CURRENT_KEY,
    DESTINATION,
    NEXT_KEY,
    TOLERANCE,
    WRONG_KEY,
    body_claim,
    claims,
    token,
    unsigned_token,
)

ACCEPT: Final = "accept"
REJECT: Final = "reject"
CRASH: Final = "crash"  # the SDK raised something other than its SignatureError

NON_UTF8_BODY: Final = b'{"name":"caf\xe9"}'  # Latin-1 bytes: valid for QStash, not UTF-8


@dataclasses.dataclass(frozen=True)
class Case:
    make: Callable[[int], tuple[str, bytes]]  # now -> (token, body)
    ours: SignatureFailure | None  # None: accepted
    sdk: str
    why: str = ""


def _genuine(**overrides: object) -> Callable[[int], tuple[str, bytes]]:
    return lambda now: (token(claims(BODY, now=now, **overrides)), BODY)


CASES = [
    pytest.param(Case(_genuine(), None, ACCEPT), id="a genuine token signed with the current key"),
    pytest.param(
        Case(lambda now: (token(claims(BODY, now=now), key=NEXT_KEY), BODY), None, ACCEPT),
        id="a token signed with the next key (mid-rotation)",
    ),
    pytest.param(
        Case(lambda now: (token(claims(BODY, now=now, nbf=now)), BODY), None, ACCEPT),
        id="nbf equal to iat, as the older docs show",
    ),
    pytest.param(
        Case(_genuine(body=body_claim(BODY, padded=False)), None, ACCEPT),
        id="an unpadded body hash",
    ),
    pytest.param(
        Case(lambda now: (token(claims(b"", now=now)), b""), None, ACCEPT),
        id="an empty body hashes the empty string",
    ),
    pytest.param(Case(_genuine(iat=None), None, ACCEPT), id="a token without iat (optional claim)"),
    pytest.param(
        Case(
            lambda now: (token(claims(BODY, now=now - 900)), BODY), SignatureFailure.EXPIRED, REJECT
        ),
        id="expired ten minutes ago",
    ),
    pytest.param(
        Case(
            lambda now: (token(claims(BODY, now=now - 310)), BODY),
            None,
            REJECT,
            why="expired 10 s ago, within the configured clock tolerance: the SDK's "
            "clock_tolerance never reaches PyJWT (wire reference 4.3), so it refuses "
            "regardless of tolerance",
        ),
        id="expired ten seconds ago, inside the tolerance",
    ),
    pytest.param(
        Case(
            lambda now: (token(claims(BODY, now=now, nbf=now + 10)), BODY),
            None,
            REJECT,
            why="nbf 10 s ahead is clock skew within tolerance; the SDK has no working leeway "
            "(4.3)",
        ),
        id="nbf ten seconds ahead (sender's clock fast)",
    ),
    pytest.param(
        Case(
            lambda now: (token(claims(BODY, now=now + 5)), BODY),
            None,
            REJECT,
            why="iat 5 s ahead: PyJWT refuses a future iat with zero leeway, so an SDK receiver a "
            "few seconds behind QStash rejects genuine deliveries (4.3, pitfall 3)",
        ),
        id="iat five seconds ahead (receiver's clock slow)",
    ),
    pytest.param(
        Case(
            lambda now: (token(claims(BODY, now=now, nbf=now + 600)), BODY),
            SignatureFailure.NOT_YET_VALID,
            REJECT,
        ),
        id="nbf ten minutes ahead",
    ),
    pytest.param(
        Case(
            lambda now: (token(claims(BODY, now=now), key=WRONG_KEY), BODY),
            SignatureFailure.BAD_SIGNATURE,
            REJECT,
        ),
        id="signed with a key that is neither current nor next",
    ),
    pytest.param(
        Case(
            _genuine(url="https://evil.example.com/api/qstash/webhook"),
            SignatureFailure.SUBJECT,
            REJECT,
        ),
        id="signed for another URL",
    ),
    pytest.param(
        Case(_genuine(url=DESTINATION + "/"), SignatureFailure.SUBJECT, REJECT),
        id="signed for our URL with a trailing slash",
    ),
    pytest.param(
        Case(
            lambda now: (token(claims(BODY, now=now)), BODY.replace(b"backup", b"bitcoin")),
            SignatureFailure.BODY_HASH,
            REJECT,
        ),
        id="the body was tampered with",
    ),
    pytest.param(
        Case(_genuine(iss="Downstash"), SignatureFailure.ISSUER, REJECT), id="another issuer"
    ),
    pytest.param(Case(_genuine(iss=None), SignatureFailure.ISSUER, REJECT), id="no issuer"),
    pytest.param(Case(_genuine(sub=None), SignatureFailure.CLAIMS, REJECT), id="no subject"),
    pytest.param(Case(_genuine(nbf=None), SignatureFailure.CLAIMS, REJECT), id="no nbf"),
    pytest.param(
        Case(_genuine(exp="tomorrow"), SignatureFailure.CLAIMS, REJECT), id="exp is not a number"
    ),
    pytest.param(
        Case(_genuine(exp=float("inf")), SignatureFailure.CLAIMS, REJECT),
        id="exp is Infinity (JSON extension Python reads)",
    ),
    pytest.param(
        Case(
            lambda now: (token(claims(BODY, now=now), algorithm="HS512"), BODY),
            SignatureFailure.ALGORITHM,
            REJECT,
        ),
        id="HS512 with the right key",
        marks=pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
    ),
    pytest.param(
        Case(
            lambda now: (unsigned_token(claims(BODY, now=now)), BODY),
            SignatureFailure.ALGORITHM,
            REJECT,
        ),
        id="alg none",
    ),
    pytest.param(
        Case(lambda now: ("not.a.jwt", BODY), SignatureFailure.MALFORMED, REJECT), id="garbage"
    ),
    pytest.param(
        Case(lambda now: ("", BODY), SignatureFailure.MISSING, REJECT), id="an empty header"
    ),
    pytest.param(
        Case(
            lambda now: (token(claims(BODY, now=now))[:-4] + "AAAA", BODY),
            SignatureFailure.BAD_SIGNATURE,
            REJECT,
        ),
        id="the signature segment was altered",
    ),
    pytest.param(
        Case(
            _genuine(body=None),
            SignatureFailure.CLAIMS,
            CRASH,
            why="no body claim: the SDK indexes decoded['body'] and raises KeyError, which an app "
            "turns into a 500 and QStash into retries; we refuse it as a bad claim (4.3)",
        ),
        id="no body claim",
    ),
    pytest.param(
        Case(
            lambda now: (token(claims(NON_UTF8_BODY, now=now)), NON_UTF8_BODY),
            None,
            REJECT,
            why="QStash hashes the raw bytes; the SDK hashes str.encode() of whatever text the app "
            "decoded, so a body that is not UTF-8 never verifies there (4.3, pitfall 2)",
        ),
        id="a genuine delivery whose body is not UTF-8",
    ),
    pytest.param(
        Case(
            _genuine(aud="someone"),
            None,
            REJECT,
            why="QStash sends no aud (4.2) and the HMAC with our key already proves the sender; "
            "PyJWT refuses any aud when none is configured, which is a library default, not part "
            "of QStash's contract",
        ),
        id="a non-empty aud",
    ),
    pytest.param(
        Case(
            _genuine(jti=12345),
            None,
            REJECT,
            why="jti is informational (4.2); PyJWT >= 2.10 refuses a non-string jti, a check that "
            "says nothing about who signed",
        ),
        id="a numeric jti",
    ),
    pytest.param(
        Case(
            _genuine(padding="x" * 9000),
            SignatureFailure.MALFORMED,
            ACCEPT,
            why="a genuine QStash token is ~400 characters; we refuse tokens over 8 KiB before "
            "decoding so hostile input stays cheap (domain/signature.py MAX_TOKEN_LENGTH)",
        ),
        id="an oversized but validly signed token",
    ),
]


def _sdk(token_text: str, body: bytes) -> str:
    receiver = Receiver(current_signing_key=CURRENT_KEY, next_signing_key=NEXT_KEY)
    try:
        receiver.verify(
            signature=token_text,
            body=body.decode("utf-8", errors="replace"),  # the SDK takes text
            url=DESTINATION,
            clock_tolerance=TOLERANCE,  # passed on purpose: it has no effect (4.3)
        )
    except SdkSignatureError:
        return REJECT
    except Exception:
        return CRASH
    return ACCEPT


def _ours(token_text: str, body: bytes, now: float) -> SignatureFailure | None:
    try:
        signature.verify(
            body=body,
            signature=token_text,
            url=DESTINATION,
            current_key=CURRENT_KEY,
            next_key=NEXT_KEY,
            now=now,
            tolerance=TOLERANCE,
        )
    except SignatureError as exc:
        return exc.failure
    return None


@pytest.mark.parametrize("case", CASES)
def test_ours_and_the_sdk_on_the_corpus(case: Case) -> None:
    now = time.time()
    token_text, body = case.make(int(now))
    ours = _ours(token_text, body, now)
    sdk = _sdk(token_text, body)
    assert ours == case.ours
    assert sdk == case.sdk
    disagree = (ACCEPT if ours is None else REJECT) != sdk  # a crash is a disagreement too
    assert disagree == bool(case.why), "a disagreement needs a reason, and a reason a disagreement"


def test_the_corpus_covers_every_refusal_category_the_wire_can_produce() -> None:
    covered = {param.values[0].ours for param in CASES}  # type: ignore[union-attr]
    assert set(SignatureFailure) <= covered


def test_tokens_made_by_sign_verify_with_either_key() -> None:
    """``sign`` (PyJWT) and ``verify`` (our HS256 path) agree, so neither drifts alone."""
    for key, index in ((CURRENT_KEY, 0), (NEXT_KEY, 1)):
        text = signature.sign(body=BODY, url=DESTINATION, key=key, now=1_800_000_000, jwt_id="j")
        claims_ = signature.verify(
            body=BODY,
            signature=text,
            url=DESTINATION,
            current_key=CURRENT_KEY,
            next_key=NEXT_KEY,
            now=1_800_000_010.0,
            tolerance=TOLERANCE,
        )
        assert claims_.key_index == index
        assert claims_.expires_at == 1_800_000_300


@settings(max_examples=300, deadline=None)
@given(token_text=st.text(max_size=600), body=st.binary(max_size=200))
def test_any_text_is_refused_with_a_category_never_an_exception(
    token_text: str, body: bytes
) -> None:
    with pytest.raises(SignatureError):
        signature.verify(
            body=body,
            signature=token_text,
            url=DESTINATION,
            current_key=CURRENT_KEY,
            next_key=NEXT_KEY,
            now=1_800_000_000.0,
            tolerance=TOLERANCE,
        )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    overrides=st.dictionaries(
        st.sampled_from(["iss", "sub", "exp", "nbf", "iat", "jti", "body", "aud"]), _JSON
    )
)
def test_any_claims_signed_with_our_key_verify_or_refuse_cleanly(
    overrides: dict[str, object],
) -> None:
    now = 1_800_000_000
    payload = claims(BODY, now=now)
    payload.update(overrides)
    try:
        text = token(payload)
    except (TypeError, ValueError):  # PyJWT refuses to encode some of these itself
        return
    with contextlib.suppress(SignatureError):
        signature.verify(
            body=BODY,
            signature=text,
            url=DESTINATION,
            current_key=CURRENT_KEY,
            next_key=NEXT_KEY,
            now=float(now),
            tolerance=TOLERANCE,
        )
