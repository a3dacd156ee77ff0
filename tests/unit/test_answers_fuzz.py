"""Any answer at all: the classification gives a result or an ApiError, and clean text.

`orchestrator.answers.classify` is what the client does with status, headers and
raw body. Hypothesis throws arbitrary bytes and arbitrary JSON at it (nested far
past the recursion limit, lone surrogates, NUL and escapes, numbers Python will
not convert, every field of the wrong type), for each of the three calls. Nothing
but the project's ApiErrors may come out, and no string that comes out (a view's
field, an error's message or code) carries a control character or a surrogate.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import astuple
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import redact
from orchestrator.cloud.answers import (
    MAX_DEPTH,
    NOT_JSON,
    JobView,
    ServerView,
    classify,
    parse_body,
    retry_after,
    service_text,
)
from orchestrator.errors import ApiError, RetryLater

SERVER = "00000000-0000-4000-8000-000000000001"
JOB = "ff8080817d5e2e6a017d6b3b3b3b0001"
WHERE = "https://ecs.example/v1/p/x"

texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["Ecs.\udfff", "a\x00b", "\x1b[31mred", "\u202etxet", "\ud800", "Common.0024", "Ecs.0603"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
# The fields the classification reads, each given any value.
FIELDS = [
    "job_id", "status", "entities", "error_code", "fail_reason", "begin_time", "end_time",
    "error", "code", "message", "server",
]  # fmt: skip
SERVER_FIELDS = [
    "id", "status", "OS-EXT-STS:vm_state", "OS-EXT-STS:task_state", "OS-SRV-USG:launched_at",
    "updated", "locked", "OS-EXT-SRV-ATTR:root_device_name", "os-extended-volumes:volumes_attached",
]  # fmt: skip
shaped = st.fixed_dictionaries(
    {},
    optional={
        **{f: json_values for f in FIELDS},
        "status": st.sampled_from(["INIT", "RUNNING", "SUCCESS", "FAIL"]) | json_values,
        "error": st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values})
        | json_values,
        "entities": st.fixed_dictionaries(
            {}, optional={"server_id": json_values, "sub_jobs": json_values}
        )
        | json_values,
        "server": st.fixed_dictionaries({}, optional=dict.fromkeys(SERVER_FIELDS, json_values))
        | json_values,
    },
)


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "shaped", "deep", "deep field", "huge number"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return encode(draw(json_values))
    if kind == "shaped":
        return encode(draw(shaped))
    depth = draw(st.integers(1, 3000))
    nested = "[" * depth + "]" * depth
    if kind == "deep":
        return nested.encode()
    if kind == "deep field":
        field = draw(st.sampled_from(FIELDS))
        return encode(draw(shaped))[:-1] + f'{{"x": 1, "{field}": {nested}}}'.encode()[1:]
    digits = "9" * draw(st.integers(1, 10_000))
    return f'{{"job_id": {digits}, "status": {digits}, "error_code": {digits}}}'.encode()


statuses = st.sampled_from([200, 201, 202, 204, 400, 401, 403, 404, 429, 500, 501, 503]) | (
    st.integers(0, 999)
)
headers = st.dictionaries(
    st.sampled_from(["Retry-After", "retry-after", "Content-Type", "X-Other"]) | texts,
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-5", "3", "", "x"]) | texts,
    max_size=3,
)


def clean(text: str | None) -> bool:
    return text is None or not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


@pytest.mark.parametrize("kind", ["reinstall", "job", "server"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=statuses, answer_headers=headers, raw=bodies())
def test_any_answer_is_a_result_or_an_api_error(
    kind: str, status: int, answer_headers: dict[str, str], raw: bytes
) -> None:
    subject = JOB if kind == "job" else SERVER
    try:
        result = classify(kind, status, answer_headers, raw, subject, WHERE)
    except ApiError as exc:
        assert clean(str(exc)), str(exc)
        assert clean(exc.code), exc.code
        if isinstance(exc, RetryLater) and exc.retry_after is not None:
            assert 0.0 <= exc.retry_after <= 300.0
        return
    if kind == "reinstall":
        assert isinstance(result, str) and result.isascii() and result.isprintable()
    else:
        assert isinstance(result, JobView if kind == "job" else ServerView)
        for value in astuple(result):
            assert not isinstance(value, str) or clean(value), value


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(MAX_DEPTH + 1, 5000))
def test_json_nested_past_the_limit_is_not_json(depth: int) -> None:
    assert parse_body(b"[" * depth + b"]" * depth) is NOT_JSON
    assert parse_body(b'{"a": ' * depth + b"1" + b"}" * depth) is NOT_JSON


def test_json_within_the_limit_is_kept() -> None:
    body = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_body(body) == json.loads(body)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("nan", None), ("inf", 300.0), ("-inf", 0.0), ("1e999", 300.0), ("12", 12.0), ("x", None)],
)
def test_retry_after_is_a_finite_bounded_delay_or_none(value: str, seconds: float | None) -> None:
    assert retry_after({"Retry-After": value}) == seconds


def test_service_text_is_cleaned_blanked_then_cut() -> None:
    redact.register("tok-SECRET-1234")
    text = "a\x00b\tc\x1b[31m\u202e\udfff: tok-SECRET-1234 tail"
    # Controls shown as escapes (still readable), the surrogate replaced, the secret blanked.
    assert service_text(text, 1000) == "a\\x00b c\\x1b[31m\\u202e\ufffd: *** tail"
    # Cut after blanking: never half a secret.
    assert service_text("x" * 10 + "tok-SECRET-1234", 14) == "x" * 10 + "***"
