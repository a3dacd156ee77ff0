"""Who may call the API: an IAM token, or an AK/SK signature of the request.

Signatures are checked with `orchestrator.signing.verify`, the same code the
client signs with, which is itself pinned to the official SDK's test vectors.
Failure messages name what was wrong, never a header's value.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Iterable, Mapping

from orchestrator.cloud import signing
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.errors import ApiFault
from orchestrator.simulator.iam import Iam

MAX_CLOCK_SKEW = 15 * 60.0  # seconds an X-Sdk-Date may be off the server's clock


class Authenticator:
    def __init__(self, config: SimulatorConfig, iam: Iam | None = None) -> None:
        self._iam = iam
        token = config.token
        self._token = None if token is None else token.encode("utf-8", "surrogateescape")
        self._ak = config.ak
        self._sk = config.sk
        self.enabled = config.auth_enabled
        self._lock_after = config.aksk_lock_after
        self._lock_seconds = config.aksk_lock_seconds
        self.signature_failures = 0  # failed signatures by the key pair, in a row
        self.locked_until: float | None = None  # the key pair is locked until then

    def check(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        project_id: str,
        now: float,
    ) -> None:
        """Return when the request is authenticated; raise a 401 ApiFault otherwise."""
        if not self.enabled:
            return
        token = headers.get("X-Auth-Token")
        if (
            self._token is not None
            and token is not None
            and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._token)
        ):
            return
        if token is not None and self._iam is not None and self._iam.knows(token):
            self._iam.check(token, project_id, now)
            return
        if self._ak is not None and self._sk is not None and "Authorization" in headers:
            self._check_signature(method, path, query, headers, body, project_id, now)
            return
        if token is not None:
            raise ApiFault("Common.0013")
        if self._token is not None and self._ak is None:
            raise ApiFault("Common.0013", "The request carries no X-Auth-Token header.")
        raise ApiFault("APIGW.0301", "The request carries no credentials.")

    def _check_signature(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        project_id: str,
        now: float,
    ) -> None:
        assert self._ak is not None and self._sk is not None
        parsed = signing.parse_authorization(headers["Authorization"])
        if parsed is None:
            raise ApiFault("APIGW.0301", "The Authorization header is not SDK-HMAC-SHA256.")
        ours = parsed[0] == self._ak
        if ours and self.locked_until is not None and now < self.locked_until:
            raise ApiFault("APIGW.0301", "The key pair is locked after failed signatures.")
        try:
            self._check_signed(method, path, query, headers, body, project_id, now)
        except ApiFault:
            if ours:
                self.signature_failures += 1
                if self.signature_failures >= self._lock_after:
                    self.locked_until = now + self._lock_seconds
                    self.signature_failures = 0
            raise
        if ours:
            self.signature_failures = 0

    def _check_signed(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        project_id: str,
        now: float,
    ) -> None:
        assert self._ak is not None and self._sk is not None
        if not verify_signature(self._ak, self._sk, method, path, query, headers, body):
            raise ApiFault("APIGW.0301", "The request signature does not match.")
        try:
            signed_at = sdk_timestamp(headers.get("X-Sdk-Date", ""))
        except ValueError:
            raise ApiFault("APIGW.0301", "X-Sdk-Date is missing or malformed.") from None
        if abs(now - signed_at) > MAX_CLOCK_SKEW:
            raise ApiFault(
                "APIGW.0301", "X-Sdk-Date is more than 15 minutes away from the server time."
            )
        if headers.get("X-Project-Id") != project_id:
            raise ApiFault("APIGW.0301", "X-Project-Id does not match the project in the URL.")


# The simulator's signature check is the shared signer's, named here so tests pin it.
verify_signature = signing.verify


# A few seconds' worth of distinct X-Sdk-Date values: every request signed within
# the same second carries the same one, so `strptime` runs about once per second.
@functools.lru_cache(maxsize=64)
def sdk_timestamp(value: str) -> float:
    """Epoch seconds of an X-Sdk-Date value; ValueError (never cached) when malformed.

    Only the parse is cached: how far the value is from the clock is still judged
    per request, so a stale date is refused however often it was seen before.
    """
    return signing.parse_sdk_date(value).timestamp()
