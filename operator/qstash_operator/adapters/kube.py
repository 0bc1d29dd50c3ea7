"""The Kubernetes API, as the operator and the webhook need it: plain dicts in and out, our errors.

Built on the official ``kubernetes`` client's asyncio flavour (``kubernetes.aio``: aiohttp,
kubeconfig or in-cluster auth, TLS, connection pool) but speaking raw JSON paths, so every object
is the same ``dict`` shape the domain builders produce and kopf hands to handlers; no model
classes to convert, and no threads.

Status codes become the project's errors (``domain.errors``) here and nowhere else:
404 → NotFoundError, 409 AlreadyExists → AlreadyExistsError, 409 Conflict → ConflictError,
400/422 → ApiRejectedError (AdmissionDeniedError when a policy says so), 401/5xx/429/transport →
KubernetesUnavailableError (retry later).

A 403 is not always RBAC: admission answers 403 too. The Status body tells them apart
(:func:`classify_forbidden`): the authorizer's ``User "..." cannot <verb> ...`` (and the
OwnerReferencesPermissionEnforcement plugin's ``cannot set blockOwnerDeletion``, also a missing
rule) → ForbiddenError; ``exceeded quota`` / ``status unknown for quota`` → QuotaExceededError; a
``NamespaceTerminating`` cause → NamespaceTerminatingError; any other admission refusal (a
ValidatingAdmissionPolicy or webhook denial, LimitRanger, ...) → AdmissionDeniedError carrying the
policy's message. A 403 without a Status body stays ForbiddenError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from kubernetes.aio import client as k8s_client
from kubernetes.aio import config as k8s_config
from kubernetes.aio.client.exceptions import ApiException

from qstash_operator.domain import vocabulary
from qstash_operator.domain.builders import rfc3339
from qstash_operator.domain.errors import (
    AdmissionDeniedError,
    AlreadyExistsError,
    ApiRejectedError,
    ConflictError,
    ForbiddenError,
    KubernetesUnavailableError,
    NamespaceTerminatingError,
    NotFoundError,
    QuotaExceededError,
    TransientError,
    WatchExpiredError,
)
from qstash_operator.domain.model import JsonDict

logger = logging.getLogger(__name__)

MERGE_PATCH: Final = "application/merge-patch+json"
REQUEST_TIMEOUT: Final = aiohttp.ClientTimeout(total=30.0, sock_connect=5.0)
"""An API server that does not accept a connection in 5 s is down for our purposes (the webhook
answers 503 and QStash retries); 30 s in all covers slow list calls. ``sock_connect``, not
``connect``: aiohttp's ``connect`` also counts the wait for a free pooled connection, so a burst
of a thousand calls (an operator starting on 1,000 CronWorkflows, a minute's deliveries) queued
behind the 64 connections failed after 5 s as if the API server were down."""
MAX_CONNECTIONS: Final = 64
"""Concurrent API calls. The webhook fans out hundreds of deliveries at a minute boundary; 64
connections keep the API server busy without opening one per delivery."""

CRONWORKFLOWS: Final = f"/apis/{vocabulary.GROUP}/{vocabulary.VERSION}"
JOBS: Final = "/apis/batch/v1"
WATCH_SECONDS: Final = 290
"""A watch asks the server to end it after this long (then it is opened again from the last
version seen): below the 300 s idle timeout of common load balancers."""
WATCH_GRACE_SECONDS: Final = 30
"""How much longer than that a silent watch stream is trusted before it counts as broken."""


@dataclasses.dataclass(frozen=True)
class UserInfo:
    """Who a bearer token belongs to (TokenReview)."""

    username: str
    uid: str
    groups: tuple[str, ...]
    extra: Mapping[str, Sequence[str]]


@dataclasses.dataclass(frozen=True)
class AccessDecision:
    """A SubjectAccessReview's answer: allowed or not, and the authorizer's own words for it
    (``status.reason``, or ``status.evaluationError`` when it failed to decide). RBAC leaves the
    reason empty on a plain denial; callers phrase the question themselves then."""

    allowed: bool
    reason: str


def _q(value: str) -> str:
    return quote(value, safe="")


def _in(base: str, plural: str, namespace: str | None) -> str:
    """The collection path of ``plural`` in ``namespace`` (None: across all namespaces)."""
    return f"{base}/namespaces/{_q(namespace)}/{plural}" if namespace else f"{base}/{plural}"


PROXY_VARIABLES: Final = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
"""The variables that name a proxy. ``NO_PROXY`` is not one of them: it only exempts hosts from
a proxy named here, and on its own (clusters and our local stack set it routinely) it must not
switch on aiohttp's per-request netrc and proxy lookups in a thread."""


def proxy_configured(env: Mapping[str, str]) -> bool:
    """Whether a proxy is named (either case), as client-go would honour it."""
    return any(env.get(name) or env.get(name.lower()) for name in PROXY_VARIABLES)


class Kube:
    """Async facade over the Kubernetes API. One per process; share it."""

    def __init__(self, api_client: k8s_client.ApiClient, *, in_cluster: bool = False) -> None:
        self._api = api_client
        self.in_cluster = in_cluster
        """True when configured from the Pod's ServiceAccount and KUBERNETES_SERVICE_HOST/PORT."""

    @classmethod
    async def from_environment(
        cls,
        kubeconfig: str | None = None,
        *,
        max_connections: int = MAX_CONNECTIONS,
        user_agent: str | None = None,
    ) -> Kube:
        """In-cluster config when running in a Pod, else ``$KUBECONFIG`` / ``~/.kube/config``.

        Each call makes a client with a connection pool of its own (``max_connections``): the
        webhook keeps its token reviews on one and its deliveries on another. ``user_agent``
        names the process to the API server (its audit log, ``kubectl get --raw /metrics``
        by client), as client-go's components do; default the generated client's.
        """
        configuration = k8s_client.Configuration()
        in_cluster = True
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            in_cluster = False
            await k8s_config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        configuration.connection_pool_maxsize = max_connections
        # The client's session would trust the environment, and aiohttp then looks for a
        # ~/.netrc and the proxy variables in a thread on every request (a tenth of the
        # webhook's CPU at a busy minute). Proxies are honoured when one is configured.
        configuration.client_session_kwargs = {"trust_env": proxy_configured(os.environ)}
        api = k8s_client.ApiClient(configuration)
        if user_agent:
            api.user_agent = user_agent
        return cls(api, in_cluster=in_cluster)

    @property
    def server(self) -> str:
        """The API server's URL this client talks to (in a Pod: the address the kubelet gave it
        in KUBERNETES_SERVICE_HOST/PORT, as client-go uses it)."""
        return str(self._api.configuration.host)

    @property
    def max_connections(self) -> int:
        """The size of this client's connection pool."""
        return int(self._api.configuration.connection_pool_maxsize)

    async def close(self) -> None:
        await self._api.close()

    @property
    def api_client(self) -> k8s_client.ApiClient:
        """The underlying client, for other adapters built on the same connection (leases)."""
        return self._api

    def bearer_token(self) -> str | None:
        """The token this client authenticates with, if its kubeconfig user has one (the CLI
        tools send it to a webhook on this machine, never elsewhere). The client's loaders keep
        it under ``BearerToken`` (older ones: ``authorization``), as ``Bearer <token>``."""
        keys = self._api.configuration.api_key
        value = keys.get("BearerToken") or keys.get("authorization") or ""
        scheme, _, token = str(value).partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    # -- transport ------------------------------------------------------------------------

    async def _run(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # The body goes to call_api as it is: our bodies are plain JSON already (dicts, lists,
        # strings, numbers), and param_serialize's sanitize_for_serialization would walk every
        # Job template once more to return an equal tree (a tenth of the webhook's CPU at the
        # minute); the REST client json.dumps it either way. BearerToken auth reads no body.
        _, url, header_params, _, _ = await self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query) or None,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        try:
            response = await self._api.call_api(
                method,
                url,
                header_params=header_params,
                body=body,
                _request_timeout=REQUEST_TIMEOUT,
            )
            raw: bytes | str = await response.read()
            status: int = response.status
        except ApiException as exc:  # the client's own transport complaints
            status, raw = exc.status or 0, (exc.body or b"")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise KubernetesUnavailableError(f"{method} {path}: {type(exc).__name__}") from exc
        data = raw.encode() if isinstance(raw, str) else raw
        if 200 <= status < 300:
            return json.loads(data) if data else {}
        raise _error(method, path, status, data)

    # -- list and watch (the webhook's caches) -------------------------------------------

    async def list_cronworkflows_page(
        self, namespace: str | None, *, limit: int, token: str | None = None
    ) -> tuple[list[JsonDict], str, str | None]:
        """One page of the CronWorkflows (in ``namespace``, None: all): see :meth:`_page`."""
        return await self._page(
            _in(CRONWORKFLOWS, vocabulary.PLURAL, namespace), None, limit, token
        )

    async def watch_cronworkflows(
        self, namespace: str | None, *, resource_version: str
    ) -> AsyncIterator[tuple[str, JsonDict]]:
        """The CronWorkflows' events from ``resource_version``: see :meth:`_watch`."""
        path = _in(CRONWORKFLOWS, vocabulary.PLURAL, namespace)
        async for event in self._watch(path, resource_version=resource_version):
            yield event

    async def list_jobs_page(
        self, namespace: str | None, selector: str, *, limit: int, token: str | None = None
    ) -> tuple[list[JsonDict], str, str | None]:
        """One page of the Jobs matching ``selector``: see :meth:`_page`."""
        return await self._page(_in(JOBS, "jobs", namespace), selector, limit, token)

    async def watch_jobs(
        self, namespace: str | None, selector: str, *, resource_version: str
    ) -> AsyncIterator[tuple[str, JsonDict]]:
        """The events of the Jobs matching ``selector``: see :meth:`_watch`."""
        path = _in(JOBS, "jobs", namespace)
        async for event in self._watch(path, resource_version=resource_version, selector=selector):
            yield event

    async def _page(
        self, path: str, selector: str | None, limit: int, token: str | None
    ) -> tuple[list[JsonDict], str, str | None]:
        """One page of a list: (items, the list's resourceVersion, the next page's token)."""
        query = [("limit", str(limit))]
        if selector:
            query.append(("labelSelector", selector))
        if token:
            query.append(("continue", token))
        result = await self._run("GET", path, query=query)
        meta = result.get("metadata") or {}
        items: list[JsonDict] = result.get("items") or []
        return items, str(meta.get("resourceVersion", "")), meta.get("continue") or None

    async def _watch(
        self,
        path: str,
        *,
        resource_version: str,
        selector: str | None = None,
        timeout_seconds: int = WATCH_SECONDS,
    ) -> AsyncIterator[tuple[str, JsonDict]]:
        """The events of a watch from ``resource_version`` as (type, object), until the server
        ends it (``timeout_seconds``). 410 Gone (the version was compacted) and a watch
        ``ERROR`` event raise :class:`WatchExpiredError`: list again. Transport failures raise
        KubernetesUnavailableError, refusals the usual errors."""
        query = [
            ("watch", "1"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if selector:
            query.append(("labelSelector", selector))
        _, url, header_params, _, _ = await self._api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=5.0, sock_read=timeout_seconds + WATCH_GRACE_SECONDS
        )
        try:
            response = await self._api.call_api(
                "GET", url, header_params=header_params, _request_timeout=timeout
            )
        except ApiException as exc:
            body = exc.body or b""
            raise _error(
                "WATCH", path, exc.status or 0, body.encode() if isinstance(body, str) else body
            ) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise KubernetesUnavailableError(f"WATCH {path}: {type(exc).__name__}") from exc
        raw = response.response
        try:
            if response.status == 410:
                raise WatchExpiredError(f"WATCH {path}: 410 Gone")
            if not 200 <= response.status < 300:
                raise _error("WATCH", path, response.status, await raw.read())
            while True:
                try:
                    line = await raw.content.readline()
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    raise KubernetesUnavailableError(f"WATCH {path}: {type(exc).__name__}") from exc
                if not line:
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = str(event.get("type", "")), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpiredError(f"WATCH {path}: {obj.get('message', 'expired')}")
                    raise KubernetesUnavailableError(f"WATCH {path}: {obj.get('message')}")
                yield kind, obj
        finally:
            raw.release()

    # -- health -------------------------------------------------------------------------

    async def ready(self) -> bool:
        try:
            await self._run("GET", "/version")
        except (TransientError, ApiRejectedError):  # down, or refusing us in any way
            return False
        return True

    # -- CronWorkflows ------------------------------------------------------------------

    async def get_cronworkflow(self, namespace: str, name: str) -> JsonDict:
        path = f"{CRONWORKFLOWS}/namespaces/{_q(namespace)}/{vocabulary.PLURAL}/{_q(name)}"
        result: JsonDict = await self._run("GET", path)
        return result

    async def list_cronworkflows(self, namespace: str | None = None) -> list[JsonDict]:
        if namespace:
            path = f"{CRONWORKFLOWS}/namespaces/{_q(namespace)}/{vocabulary.PLURAL}"
        else:
            path = f"{CRONWORKFLOWS}/{vocabulary.PLURAL}"
        result = await self._run("GET", path)
        items: list[JsonDict] = result.get("items", [])
        return items

    async def patch_cronworkflow(
        self, namespace: str, name: str, patch: JsonDict, *, status: bool = False
    ) -> JsonDict:
        """Merge-patch the object (or its status subresource). A ``metadata.resourceVersion`` in
        the patch makes it conditional: a concurrent writer turns it into ConflictError."""
        path = f"{CRONWORKFLOWS}/namespaces/{_q(namespace)}/{vocabulary.PLURAL}/{_q(name)}"
        if status:
            path += "/status"
        result: JsonDict = await self._run("PATCH", path, body=patch, content_type=MERGE_PATCH)
        return result

    # -- Jobs ---------------------------------------------------------------------------

    async def create_job(self, job: JsonDict, *, dry_run: bool = False) -> JsonDict:
        namespace = job["metadata"]["namespace"]
        query = [("dryRun", "All")] if dry_run else []
        result: JsonDict = await self._run(
            "POST", f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs", body=job, query=query
        )
        return result

    async def get_job(self, namespace: str, name: str) -> JsonDict:
        result: JsonDict = await self._run(
            "GET", f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}"
        )
        return result

    async def list_jobs(self, namespace: str, selector: str) -> list[JsonDict]:
        result = await self._run(
            "GET",
            f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs",
            query=[("labelSelector", selector)],
        )
        items: list[JsonDict] = result.get("items", [])
        return items

    async def patch_job(self, namespace: str, name: str, patch: JsonDict) -> JsonDict:
        result: JsonDict = await self._run(
            "PATCH",
            f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}",
            body=patch,
            content_type=MERGE_PATCH,
        )
        return result

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its Pods; a Job already gone is fine."""
        with contextlib.suppress(NotFoundError):
            await self._run(
                "DELETE",
                f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}",
                body={"propagationPolicy": "Background"},
            )

    # -- CronJobs -----------------------------------------------------------------------

    def _cronjob_path(self, namespace: str, name: str | None = None) -> str:
        path = f"/apis/batch/v1/namespaces/{_q(namespace)}/cronjobs"
        return path if name is None else f"{path}/{_q(name)}"

    async def get_cronjob(self, namespace: str, name: str) -> JsonDict:
        result: JsonDict = await self._run("GET", self._cronjob_path(namespace, name))
        return result

    async def list_cronjobs(self, namespace: str, selector: str) -> list[JsonDict]:
        result = await self._run(
            "GET", self._cronjob_path(namespace), query=[("labelSelector", selector)]
        )
        items: list[JsonDict] = result.get("items", [])
        return items

    async def create_cronjob(self, cronjob: JsonDict) -> JsonDict:
        result: JsonDict = await self._run(
            "POST", self._cronjob_path(cronjob["metadata"]["namespace"]), body=cronjob
        )
        return result

    async def replace_cronjob(self, cronjob: JsonDict) -> JsonDict:
        """PUT the whole CronJob; its resourceVersion turns a concurrent edit into a conflict."""
        meta = cronjob["metadata"]
        result: JsonDict = await self._run(
            "PUT", self._cronjob_path(meta["namespace"], meta["name"]), body=cronjob
        )
        return result

    async def patch_cronjob(self, namespace: str, name: str, patch: JsonDict) -> JsonDict:
        result: JsonDict = await self._run(
            "PATCH", self._cronjob_path(namespace, name), body=patch, content_type=MERGE_PATCH
        )
        return result

    async def delete_cronjob(
        self, namespace: str, name: str, *, uid: str | None = None, orphan: bool = False
    ) -> None:
        """Delete a CronJob; a CronJob already gone is fine.

        Its Jobs follow by ownership, unless ``orphan`` (then they stay, without the CronJob as
        owner). With ``uid``, only that very object is deleted (a precondition the API server
        checks), never a namesake created in between.
        """
        options: JsonDict = {"propagationPolicy": "Orphan" if orphan else "Background"}
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        with contextlib.suppress(NotFoundError):
            await self._run("DELETE", self._cronjob_path(namespace, name), body=options)

    # -- Leases (leader election) --------------------------------------------------------

    def _lease_path(self, namespace: str, name: str | None = None) -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{_q(namespace)}/leases"
        return path if name is None else f"{path}/{_q(name)}"

    async def get_lease(self, namespace: str, name: str) -> JsonDict:
        result: JsonDict = await self._run("GET", self._lease_path(namespace, name))
        return result

    async def create_lease(self, lease: JsonDict) -> JsonDict:
        result: JsonDict = await self._run(
            "POST", self._lease_path(lease["metadata"]["namespace"]), body=lease
        )
        return result

    async def replace_lease(self, lease: JsonDict) -> JsonDict:
        """PUT with the resourceVersion read: a concurrent candidate turns it into a conflict."""
        meta = lease["metadata"]
        result: JsonDict = await self._run(
            "PUT", self._lease_path(meta["namespace"], meta["name"]), body=lease
        )
        return result

    # -- Events -------------------------------------------------------------------------

    async def post_event(
        self,
        involved: JsonDict,
        *,
        type_: str,
        reason: str,
        message: str,
        now: datetime,
        component: str,
    ) -> None:
        """A core/v1 Event on ``involved`` (an object with apiVersion/kind/metadata).

        Events are best effort: failing to post one is logged, never raised, so it cannot turn a
        successful run into a retried one.
        """
        meta = involved["metadata"]
        namespace = meta["namespace"]
        stamp = rfc3339(now)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", vocabulary.API_VERSION),
                "kind": involved.get("kind", vocabulary.KIND),
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._run("POST", f"/api/v1/namespaces/{_q(namespace)}/events", body=event)
        except (TransientError, NotFoundError, ApiRejectedError) as exc:
            logger.warning(
                "could not post event %s on %s/%s: %s", reason, namespace, meta["name"], exc
            )

    async def list_events(self, namespace: str, *, uid: str) -> list[JsonDict]:
        """The core/v1 Events about one object (by its uid), as the API server keeps them."""
        result = await self._run(
            "GET",
            f"/api/v1/namespaces/{_q(namespace)}/events",
            query=[("fieldSelector", f"involvedObject.uid={uid}")],
        )
        items: list[JsonDict] = result.get("items", [])
        return items

    # -- authentication and authorization (the seed's endpoints) -------------------------

    async def review_token(self, token: str, *, audiences: Sequence[str]) -> UserInfo | None:
        """TokenReview: who holds ``token``, or None unless the API server vouches for it *and*
        says it is bound to one of ``audiences``.

        The API's own rule: an authenticator that does not understand audiences answers
        ``authenticated`` with no ``status.audiences``, so a client that asked for audiences must
        find one of them there before it trusts the answer.
        """
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": list(audiences)},
        }
        result = await self._run("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=review)
        status = result.get("status") or {}
        if not status.get("authenticated"):
            return None
        if not set(status.get("audiences") or ()) & set(audiences):
            return None
        user = status.get("user") or {}
        return UserInfo(
            username=str(user.get("username", "")),
            uid=str(user.get("uid", "")),
            groups=tuple(user.get("groups") or ()),
            extra={key: tuple(value) for key, value in (user.get("extra") or {}).items()},
        )

    async def can(
        self, user: UserInfo, *, verb: str, namespace: str | None, name: str | None = None
    ) -> bool:
        """SubjectAccessReview: may ``user`` do ``verb`` on cronworkflows (in ``namespace``)?"""
        decision = await self.review_access(user, verb=verb, namespace=namespace, name=name)
        return decision.allowed

    async def review_access(
        self,
        user: UserInfo,
        *,
        verb: str,
        namespace: str | None,
        name: str | None = None,
        group: str = vocabulary.GROUP,
        resource: str = vocabulary.PLURAL,
    ) -> AccessDecision:
        """SubjectAccessReview for any resource (default cronworkflows), with the reason given."""
        attributes: JsonDict = {"group": group, "resource": resource, "verb": verb}
        if namespace:
            attributes["namespace"] = namespace
        if name:
            attributes["name"] = name
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user.username,
                "uid": user.uid,
                "groups": list(user.groups),
                "extra": {key: list(value) for key, value in user.extra.items()},
                "resourceAttributes": attributes,
            },
        }
        result = await self._run(
            "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review
        )
        status = result.get("status") or {}
        reason = str(status.get("reason") or status.get("evaluationError") or "")
        return AccessDecision(allowed=bool(status.get("allowed")), reason=reason)


_AUTHORIZER_DENIAL: Final = re.compile(r'\bUser "[^"]*" cannot ')
"""The authorizer's wording (``responsewriters.Forbidden``): ``<resource> is forbidden: User
"<name>" cannot <verb> resource ...``, with anonymous and non-resource requests alike."""
_MISSING_RULE_MESSAGES: Final = ("cannot set blockOwnerDeletion",)
"""Admission refusals that are still a missing RBAC rule (OwnerReferencesPermissionEnforcement:
setting blockOwnerDeletion needs ``update`` on the owner's ``finalizers``)."""
_QUOTA_MESSAGES: Final = ("exceeded quota:", "status unknown for quota:")
_TERMINATING_CAUSE: Final = "NamespaceTerminating"
_POLICY_DENIALS: Final = (
    re.compile(r"\bValidatingAdmissionPolicy '[^']*' with binding '[^']*' denied request"),
    re.compile(r'\badmission webhook "[^"]*" denied the request'),
)


def classify_forbidden(text: str, payload: Mapping[str, Any]) -> Exception:
    """The error a 403 stands for, read from its Status (``payload``); ``text`` is its summary."""
    message = str(payload.get("message") or "")
    details = payload.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    cause_reasons = {cause.get("reason") for cause in causes or () if isinstance(cause, dict)}
    if _TERMINATING_CAUSE in cause_reasons or "because it is being terminated" in message:
        return NamespaceTerminatingError(text)
    if any(marker in message for marker in _QUOTA_MESSAGES):
        return QuotaExceededError(text)
    if (
        not message
        or _AUTHORIZER_DENIAL.search(message)
        or any(marker in message for marker in _MISSING_RULE_MESSAGES)
    ):
        return ForbiddenError(text)
    return AdmissionDeniedError(text, detail=message)


def _error(method: str, path: str, status: int, data: bytes) -> Exception:
    try:
        payload = json.loads(data) if data else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    reason = str(payload.get("reason") or "")
    message = str(payload.get("message") or "")
    text = f"{method} {path}: HTTP {status} {reason} {message}".strip()
    if status == 404:
        return NotFoundError(text)
    if status == 409:
        return (
            AlreadyExistsError(text)
            if reason == "AlreadyExists"
            else ConflictError(text, retry_after=0.1)
        )
    if status == 403:
        return classify_forbidden(text, payload)
    if status in (400, 422):
        detail = message or reason or f"HTTP {status}"
        if any(pattern.search(message) for pattern in _POLICY_DENIALS):
            return AdmissionDeniedError(text, detail=detail)
        return ApiRejectedError(text, detail=detail)
    retry_after = 1.0 if status == 429 else None
    return KubernetesUnavailableError(text, retry_after=retry_after)
