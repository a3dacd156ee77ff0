"""Credentials, and the headers they put on a request.

Two kinds, as the ECS API accepts them: an IAM token (`X-Auth-Token`), or an
AK/SK key pair that signs every request (`SDK-HMAC-SHA256`, `X-Project-Id`).
A fixed token or key pair is ready at once; IAM password authentication
(`orchestrator.iam.IamAuth`) fetches a token per project, which is why the
interface has `prepare` and `renew`.
Secrets are held in objects whose repr hides them, so a traceback, a log line or
a debugger never shows one, and are added to `orchestrator.redact`'s registry when
they are made, so that no message, log line, state or report shows one either.
A value that goes into a header (token, AK, security token) must be sendable
there: latin-1 text without control characters; anything else is refused when
the credentials are loaded (exit 2), not when the first request fails mid-run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from orchestrator import redact
from orchestrator.cloud import signing
from orchestrator.errors import UsageError

ENV_TOKEN = "OS_AUTH_TOKEN"
ENV_AK = "HUAWEICLOUD_SDK_AK"
ENV_SK = "HUAWEICLOUD_SDK_SK"
ENV_SECURITY_TOKEN = "HUAWEICLOUD_SDK_SECURITY_TOKEN"


def header_problem(value: str) -> str | None:
    """Why `value` cannot be sent as an HTTP header value, or None. Never quotes it."""
    for position, char in enumerate(value, 1):
        code = ord(char)
        if code > 0xFF:
            return f"character {position} (U+{code:04X}) is not latin-1 text"
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return f"character {position} is a control character (U+{code:04X})"
    return None


def check_header_secret(value: str, where: str) -> str:
    """`value`, or UsageError naming `where` (a variable, a file's field) and the problem."""
    problem = header_problem(value)
    if problem is not None:
        raise UsageError(
            f"{where}: {problem}; it cannot be sent in an HTTP header, so it cannot be a"
            " valid credential (was it pasted with a stray character?)"
        )
    return value


class Credentials(Protocol):
    @property
    def kind(self) -> str:
        """'token' or 'aksk', for the run's record (never the secret itself)."""
        ...

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
        """All headers to send: `base` plus the authentication ones (`query`: the
        request's query parameters, which a signature covers)."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """The secret values, so that tests and log filters can look for them."""
        ...

    async def prepare(self, project_id: str) -> None:
        """Make `headers` usable for this project (fetch or renew its token)."""
        ...

    async def renew(self, project_id: str, sent: Mapping[str, str]) -> bool:
        """After a 401 to the headers `sent`: True when sending again may work."""
        ...

    def catalog_endpoint(self, project_id: str, region: str | None) -> str | None:
        """The ECS base URL the credentials' service catalog names, if any."""
        ...


class _Fixed:
    """What a fixed token or key pair does for the per-project steps: nothing."""

    async def prepare(self, project_id: str) -> None:
        return None

    async def renew(self, project_id: str, sent: Mapping[str, str]) -> bool:
        return False  # the same token or key would be refused again

    def catalog_endpoint(self, project_id: str, region: str | None) -> str | None:
        return None


@dataclass(frozen=True)
class TokenAuth(_Fixed):
    token: str = field(repr=False)
    kind: str = "token"

    def __post_init__(self) -> None:
        check_header_secret(self.token, "the token")
        redact.register(self.token)

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
        return {**base, "X-Auth-Token": self.token}

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


@dataclass(frozen=True)
class AkSkAuth(_Fixed):
    access_key: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)
    kind: str = "aksk"

    def __post_init__(self) -> None:
        check_header_secret(self.access_key, "the access key (AK)")
        if self.security_token:
            check_header_secret(self.security_token, "the security token")
        redact.register(self.secret_key, self.security_token)

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
        headers = {
            **base,
            "Host": host,
            "X-Project-Id": project_id,
            signing.DATE_HEADER: signing.sdk_date(self.clock()),
        }
        if self.security_token:
            headers["X-Security-Token"] = self.security_token
        headers["Authorization"] = self._signer.authorization(method, path, headers, body, query)
        return headers

    @functools.cached_property
    def _signer(self) -> signing.Signer:
        return signing.Signer(self.access_key, self.secret_key)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.secret_key, self.security_token) if s)


def from_env(env: Mapping[str, str]) -> Credentials | None:
    """Token if `OS_AUTH_TOKEN` is set, else AK/SK if both keys are set, else None."""
    token = env.get(ENV_TOKEN, "").strip()
    ak = env.get(ENV_AK, "").strip()
    sk = env.get(ENV_SK, "").strip()
    if token:
        return TokenAuth(check_header_secret(token, ENV_TOKEN))
    if ak or sk:
        if not (ak and sk):
            missing = ENV_SK if ak else ENV_AK
            raise UsageError(
                f"AK/SK authentication needs both {ENV_AK} and {ENV_SK}; {missing} is not set"
            )
        security_token = env.get(ENV_SECURITY_TOKEN, "").strip() or None
        if security_token:
            check_header_secret(security_token, ENV_SECURITY_TOKEN)
        return AkSkAuth(check_header_secret(ak, ENV_AK), sk, security_token)
    return None
