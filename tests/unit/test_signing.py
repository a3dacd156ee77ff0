"""AK/SK signing, pinned to the official SDK's test vectors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.cloud import signing

VECTORS_PATH = Path("/work/shared/reference/aksk-test-vectors.json")
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
AK: str = VECTORS["access_key"]
SK: str = VECTORS["secret_key"]


def _request(vector: dict[str, Any]) -> dict[str, Any]:
    """The vector as keyword arguments of `authorization`, Host being the vector's host."""
    return {
        "method": vector["method"],
        "path": vector["path"],
        "query": [tuple(pair) for pair in vector["query"]],
        "headers": {**vector["headers_in"], "Host": vector["host"]},
        "body": vector["body"].encode(),
    }


def _signed(vector: dict[str, Any]) -> dict[str, Any]:
    """The vector's request with the SDK's Authorization header on it."""
    request = _request(vector)
    request["headers"] = {**request["headers"], "Authorization": vector["authorization"]}
    return request


VECTOR_IDS = [v["method"] for v in VECTORS["vectors"]]


def test_there_are_vectors_with_and_without_body() -> None:
    bodies = [bool(v["body"]) for v in VECTORS["vectors"]]
    assert True in bodies and False in bodies


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=VECTOR_IDS)
def test_authorization_reproduces_the_sdk(vector: dict[str, Any]) -> None:
    assert signing.authorization(AK, SK, **_request(vector)) == vector["authorization"]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=VECTOR_IDS)
def test_verify_accepts_the_sdk_signature(vector: dict[str, Any]) -> None:
    assert signing.verify(AK, SK, **_signed(vector)) is True


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=VECTOR_IDS)
def test_verify_is_case_insensitive_on_header_names(vector: dict[str, Any]) -> None:
    request = _signed(vector)
    request["headers"] = {name.lower(): value for name, value in request["headers"].items()}
    assert signing.verify(AK, SK, **request) is True


def _tamper_body(r: dict[str, Any]) -> None:
    r["body"] = r["body"] + b" "


def _tamper_path(r: dict[str, Any]) -> None:
    r["path"] = r["path"].replace("0123456789abcdef", "0123456789abcdee", 1)


def _tamper_method(r: dict[str, Any]) -> None:
    r["method"] = "PUT"


def _tamper_query(r: dict[str, Any]) -> None:
    r["query"] = [("limit", "1")]


def _tamper_project_header(r: dict[str, Any]) -> None:
    r["headers"]["X-Project-Id"] = "f" * 32


def _tamper_host(r: dict[str, Any]) -> None:
    r["headers"]["Host"] = "ecs.eu-nl.otc.t-systems.com"


def _tamper_date(r: dict[str, Any]) -> None:
    r["headers"]["X-Sdk-Date"] = "20261126T020002Z"


def _drop_date(r: dict[str, Any]) -> None:
    del r["headers"]["X-Sdk-Date"]


def _drop_host(r: dict[str, Any]) -> None:
    del r["headers"]["Host"]


def _other_access_key_in_header(r: dict[str, Any]) -> None:
    r["headers"]["Authorization"] = r["headers"]["Authorization"].replace(
        f"Access={AK}", "Access=HPUOTHERACCESSKEY000"
    )


def _flip_signature(r: dict[str, Any]) -> None:
    value = r["headers"]["Authorization"]
    last = value[-1]
    r["headers"]["Authorization"] = value[:-1] + ("0" if last != "0" else "1")


def _other_scheme(r: dict[str, Any]) -> None:
    r["headers"]["Authorization"] = r["headers"]["Authorization"].replace(
        "SDK-HMAC-SHA256", "AWS4-HMAC-SHA256", 1
    )


def _drop_authorization(r: dict[str, Any]) -> None:
    del r["headers"]["Authorization"]


def _unsign_date(r: dict[str, Any]) -> None:
    # A signature that does not cover X-Sdk-Date could be replayed forever.
    r["headers"]["Authorization"] = r["headers"]["Authorization"].replace(";x-sdk-date", "")


TAMPERINGS = [
    _tamper_body,
    _tamper_path,
    _tamper_method,
    _tamper_query,
    _tamper_project_header,
    _tamper_host,
    _tamper_date,
    _drop_date,
    _drop_host,
    _other_access_key_in_header,
    _flip_signature,
    _other_scheme,
    _drop_authorization,
    _unsign_date,
]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=VECTOR_IDS)
@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__.strip("_") for t in TAMPERINGS])
def test_verify_rejects_a_changed_request(vector: dict[str, Any], tamper: Any) -> None:
    request = _signed(vector)
    request["headers"] = dict(request["headers"])
    tamper(request)
    assert signing.verify(AK, SK, **request) is False


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=VECTOR_IDS)
def test_verify_rejects_another_key(vector: dict[str, Any]) -> None:
    request = _signed(vector)
    assert signing.verify("HPUOTHERACCESSKEY000", SK, **request) is False
    assert signing.verify(AK, SK + "x", **request) is False


