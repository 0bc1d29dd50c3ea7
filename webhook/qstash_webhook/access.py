"""Who is asking and what they may do: the one path the ``/api/cron*`` endpoints and the console
share.

Two questions, each answered by the Kubernetes API server and nothing else: *who holds this
bearer token* (TokenReview) and *may they do this* (SubjectAccessReview). :class:`Access` is the
interface the views depend on; :class:`KubeAccess` answers it through the Kubernetes adapter, and
:class:`GuardedAccess` wraps it with the review policy. :func:`qstash_webhook.app.make_app`
composes the two, so every caller (API, console) gets the policy at once:

- **Audience.** The TokenReview names the configured audience (``QSTASH_OPERATOR_API_AUDIENCE``,
  default ``qstash-operator``) and the answer must say the token is bound to it (the API's own
  rule: an authenticator that ignores audiences leaves ``status.audiences`` empty). So a token
  the API server accepts for itself, such as a person's kubeconfig credential, is refused: the
  webhook may be reachable from the internet, and such a token must never be worth sending to
  it. Tokens come from ``kubectl create token <serviceaccount> --audience qstash-operator``.
- **A short cache of successful reviews** (:data:`REVIEW_CACHE_SECONDS`, at most
  :data:`REVIEW_CACHE_SIZE`), keyed by the token's SHA-256, never the token: a script's or the
  console's calls cost one TokenReview per half minute, not one each. Authorisation is still
  asked on every call.
- **Failed reviews are rate-limited**, per client address and for all clients together
  (:data:`FAILED_REVIEWS_PER_CLIENT`, :data:`FAILED_REVIEWS_IN_ALL`); beyond them a token nobody
  has vouched for is answered 429 without a review. A flood of bad tokens therefore costs the API
  server a few reviews a second, and the reviews go through a client of their own (its own
  connection pool, :data:`REVIEW_CONNECTIONS`), so deliveries never queue behind them.

Behind an Ingress every client has the Ingress's address: the per-client limit is then one limit
for all, and the shared one is what holds. A token already reviewed keeps working through a flood
(it is cached); a new one may meet a 429 and retries after ``Retry-After``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from typing import Final, Protocol

from cachetools import TTLCache

from qstash_operator.adapters.kube import AccessDecision, Kube, UserInfo
from qstash_operator.domain import vocabulary
from qstash_operator.domain.errors import TransientError
from qstash_webhook.errors import ApiError
from qstash_webhook.limits import FailureLimiter, Rate
from qstash_webhook.metrics import WebhookMetrics

BATCH: Final = "batch"
CORE: Final = ""

REVIEW_CACHE_SECONDS: Final = 30.0
"""How long a successful TokenReview is trusted. ServiceAccount tokens from the TokenRequest API
live at least 10 minutes (one hour from ``kubectl create token`` by default), so this is a small
part of any token's life; it is also how long a deleted ServiceAccount's token keeps working."""
REVIEW_CACHE_SIZE: Final = 1024
"""Distinct tokens remembered; the least recently used go first. A cluster has a few scripts
and people calling the API, not thousands."""
FAILED_REVIEWS_PER_CLIENT: Final = Rate(burst=10, per_second=0.5)
"""A person mistyping a token a few times never meets the limit; a script looping on a bad token
is down to one review every two seconds."""
FAILED_REVIEWS_IN_ALL: Final = Rate(burst=50, per_second=5.0)
"""At most about five TokenReviews a second for tokens that do not check out, from everyone
together: nothing for an API server, however many addresses a flood comes from."""
REVIEW_CONNECTIONS: Final = 8
"""Connections of the review client (TokenReview, SubjectAccessReview). Deliveries have their
own client and pool (``MAX_CONNECTIONS``); people and scripts call at a person's pace."""
REASON_TOO_MANY: Final = "TooManyInvalidTokens"


@dataclasses.dataclass(frozen=True)
class Check:
    """One question for the authorizer: may the caller ``verb`` this resource (here)?"""

    verb: str
    namespace: str | None
    name: str | None = None
    group: str = vocabulary.GROUP
    resource: str = vocabulary.PLURAL

    @property
    def target(self) -> str:
        """``cronworkflows/backup in namespace team-a``: the words an answer is phrased in."""
        kind = self.resource if not self.group else f"{self.resource}.{self.group}"
        what = f"{kind}/{self.name}" if self.name else kind
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{what} {where}"


class Access(Protocol):
    """The authentication and authorisation the webhook's people-facing routes rely on."""

    async def authenticate(self, token: str, *, client: str) -> UserInfo | None:
        """Who holds ``token`` (sent from address ``client``); None when it does not check out.
        May refuse with :class:`~qstash_webhook.errors.ApiError` 429 instead of reviewing."""
        ...

    async def decide(self, user: UserInfo, check: Check) -> AccessDecision:
        """The authorizer's answer to ``check`` for ``user``."""
        ...


class KubeAccess:
    """:class:`Access` through TokenReview (bound to ``audience``) and SubjectAccessReview."""

    def __init__(self, kube: Kube, *, audience: str) -> None:
        self._kube = kube
        self.audience = audience

    async def authenticate(self, token: str, *, client: str) -> UserInfo | None:
        return await self._kube.review_token(token, audiences=(self.audience,))

    async def decide(self, user: UserInfo, check: Check) -> AccessDecision:
        return await self._kube.review_access(
            user,
            verb=check.verb,
            namespace=check.namespace,
            name=check.name,
            group=check.group,
            resource=check.resource,
        )


class GuardedAccess:
    """:class:`Access` around another, with the review cache and the failure limits above."""

    def __init__(
        self,
        inner: Access,
        *,
        metrics: WebhookMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._metrics = metrics
        self._clock = clock
        self._reviewed: TTLCache[bytes, UserInfo] = TTLCache(
            maxsize=REVIEW_CACHE_SIZE, ttl=REVIEW_CACHE_SECONDS, timer=clock
        )
        self._failures = FailureLimiter(
            per_client=FAILED_REVIEWS_PER_CLIENT, in_all=FAILED_REVIEWS_IN_ALL, now=clock()
        )

    async def authenticate(self, token: str, *, client: str) -> UserInfo | None:
        now = self._clock()  # once per request
        key = hashlib.sha256(token.encode()).digest()
        cached = self._reviewed.get(key)
        if cached is not None:
            self._metrics.token_review("cached")
            return cached
        wait = self._failures.take(client, now=now)  # spent up front, returned unless it fails
        if wait > 0.0:
            self._metrics.token_review("limited")
            raise ApiError(
                429,
                REASON_TOO_MANY,
                "too many requests with tokens that did not check out; try again later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        try:
            user = await self._inner.authenticate(token, client=client)
        except TransientError:
            self._failures.give_back(client, now=now)  # the API server's failure, not theirs
            raise
        if user is None:
            self._metrics.token_review("rejected")
            return None
        self._failures.give_back(client, now=now)
        self._reviewed[key] = user
        self._metrics.token_review("authenticated")
        return user

    async def decide(self, user: UserInfo, check: Check) -> AccessDecision:
        return await self._inner.decide(user, check)


def denial(user: UserInfo, check: Check, decision: AccessDecision) -> str:
    """Why ``user`` may not, in words: the authorizer's reason when it gave one (RBAC gives none
    on a plain denial: no rule matched), else what no rule grants."""
    because = decision.reason or f"no Role or ClusterRole bound to them grants {check.verb!r}"
    return f"{user.username} may not {check.verb} {check.target} ({because})"
