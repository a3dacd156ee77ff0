"""AK/SK request signing in the `SDK-HMAC-SHA256` scheme of the Huawei Cloud SDK.

Everything here is a pure function of method, path, query, headers, body, time
and key, so the client (which signs) and the simulator (which verifies) share
one implementation, and both are checked against the SDK's own test vectors.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # the body hash of every GET
_SHA256_BLOCK = 64  # bytes: HMAC pads (or first hashes) the key to this
_LINES_CAP = 1024


def sdk_date(now: datetime) -> str:
    """The `X-Sdk-Date` value for a moment: UTC, `YYYYMMDDTHHMMSSZ`.

    Formatted once per second, not per request: the value has a one-second grain.
    """
    global _last_date
    second = math.floor(now.timestamp())
    last = _last_date
    if last[0] == second:
        return last[1]
    text = datetime.fromtimestamp(second, UTC).strftime(DATE_FORMAT)
    _last_date = (second, text)
    return text


_last_date: tuple[float, str] = (math.nan, "")
# An Authorization header exactly as the SDK lays it out, with no space or comma in a
# value: the general parse below gives the same three fields for it.
_PLAIN_AUTHORIZATION = re.compile(
    ALGORITHM + r" Access=([^\s,]+), SignedHeaders=([^\s,]+), Signature=([^\s,]+)"
)
# Path characters that RFC 3986 encoding leaves alone: such a path is its own encoding.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.~-]*")


def parse_sdk_date(value: str) -> datetime:
    """Parse an `X-Sdk-Date` value; raises ValueError when malformed."""
    return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC)


def _encode(value: str) -> str:
    # RFC 3986 unreserved characters stay as they are; `~` included.
    return quote(value, safe="-_.~")


def canonical_uri(path: str) -> str:
    if _PLAIN_PATH.fullmatch(path):  # every ECS path of ours: IDs are hex and dashes
        return path if path.endswith("/") else path + "/"
    segments = path.split("/")
    encoded = "/".join(_encode(segment) for segment in segments)
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    pairs = sorted((_encode(k), _encode(v)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    # The SDK leaves out headers whose names contain `_`.
    return sorted(name.lower() for name in headers if "_" not in name)


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed: list[str],
    body: bytes,
) -> str:
    lowered = {name.lower(): value for name, value in headers.items()}
    return _canonical_request(method, path, query, lowered, signed, body)


def _canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    lowered: Mapping[str, str],
    signed: list[str],
    body: bytes,
) -> str:
    """`canonical_request` for headers whose names are already lower case."""
    canonical_headers = "".join(f"{name}:{lowered[name].strip()}\n" for name in signed)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
        ]
    )


def signature(
    secret_key: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed: list[str],
    body: bytes,
) -> str:
    """Hex HMAC-SHA256 of the string to sign; `headers` must hold `X-Sdk-Date`."""
    date = next(v for k, v in headers.items() if k.lower() == DATE_HEADER.lower())
    request = canonical_request(method, path, query, headers, signed, body)
    return _sign(secret_key, date, request)


def _sign(secret_key: str, date: str, request: str) -> str:
    string_to_sign = "\n".join([ALGORITHM, date, hashlib.sha256(request.encode()).hexdigest()])
    return _hmac_hex(_keyed(secret_key.encode()), string_to_sign.encode())


_Keyed = tuple["hashlib._Hash", "hashlib._Hash"]


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> _Keyed:
    """HMAC-SHA256's (RFC 2104) inner and outer hash states for a key, made once per
    key: `hmac.digest` sets OpenSSL's HMAC up again for every call, at 3x the cost
    of copying these (the client signs, the simulator checks, every request)."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(
        bytes(b ^ 0x5C for b in key)
    )


def _hmac_hex(keyed: _Keyed, message: bytes) -> str:
    """hmac.digest(key, message, "sha256").hex(), from `_keyed(key)`."""
    inner = keyed[0].copy()
    inner.update(message)
    outer = keyed[1].copy()
    outer.update(inner.digest())
    return outer.hexdigest()


