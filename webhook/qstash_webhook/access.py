"""Who is asking and what they may do: the one path the ``/api/cron*`` endpoints and the console
share.

Two questions, each answered by the Kubernetes API server and nothing else: *who holds this
bearer token* (TokenReview) and *may they do this* (SubjectAccessReview). :class:`Access` is the
interface the views depend on; :class:`KubeAccess` answers it through the Kubernetes adapter.

Why an interface: how a token is reviewed is a policy that changes on its own (an audience the
token must be bound to, a short cache of reviews, a rate limit on failures so a flood of bad
tokens cannot starve deliveries of API connections). Such a change replaces or wraps
:class:`KubeAccess` in :func:`qstash_webhook.app.make_app`, and every caller (API, console) gets
it at once.
"""

from __future__ import annotations

import dataclasses
from typing import Final, Protocol

from qstash_operator.adapters.kube import AccessDecision, Kube, UserInfo
from qstash_operator.domain import vocabulary

BATCH: Final = "batch"
CORE: Final = ""


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

    async def authenticate(self, token: str) -> UserInfo | None:
        """Who holds ``token``; None when the API server does not accept it."""
        ...

    async def decide(self, user: UserInfo, check: Check) -> AccessDecision:
        """The authorizer's answer to ``check`` for ``user``."""
        ...


class KubeAccess:
    """:class:`Access` through TokenReview and SubjectAccessReview on the API server."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    async def authenticate(self, token: str) -> UserInfo | None:
        return await self._kube.review_token(token)

    async def decide(self, user: UserInfo, check: Check) -> AccessDecision:
        return await self._kube.review_access(
            user,
            verb=check.verb,
            namespace=check.namespace,
            name=check.name,
            group=check.group,
            resource=check.resource,
        )


def denial(user: UserInfo, check: Check, decision: AccessDecision) -> str:
    """Why ``user`` may not, in words: the authorizer's reason when it gave one (RBAC gives none
    on a plain denial: no rule matched), else what no rule grants."""
    because = decision.reason or f"no Role or ClusterRole bound to them grants {check.verb!r}"
    return f"{user.username} may not {check.verb} {check.target} ({because})"
