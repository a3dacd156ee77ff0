"""IAM password authentication: one project-scoped token per project, fetched lazily.

    prepare(project)   a valid token for the project, fetched once (concurrent first
                       requests wait on one fetch) and renewed before `expires_at`
    headers(...)       X-Auth-Token of that project's token
    renew(project, sent)   after a 401: fetch a new token unless another request already
                       did; the client then sends once more, and a second 401 stops the run
    catalog_endpoint(project, region)   the ECS base URL the token's catalog names

Failures, by what the runner should do (nothing was sent to ECS in any of them):
    IAM unreachable, 429 or APIGW.0308, 5xx,        -> RetryLater / NotSent (send later)
      an unusable answer
    401 for a project while the password itself works -> ProjectRefused (that project only)
    401 for the password (checked with a domain-scoped token) -> AuthFailed (stop the run)
    403, 404 for a project                           -> ProjectRefused

The password goes into one request body and nowhere else; messages name the cloud,
the user and the project, never a secret. Every token IAM issues is added to
`orchestrator.redact`'s registry before it is used, so an ECS error quoting it
back is blanked like the password. IAM's answers are read as ECS's are
(`orchestrator.answers`): a body nested too deep or not JSON is an unusable
answer, its text cleaned; a token that cannot be sent in a header is refused
as an unusable answer (RetryLater), not sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from orchestrator import redact
from orchestrator.cloud.answers import THROTTLE_CODES, error_of, parse_body
from orchestrator.cloud.auth import AkSkAuth, Credentials, TokenAuth, header_problem
from orchestrator.cloud.client import MAYBE_SENT, NOTHING_SENT, read_capped
from orchestrator.cloud.cloudconfig import CloudConfig, url_site
from orchestrator.cloud.endpoints import check_endpoint
from orchestrator.cloud.network import Proxies
from orchestrator.cloud.views import service_text
from orchestrator.errors import (
    AuthFailed,
    NotSent,
    ProjectRefused,
    RetryLater,
    Throttled,
    UsageError,
)

TOKEN_HEADER = "X-Subject-Token"
# Only `ecs`: `compute` is Nova (/v2.1), another API even where it shares the host.
ECS_SERVICE_TYPES = ("ecs",)
MAX_MARGIN = 300.0  # renew a token at most this long before it expires
MARGIN_SHARE = 0.1  # ... and at least this share of its lifetime before
MAX_BODY = 4 << 20  # a token answer with a full catalog is tens of KiB
_VERSION_TAIL = re.compile(r"/v\d+(\.\d+)?(/[^/]*)?$")


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float
    renew_at: float
    catalog: list[Any]


def strip_version(url: str) -> str:
    """`https://ecs.x/v1/{project}` -> `https://ecs.x`: the client builds `/v1/...` itself."""
    url = url.rstrip("/")
    return _VERSION_TAIL.sub("", url)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):  # not a time; a year Python's clock cannot hold
        return None


def ecs_from_catalog(catalog: list[Any], region: str | None) -> str | None:
    """The public ECS endpoint of `region` (or the only one, without a region)."""
    by_type: dict[str, list[tuple[str | None, str]]] = {t: [] for t in ECS_SERVICE_TYPES}
    for service in catalog:
        if not isinstance(service, dict) or service.get("type") not in ECS_SERVICE_TYPES:
            continue
        endpoints = service.get("endpoints")
        for ep in endpoints if isinstance(endpoints, list) else ():
            if not isinstance(ep, dict) or ep.get("interface", "public") != "public":
                continue
            url = ep.get("url")
            if isinstance(url, str):
                where = ep.get("region_id") or ep.get("region")
                by_type[service["type"]].append(
                    (where if isinstance(where, str) else None, service_text(url, 2000))
                )
    found = [pair for t in ECS_SERVICE_TYPES for pair in by_type[t]]
    if region is not None:
        urls = {url for where, url in found if where == region}
    else:
        urls = {url for _, url in found}
    # Without a region, only an unambiguous catalog answers.
    return strip_version(urls.pop()) if len(urls) == 1 else None


class IamAuth:
    """Project-scoped IAM tokens for one user, shared by every request of a run."""

    kind = "password"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: CloudConfig,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
        proxies: Proxies | None = None,
    ) -> None:
        """`proxies`: where the environment's proxies apply (default: none)."""
        assert config.auth_url and config.username and config.password
        self._session = session
        self._config = config
        auth_url = check_endpoint(config.auth_url)
        if urlsplit(auth_url).path in ("", "/"):
            auth_url += "/v3"  # "https://iam.eu-de.otc.t-systems.com" means its v3 API
        self._url = auth_url + "/auth/tokens"
        self._proxy = (proxies or Proxies(from_environment=False)).for_url(URL(self._url))
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._password_ok: bool | None = None
        self._password_refused: AuthFailed | None = None
        # Until IAM has once accepted the password, one request at a time: a wrong
        # password sent for fifty projects at once could lock the user's account.
        self._first = asyncio.Lock()
        # A project IAM refused stays refused for the run: its other targets fail at
        # once instead of asking IAM again, one by one.
        self._refused: dict[str, ProjectRefused] = {}
        self.issued: dict[str, int] = {}  # tokens fetched, by project (for logs and tests)
        redact.register(config.password)

    # -- the Credentials interface ----------------------------------------------------

    async def prepare(self, project_id: str) -> None:
        refused = self._refused.get(project_id)
        if refused is not None:
            raise ProjectRefused(str(refused), status=refused.status, code=refused.code)
        token = self._tokens.get(project_id)
        if token is None or self._clock() >= token.renew_at:
            await self._fetch_once(project_id, stale=token.value if token else None)

    def headers(
        self,
        method: str,
        host: str,
        path: str,
        project_id: str,
        body: bytes,
        base: Mapping[str, str],
        query: Sequence[tuple[str, str]] = (),
    ) -> dict[str, str]:
        return {**base, "X-Auth-Token": self._tokens[project_id].value}

    async def renew(self, project_id: str, sent: Mapping[str, str]) -> bool:
        await self._fetch_once(project_id, stale=sent.get("X-Auth-Token"))
        return True

    def catalog_endpoint(self, project_id: str, region: str | None) -> str | None:
        token = self._tokens.get(project_id)
        return ecs_from_catalog(token.catalog, region) if token else None

    def secrets(self) -> tuple[str, ...]:
        return (self._config.password or "", *tuple(t.value for t in self._tokens.values()))

    # -- fetching ---------------------------------------------------------------------

    async def _fetch_once(self, project_id: str, stale: str | None) -> None:
        lock = self._locks.setdefault(project_id, asyncio.Lock())
        async with lock:
            if self._password_ok is not True:
                async with self._first:
                    await self._fetch_locked(project_id, stale)
            else:
                await self._fetch_locked(project_id, stale)

    async def _fetch_locked(self, project_id: str, stale: str | None) -> None:
        if self._password_refused is not None:
            refused = self._password_refused
            raise AuthFailed(str(refused), status=refused.status, code=refused.code)
        current = self._tokens.get(project_id)
        if current is not None and current.value != stale and self._clock() < current.renew_at:
            return  # another request fetched it while this one waited
        try:
            self._tokens[project_id] = await self._fetch(project_id)
        except ProjectRefused as exc:
            self._refused[project_id] = exc
            raise
        self.issued[project_id] = self.issued.get(project_id, 0) + 1

    def _body(self, scope: dict[str, Any]) -> bytes:
        c = self._config
        domain = {"name": c.user_domain_name} if c.user_domain_name else {"id": c.user_domain_id}
        user = {"name": c.username, "password": c.password, "domain": domain}
        auth = {"identity": {"methods": ["password"], "password": {"user": user}}, "scope": scope}
        return json.dumps({"auth": auth}).encode()

    async def _post(self, scope: dict[str, Any], what: str) -> tuple[int, dict[str, str], Any]:
        try:
            async with self._session.post(
                self._url,
                data=self._body(scope),
                headers={"Content-Type": "application/json;charset=utf8"},
                timeout=self._timeout,
                allow_redirects=False,
                proxy=self._proxy,
            ) as resp:
                raw = await read_capped(resp.content, MAX_BODY)
                headers = {k: v for k, v in resp.headers.items()}
                status = resp.status
        except NOTHING_SENT as exc:
            raise NotSent(f"IAM {what}: cannot connect ({type(exc).__name__})") from None
        except MAYBE_SENT as exc:
            raise RetryLater(f"IAM {what}: no answer ({type(exc).__name__})") from None
        payload = parse_body(raw)
        return status, headers, payload if isinstance(payload, dict | list) else None

    async def _fetch(self, project_id: str) -> _Token:
        what = f"token for project {project_id}"
        status, headers, payload = await self._post({"project": {"id": project_id}}, what)
        token = headers.get(TOKEN_HEADER)
        if status in (200, 201) and token and isinstance(payload, dict):
            self._password_ok = True
            # Blanked before anything can quote it, usable or not.
            redact.register(token)
            problem = header_problem(token)
            if problem is not None:
                raise RetryLater(f"IAM {what}: the token in {TOKEN_HEADER} is unusable: {problem}")
            return self._token(token, payload)
        summary = _summary(status, payload)
        if status == 429 or _code(payload) in THROTTLE_CODES:
            # The gateway's throttling names itself, whatever status it comes with.
            raise Throttled(f"IAM {what}: {summary}", status=status)
        if status == 401:
            if await self._password_works():
                raise ProjectRefused(
                    f"IAM gives {self._config.label} no token for project {project_id}: {summary}",
                    status=status,
                    code=_code(payload),
                )
            self._password_refused = AuthFailed(
                f"IAM refused the credentials of {self._config.label} "
                f"(auth_url {url_site(self._config.auth_url)}): {summary}",
                status=status,
                code=_code(payload),
            )
            raise self._password_refused
        if status in (400, 403, 404):
            raise ProjectRefused(
                f"IAM gives {self._config.label} no token for project {project_id}: {summary}",
                status=status,
                code=_code(payload),
            )
        raise RetryLater(f"IAM {what}: {summary}", status=status)

    async def _password_works(self) -> bool:
        """Tell a wrong password from a project the user may not use: Keystone answers
        401 to both, so ask once for a token scoped to the user's own domain."""
        if self._password_ok is None:
            c = self._config
            domain = (
                {"name": c.user_domain_name} if c.user_domain_name else {"id": c.user_domain_id}
            )
            status, headers, _ = await self._post({"domain": domain}, "domain-scoped token")
            if status in (200, 201) and headers.get(TOKEN_HEADER):
                self._password_ok = True
            elif status in (401, 403):
                self._password_ok = False
            else:
                raise RetryLater(f"IAM domain-scoped token: HTTP {status}", status=status)
        return self._password_ok

    def _token(self, value: str, payload: dict[str, Any]) -> _Token:
        body = payload.get("token") if isinstance(payload.get("token"), dict) else {}
        assert isinstance(body, dict)
        now = self._clock()
        expires = _epoch(body.get("expires_at"))
        issued = _epoch(body.get("issued_at")) or now
        if expires is None:
            raise RetryLater("IAM token answer has no usable expires_at")
        lifetime = max(expires - issued, 0.0)
        margin = min(MAX_MARGIN, lifetime * MARGIN_SHARE)
        catalog = body.get("catalog")
        return _Token(
            value=value,
            expires_at=expires,
            renew_at=expires - margin,
            catalog=catalog if isinstance(catalog, list) else [],
        )


def _code(payload: Any) -> str | None:
    """The error code of an IAM answer, in any of the shapes ECS's are read in."""
    error = error_of(payload)
    return error[0] or None if error else None


def _summary(status: int, payload: Any) -> str:
    error = error_of(payload)
    message = error[1][:300] if error else ""
    if not message and isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        message = service_text(payload["error"].get("title") or "", 300)  # Keystone's
    code = _code(payload)
    text = f"HTTP {status}" + (f" {code}" if code and code != str(status) else "")
    return text + (f": {message}" if message else "")


def credentials_for(
    config: CloudConfig, session: aiohttp.ClientSession, proxies: Proxies | None = None
) -> Credentials:
    """The credentials a resolved configuration stands for (IAM's requests on `session`,
    through `proxies`)."""
    if config.auth_type == "password":
        return IamAuth(session, config, proxies=proxies)
    if config.auth_type == "token" and config.token:
        return TokenAuth(config.token)
    if config.auth_type == "aksk" and config.ak and config.sk:
        return AkSkAuth(config.ak, config.sk, config.security_token)
    raise UsageError(f"{config.label}: incomplete {config.auth_type} credentials")