def authorization(
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The `Authorization` header value for a request whose headers are final.

    `headers` must already hold `Host` and `X-Sdk-Date`: every header sent is signed.
    """
    signed = signed_header_names(headers)
    sig = signature(secret_key, method, path, query, headers, signed, body)
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed)}, Signature={sig}"


class Signer:
    """`authorization` for one key pair, with the per-request work cut to what changes.

    A run signs every request with the same header names, so the sorted signed
    names, which header is the date and the key's bytes are worked out once per
    set of header names. The result is `authorization`'s, byte for byte (a test
    compares both over the SDK's vectors and random headers).
    """

    def __init__(self, access_key: str, secret_key: str) -> None:
        self._access_key = access_key
        self._keyed = _keyed(secret_key.encode())
        self._plans: dict[tuple[str, ...], tuple[list[str], list[str], str, str]] = {}
        # Canonical header lines by header values: a run sends few distinct ones per
        # second (the date, the project); capped, cleared when full.
        self._lines: dict[tuple[object, ...], str] = {}

    def authorization(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        query: Iterable[tuple[str, str]] = (),
    ) -> str:
        """The `Authorization` value for a request (`query`: its query parameters)."""
        names = tuple(headers)
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plans[names] = self._plan(headers)
        signed, originals, joined, date_name = plan
        values = (names, *headers.values())
        canonical_headers = self._lines.get(values)
        if canonical_headers is None:
            if len(self._lines) >= _LINES_CAP:
                self._lines.clear()
            canonical_headers = self._lines[values] = "".join(
                f"{name}:{headers[original].strip()}\n"
                for name, original in zip(signed, originals, strict=True)
            )
        body_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        request = (
            f"{method.upper()}\n{canonical_uri(path)}\n{canonical_query(query)}\n"
            f"{canonical_headers}\n{joined}\n{body_hash}"
        )
        digest = hashlib.sha256(request.encode()).hexdigest()
        to_sign = f"{ALGORITHM}\n{headers[date_name]}\n{digest}"
        sig = _hmac_hex(self._keyed, to_sign.encode())
        return f"{ALGORITHM} Access={self._access_key}, SignedHeaders={joined}, Signature={sig}"

    @staticmethod
    def _plan(headers: Mapping[str, str]) -> tuple[list[str], list[str], str, str]:
        signed = signed_header_names(headers)
        # As `canonical_request`: of two names differing only in case, the later one's value.
        original = {name.lower(): name for name in headers}
        date_name = next(k for k in headers if k.lower() == DATE_HEADER.lower())
        return signed, [original[n] for n in signed], ";".join(signed), date_name


def parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    """Split an Authorization header into (access key, signed headers, signature)."""
    # The SDK's own layout (and ours) in one match; anything else takes the general path.
    plain = _PLAIN_AUTHORIZATION.fullmatch(value)
    if plain is not None:
        return plain[1], plain[2].split(";"), plain[3]
    return parse_authorization_fields(value)


def parse_authorization_fields(value: str) -> tuple[str, list[str], str] | None:
    """`parse_authorization` field by field: any spacing and order the SDK may send."""
    if not value.startswith(ALGORITHM + " "):
        return None
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) + 1 :].split(","):
        name, sep, val = part.strip().partition("=")
        if not sep:
            return None
        fields[name] = val
    try:
        return fields["Access"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError:
        return None


def verify(
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> bool:
    """True when the request's Authorization header is a valid signature by this key."""
    lowered = {name.lower(): value for name, value in headers.items()}
    parsed = parse_authorization(lowered.get("authorization", ""))
    if parsed is None:
        return False
    access, signed, sig = parsed
    if not hmac.compare_digest(access, access_key):
        return False
    if "x-sdk-date" not in signed or "host" not in signed:
        return False
    if any(name not in lowered for name in signed):
        return False
    # `lowered` is already lower case: the same canonical request as `signature`
    # builds, without lowering every header name twice more (the simulator's hot path).
    request = _canonical_request(method, path, query, lowered, signed, body)
    expected = _sign(secret_key, lowered["x-sdk-date"], request)
    return hmac.compare_digest(expected, sig)
