"""Credentials from the environment, their headers, and that secrets stay hidden."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.cloud import signing
from orchestrator.cloud.auth import (
    ENV_AK,
    ENV_SECURITY_TOKEN,
    ENV_SK,
    ENV_TOKEN,
    AkSkAuth,
    TokenAuth,
    from_env,
    header_problem,
)
from orchestrator.errors import UsageError

TOKEN = "MIIT0k3n-secret-value-4711"
AK = "HPUAUTHTESTACCESSKEY"
SK = "sk-secret-value-never-shown-0815"
STS = "security-token-secret-value-42"
PROJECT = "0123456789abcdef0123456789abcdef"
HOST = "ecs.eu-de.otc.t-systems.com"
PATH = f"/v1/{PROJECT}/cloudservers/0b3a8a5c-6c9f-4c2a-9f59-6d1c1c2d3e4f/reinstallos"
BODY = b'{"os-reinstall":{"keyname":"k","userid":"u"}}'
BASE = {"Content-Type": "application/json;charset=UTF-8", "Accept": "application/json"}
VECTORS = Path("/work/shared/reference/aksk-test-vectors.json")
FIXED = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)


def test_empty_environment_gives_no_credentials() -> None:
    assert from_env({}) is None
    assert from_env({ENV_TOKEN: "  ", ENV_AK: "", ENV_SK: " "}) is None


def test_token_wins_over_aksk() -> None:
    creds = from_env({ENV_TOKEN: TOKEN, ENV_AK: AK, ENV_SK: SK})
    assert isinstance(creds, TokenAuth)
    assert creds.token == TOKEN
    assert creds.kind == "token"


def test_token_even_wins_over_half_an_aksk_pair() -> None:
    creds = from_env({ENV_TOKEN: TOKEN, ENV_AK: AK})
    assert isinstance(creds, TokenAuth)


def test_token_is_stripped() -> None:
    creds = from_env({ENV_TOKEN: f"  {TOKEN}\n"})
    assert isinstance(creds, TokenAuth) and creds.token == TOKEN


def test_aksk_from_env() -> None:
    creds = from_env({ENV_AK: AK, ENV_SK: SK})
    assert isinstance(creds, AkSkAuth)
    assert (creds.access_key, creds.secret_key, creds.security_token) == (AK, SK, None)
    assert creds.kind == "aksk"


def test_aksk_with_security_token_from_env() -> None:
    creds = from_env({ENV_AK: AK, ENV_SK: SK, ENV_SECURITY_TOKEN: STS})
    assert isinstance(creds, AkSkAuth)
    assert creds.security_token == STS


@pytest.mark.parametrize(
    ("env", "missing"),
    [({ENV_AK: AK}, ENV_SK), ({ENV_SK: SK}, ENV_AK), ({ENV_AK: AK, ENV_SK: "  "}, ENV_SK)],
)
def test_half_a_key_pair_is_a_usage_error(env: dict[str, str], missing: str) -> None:
    with pytest.raises(UsageError) as info:
        from_env(env)
    message = str(info.value)
    assert message.endswith(f"{missing} is not set")
    assert SK not in message and AK not in message


def test_repr_never_shows_a_secret() -> None:
    token = TokenAuth(TOKEN)
    aksk = AkSkAuth(AK, SK, STS)
    for creds in (token, aksk):
        for text in (repr(creds), str(creds)):
            for secret in (TOKEN, SK, STS):
                assert secret not in text
    # The access key is not secret, and naming it helps to debug.
    assert AK in repr(aksk)


def test_secrets_lists_what_must_never_be_logged() -> None:
    assert TokenAuth(TOKEN).secrets() == (TOKEN,)
    assert set(AkSkAuth(AK, SK, STS).secrets()) == {SK, STS}
    assert AkSkAuth(AK, SK).secrets() == (SK,)


def test_token_headers() -> None:
    headers = TokenAuth(TOKEN).headers("POST", HOST, PATH, PROJECT, BODY, BASE)
    assert headers == {**BASE, "X-Auth-Token": TOKEN}


def _aksk_headers(creds: AkSkAuth, method: str = "POST", body: bytes = BODY) -> dict[str, str]:
    return creds.headers(method, HOST, PATH, PROJECT, body, BASE)


def test_aksk_headers_verify_with_the_signer() -> None:
    creds = AkSkAuth(AK, SK, clock=lambda: FIXED)
    headers = _aksk_headers(creds)
    assert headers["X-Sdk-Date"] == "20261126T020000Z"
    assert headers["Host"] == HOST
    assert headers["X-Project-Id"] == PROJECT
    assert "X-Security-Token" not in headers
    assert "X-Auth-Token" not in headers
    assert signing.verify(AK, SK, "POST", PATH, [], headers, BODY)
    # Every header sent is signed, so nothing can be swapped on the way.
    _, signed, _ = signing.parse_authorization(headers["Authorization"]) or ("", [], "")
    assert signed == sorted(n.lower() for n in headers if n != "Authorization")
    # The signature binds the body and the key.
    assert not signing.verify(AK, SK, "POST", PATH, [], headers, BODY + b" ")
    assert not signing.verify(AK, "another-secret", "POST", PATH, [], headers, BODY)
    # And the secret key itself is not in any header.
    assert SK not in json.dumps(headers)


def test_aksk_headers_follow_the_clock() -> None:
    moments = iter([FIXED, FIXED.replace(second=1)])
    creds = AkSkAuth(AK, SK, clock=lambda: next(moments))
    first = _aksk_headers(creds, "GET", b"")
    second = _aksk_headers(creds, "GET", b"")
    assert (first["X-Sdk-Date"], second["X-Sdk-Date"]) == ("20261126T020000Z", "20261126T020001Z")
    assert first["Authorization"] != second["Authorization"]
    assert signing.verify(AK, SK, "GET", PATH, [], second, b"")


def test_aksk_headers_match_the_sdk_vector() -> None:
    vectors = json.loads(VECTORS.read_text())
    vector = vectors["vectors"][0]
    when = signing.parse_sdk_date(vector["headers_in"]["X-Sdk-Date"])
    creds = AkSkAuth(vectors["access_key"], vectors["secret_key"], clock=lambda: when)
    headers = creds.headers(
        vector["method"],
        vector["host"],
        vector["path"],
        vector["headers_in"]["X-Project-Id"],
        vector["body"].encode(),
        {"Content-Type": vector["headers_in"]["Content-Type"]},
    )
    assert headers["Authorization"] == vector["authorization"]


def test_security_token_is_sent_and_signed() -> None:
    creds = AkSkAuth(AK, SK, STS, clock=lambda: FIXED)
    headers = _aksk_headers(creds)
    assert headers["X-Security-Token"] == STS
    _, signed, _ = signing.parse_authorization(headers["Authorization"]) or ("", [], "")
    assert "x-security-token" in signed
    assert signing.verify(AK, SK, "POST", PATH, [], headers, BODY)
    swapped = {**headers, "X-Security-Token": "another-token"}
    assert not signing.verify(AK, SK, "POST", PATH, [], swapped, BODY)


def test_base_headers_are_kept_and_not_mutated() -> None:
    base = dict(BASE)
    headers = AkSkAuth(AK, SK, clock=lambda: FIXED).headers("GET", HOST, PATH, PROJECT, b"", base)
    assert base == BASE
    assert "Authorization" in headers
    for name, value in BASE.items():
        assert headers[name] == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("MIIT0k3n", None),
        ("caf\u00e9", None),  # latin-1: sendable, if unusual
        ("tok\u20ac", "character 4 (U+20AC) is not latin-1 text"),
        ("tok\r\nX-Evil: 1", "character 4 is a control character (U+000D)"),
        ("tok\x7f", "character 4 is a control character (U+007F)"),
    ],
)
def test_header_problem_says_why_without_quoting(value: str, problem: str | None) -> None:
    assert header_problem(value) == problem


def test_fixed_credentials_no_header_can_carry_are_refused() -> None:
    with pytest.raises(UsageError, match="the token: character 2"):
        TokenAuth("t\u20ac")
    with pytest.raises(UsageError, match=r"the access key \(AK\): character 1"):
        AkSkAuth("\n", SK)
    with pytest.raises(UsageError, match=f"{ENV_TOKEN}: character 1"):
        from_env({ENV_TOKEN: "\u0100x"})