def test_unsigned_extra_headers_do_not_matter() -> None:
    # Proxies add headers (User-Agent, Content-Length...): only the signed ones count.
    request = _signed(VECTORS["vectors"][0])
    request["headers"] = {**request["headers"], "User-Agent": "x", "Content-Length": "90"}
    assert signing.verify(AK, SK, **request) is True


def test_signed_header_names_sorted_lowercase_without_underscores() -> None:
    headers = {"X-Sdk-Date": "d", "Host": "h", "content-type": "c", "X_Custom": "u"}
    assert signing.signed_header_names(headers) == ["content-type", "host", "x-sdk-date"]


def test_header_values_are_trimmed_in_the_canonical_request() -> None:
    vector = VECTORS["vectors"][1]
    request = _request(vector)
    clean = signing.authorization(AK, SK, **request)
    project = request["headers"]["X-Project-Id"]
    request["headers"] = {**request["headers"], "X-Project-Id": f"  {project}\t "}
    assert signing.authorization(AK, SK, **request) == clean == vector["authorization"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/p/jobs/j", "/v1/p/jobs/j/"),
        ("/v1/p/jobs/j/", "/v1/p/jobs/j/"),
        ("/", "/"),
        ("/a b/c", "/a%20b/c/"),
        ("/a~b/c-d_e.f", "/a~b/c-d_e.f/"),
        ("/x:y/ü", "/x%3Ay/%C3%BC/"),
        ("/a+b/c=d&e", "/a%2Bb/c%3Dd%26e/"),
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert signing.canonical_uri(path) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ([], ""),
        ([("b", "2"), ("a", "1")], "a=1&b=2"),
        ([("a", "2"), ("a", "1"), ("A", "3")], "A=3&a=1&a=2"),
        ([("k y", "v/w"), ("t~", "é")], "k%20y=v%2Fw&t~=%C3%A9"),
        ([("limit", ""), ("marker", "x")], "limit=&marker=x"),
    ],
)
def test_canonical_query_sorts_and_encodes(query: list[tuple[str, str]], expected: str) -> None:
    assert signing.canonical_query(query) == expected


def test_query_order_does_not_change_the_signature() -> None:
    request = _request(VECTORS["vectors"][1])
    request["query"] = [("offset", "1"), ("limit", "10")]
    first = signing.authorization(AK, SK, **request)
    request["query"] = [("limit", "10"), ("offset", "1")]
    assert signing.authorization(AK, SK, **request) == first


def test_sdk_date_round_trip_and_utc() -> None:
    moment = datetime(2026, 11, 26, 3, 0, 5, 999_000, tzinfo=timezone(timedelta(hours=1)))
    assert signing.sdk_date(moment) == "20261126T020005Z"
    assert signing.parse_sdk_date("20261126T020005Z") == datetime(2026, 11, 26, 2, 0, 5, tzinfo=UTC)


def test_sdk_date_is_formatted_once_per_second_and_right_at_each_second() -> None:
    # The date is cached per second: within a second the same text, the next second
    # a new one, and a moment given in another zone is still written in UTC.
    base = datetime(2026, 11, 26, 23, 59, 59, 0, tzinfo=UTC)
    seen = [signing.sdk_date(base + timedelta(microseconds=us)) for us in (0, 1, 500_000, 999_999)]
    assert seen == ["20261126T235959Z"] * 4
    assert signing.sdk_date(base + timedelta(seconds=1)) == "20261127T000000Z"
    berlin = (base + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=1)))
    assert signing.sdk_date(berlin) == "20261127T000000Z"
    assert signing.sdk_date(base) == "20261126T235959Z"  # going back works too


@pytest.mark.parametrize(
    "path", ["/v1/0a1b/cloudservers/9f3c-77aa/reinstallos", "/v1/p/jobs/j-1.2~3_4/", "/"]
)
def test_plain_paths_take_the_fast_way_to_the_same_encoding(path: str) -> None:
    encoded = "/".join(signing._encode(seg) for seg in path.split("/"))
    assert signing.canonical_uri(path) == (encoded if encoded.endswith("/") else encoded + "/")


