"""What the webhook tests share: named instants, keys, the public URL, and a token maker.

The keys are the QStash dev server's published, public development keys (wire reference
section 6), never real ones. Instants are named so a table reads like the CronJob controller's
tests: ``TOP_OF_THE_HOUR``, ``JUST_AFTER_THE_HOUR``...
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jwt

from qstash_operator.domain.builders import webhook_destination
from qstash_operator.settings import QStashSettings, Secret, Settings

CURRENT_KEY: Final = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
NEXT_KEY: Final = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
WRONG_KEY: Final = "sig_3mHGk8cX7yV1tQ9pL2wZ5nB4rD6s"
ROTATED_KEY: Final = "sig_8pQ2wE4rT6yU8iO0pA2sD4fG6hJk"

PUBLIC_URL: Final = "https://cron.example.com"
DESTINATION: Final = webhook_destination(PUBLIC_URL)
TOLERANCE: Final = 30

TOP_OF_THE_HOUR: Final = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
JUST_AFTER_THE_HOUR: Final = TOP_OF_THE_HOUR + timedelta(seconds=2)
BODY: Final = (
    b'{"name":"backup","namespace":"default","uid":"5f0c7c1e-0c1a-4b3e-9d7a-2a1b3c4d5e6f"}'
)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "qstash": QStashSettings(
            current_signing_key=Secret(CURRENT_KEY), next_signing_key=Secret(NEXT_KEY)
        ),
        "public_url": PUBLIC_URL,
        "clock_tolerance_seconds": TOLERANCE,
    }
    values.update(overrides)
    return Settings(**values)


def body_claim(body: bytes, *, padded: bool = True) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode()
    return digest if padded else digest.rstrip("=")


def claims(
    content: bytes, /, *, now: int, url: str = DESTINATION, **overrides: Any
) -> dict[str, Any]:
    """QStash's claims for ``content`` sent at ``now`` (section 4.2); ``None`` removes a claim."""
    values: dict[str, Any] = {
        "iss": "Upstash",
        "sub": url,
        "exp": now + 300,
        "nbf": 0,
        "iat": now,
        "jti": "jwt_test0001",
        "body": body_claim(content),
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def token(
    payload: dict[str, Any],
    *,
    key: str = CURRENT_KEY,
    algorithm: str = "HS256",
) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"typ": "JWT"})


def unsigned_token(payload: dict[str, Any]) -> str:
    """``alg: none``: a token anyone can make; must be refused."""

    def segment(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(payload)}."


def signed(body: bytes, *, at: datetime, key: str = CURRENT_KEY, **overrides: Any) -> str:
    """A genuine delivery token for ``body`` made at ``at``."""
    return token(claims(body, now=int(at.timestamp()), **overrides), key=key)