@pytest.mark.parametrize("bad", ["", "2026-11-26T02:00:05Z", "20261126T020005", "20261326T020005Z"])
def test_parse_sdk_date_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        signing.parse_sdk_date(bad)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Basic abc",
        "SDK-HMAC-SHA256 Access=a, SignedHeaders=host",
        "SDK-HMAC-SHA256 garbage",
    ],
)
def test_parse_authorization_refuses_malformed(value: str) -> None:
    assert signing.parse_authorization(value) is None


def test_parse_authorization_splits_the_sdk_header() -> None:
    vector = VECTORS["vectors"][0]
    access, signed, sig = signing.parse_authorization(vector["authorization"]) or ("", [], "")
    assert access == AK
    assert signed == ["content-type", "host", "x-project-id", "x-sdk-date"]
    assert sig == vector["authorization"].rsplit("Signature=", 1)[1]


# -- Signer: the client's per-request fast path must be `authorization`, byte for byte --

NO_QUERY = [v for v in VECTORS["vectors"] if not v["query"]]


def test_some_vectors_have_no_query() -> None:
    assert NO_QUERY


@pytest.mark.parametrize("vector", NO_QUERY, ids=[v["method"] for v in NO_QUERY])
def test_signer_reproduces_the_sdk(vector: dict[str, Any]) -> None:
    request = _request(vector)
    signer = signing.Signer(AK, SK)
    for _ in range(2):  # the second call takes the plan worked out by the first
        value = signer.authorization(
            request["method"], request["path"], request["headers"], request["body"]
        )
        assert value == vector["authorization"]


_NAMES = st.text(alphabet="AbCdxX-_", min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    extra=st.dictionaries(_NAMES, st.text(alphabet=" aZ9:/-", max_size=8), max_size=5),
    method=st.sampled_from(["GET", "POST", "get"]),
    path=st.sampled_from(["/v1/p/cloudservers/s/reinstallos", "/v1/p/jobs/j/", "/a b/ü"]),
    body=st.binary(max_size=20),
    date_name=st.sampled_from(["X-Sdk-Date", "x-sdk-date"]),
    # Any key: the Signer's own HMAC hashes one longer than SHA-256's 64-byte block.
    secret=st.one_of(st.just(SK), st.text(min_size=1, max_size=100)),
)
def test_signer_equals_authorization(
    extra: dict[str, str], method: str, path: str, body: bytes, date_name: str, secret: str
) -> None:
    headers = {**extra, "Host": "h:1", date_name: "20261126T020000Z"}
    signer = signing.Signer(AK, secret)
    expected = signing.authorization(AK, secret, method, path, [], headers, body)
    assert signer.authorization(method, path, headers, body) == expected
    assert signer.authorization(method, path, headers, body) == expected


def test_one_signer_over_changing_header_values_and_a_full_cache() -> None:
    # The canonical header lines are kept by value: every new date, project or host
    # must sign as `authorization` does, also after the cache was cleared.
    signer = signing.Signer(AK, SK)
    for n in range(signing._LINES_CAP + 50):
        headers = {
            "Content-Type": "application/json",
            "Host": f"ecs.example:{n % 7}",
            "X-Project-Id": f"project-{n % 13}",
            "X-Sdk-Date": f"20261126T02{n // 60 % 60:02d}{n % 60:02d}Z",
        }
        path = f"/v1/project-{n % 13}/jobs/job-{n}"
        expected = signing.authorization(AK, SK, "GET", path, [], headers, b"")
        assert signer.authorization("GET", path, headers, b"") == expected, n


# -- a query (the list calls): the fast path signs it as `authorization` does ------------


@settings(max_examples=200, deadline=None)
@given(
    query=st.lists(
        st.tuples(
            st.sampled_from(["offset", "limit", "status", "changes-since", "marker"]),
            st.text(alphabet="aZ09:-+ T/", max_size=12),
        ),
        max_size=5,
    )
)
def test_signer_with_a_query_equals_authorization(query: list[tuple[str, str]]) -> None:
    headers = {"Host": "h:1", "X-Sdk-Date": "20261126T020000Z", "X-Project-Id": "p"}
    path = "/v2.1/p/servers/detail"
    expected = signing.authorization(AK, SK, "GET", path, query, headers, b"")
    assert signing.Signer(AK, SK).authorization("GET", path, headers, b"", query) == expected
    assert signing.verify(AK, SK, "GET", path, query, {**headers, "Authorization": expected}, b"")
