"""The limit the API gateway names in its throttling message, read from hostile text.

The gateway's 429 APIGW.0308 says which window was full ("... limit:20,time:1
minute"); adaptive pacing caps the API's rate by it for the rest of the run. So a
misread is a run paced by a number the service never said: only a plain, sane
statement counts, and any other text (huge numbers, other scripts' digits, look-alike
letters, no limit at all) is no limit, never an exception.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.cloud.answers import (
    MAX_STATED_CALLS,
    MAX_STATED_WINDOW,
    Answer,
    StatedLimit,
    stated_limit,
)

GATEWAY = "The throttling threshold has been reached: policy user over ratelimit,limit:{},time:{}"


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("1 minute", StatedLimit(20, 60)),
        ("1 second", StatedLimit(20, 1)),
        ("1 hour", StatedLimit(20, 3600)),
        ("1 day", StatedLimit(20, 86400)),
        ("10 seconds", StatedLimit(20, 10)),
        ("2 minutes", StatedLimit(20, 120)),
    ],
)
def test_the_gateways_message_names_calls_and_window(window: str, expected: StatedLimit) -> None:
    assert stated_limit(GATEWAY.format(20, window)) == expected


@pytest.mark.parametrize(
    "message",
    [
        "policy user over ratelimit,LIMIT:20,TIME:1 MINUTE",
        "limit : 20 , time : 1 minute",
        "limit:20,time:1minute",
        "(limit:20,time:1 minute)",
    ],
)
def test_case_and_spacing_do_not_matter(message: str) -> None:
    assert stated_limit(message) == StatedLimit(20, 60)


@pytest.mark.parametrize(
    "message",
    [
        "",
        "The throttling threshold has been reached",
        "policy user over ratelimit",
        "limit:20",  # no window
        "limit:20,time:1",  # no unit
        "limit:20,time:1 fortnight",
        "limit:20,time:1 minutely",
        "sublimit:20,time:1 minute",  # not the word "limit"
        "limit:-5,time:1 minute",
        "limit:2.5,time:1 minute",
        "limit:0x10,time:1 minute",
    ],
)
def test_a_message_without_a_limit_names_none(message: str) -> None:
    assert stated_limit(message) is None


@pytest.mark.parametrize(
    "message",
    [
        GATEWAY.format(0, "1 minute"),  # no calls at all: not a limit to pace by
        GATEWAY.format(MAX_STATED_CALLS + 1, "1 minute"),
        GATEWAY.format(999_999_999, "1 minute"),
        GATEWAY.format("9" * 10, "1 minute"),  # more digits than any limit has
        GATEWAY.format("9" * 5000, "1 minute"),
        GATEWAY.format(20, "0 minute"),
        GATEWAY.format(20, "2 days"),  # longer than a day
        GATEWAY.format(20, "9999 hours"),
        GATEWAY.format(20, "99999 seconds"),
        GATEWAY.format(20, "1" + "0" * 400 + " seconds"),
    ],
)
def test_a_limit_out_of_all_sense_is_no_limit(message: str) -> None:
    assert stated_limit(message) is None


@pytest.mark.parametrize(
    "message",
    [
        "limit:\u0662\u0660,time:1 minute",  # Arabic-Indic 20: int() would read it
        "limit:\uff12\uff10,time:1 minute",  # fullwidth 20
        "limit:\u0968\u0966,time:1 minute",  # Devanagari 20
        "limit:20,time:\u0661 minute",  # Arabic-Indic 1
        "limit:2\u0660,time:1 minute",  # a foreign digit inside an ASCII number
        "limit:20,time:1 \u017fecond",  # long s: "second" only under Unicode case folding
        "\u0131imit:20,time:1 minute",  # dotless i
        "limit\uff1a20,time:1 minute",  # fullwidth colon
        "limit:20\u200b,time:1 minute",  # a zero-width space
    ],
)
def test_other_scripts_and_look_alikes_are_no_limit(message: str) -> None:
    assert int("\u0662\u0660") == 20  # what a reader built on int() alone would take
    assert stated_limit(message) is None


def test_the_first_limit_named_counts() -> None:
    message = "limit:20,time:1 minute; limit:5,time:1 second"
    assert stated_limit(message) == StatedLimit(20, 60)
    # A nonsense first statement does not hide a sane one after it.
    assert stated_limit("limit:99999999999,time:1 minute limit:7,time:1 second") == (7, 1)


def test_only_the_head_of_a_long_message_is_read() -> None:
    assert stated_limit(" " * 990 + "limit:20,time:1 minute") is None
    assert stated_limit(" " * 900 + "limit:20,time:1 minute") == StatedLimit(20, 60)
    # Text built to make a backtracking pattern crawl is read in one linear pass.
    assert stated_limit(("limit:" + "1" * 9 + " " * 50) * 100_000) is None
    assert stated_limit("limit: " + " " * 10_000_000 + "20,time:1 minute") is None


@given(st.text(max_size=300))
def test_any_text_gives_a_sane_limit_or_none(message: str) -> None:
    limit = stated_limit(message)
    assert limit is None or (
        1 <= limit.calls <= MAX_STATED_CALLS and 1 <= limit.seconds <= MAX_STATED_WINDOW
    )


@given(
    st.integers(min_value=1, max_value=MAX_STATED_CALLS),
    st.sampled_from([("second", 1), ("minute", 60), ("hour", 3600)]),
    st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=40),
)
def test_any_sane_limit_is_read_back(calls: int, unit: tuple[str, int], prefix: str) -> None:
    name, seconds = unit
    message = f"{prefix} limit:{calls},time:1 {name}"
    assert stated_limit(message) == StatedLimit(calls, seconds)


def _answer(status: int, payload: object) -> Answer:
    return Answer(status=status, headers={}, payload=payload)


def test_a_throttling_answer_carries_its_limit_in_any_body_shape() -> None:
    text = GATEWAY.format(30, "1 minute")
    for payload in (
        {"error_code": "APIGW.0308", "error_msg": text, "request_id": "r-1"},
        {"code": "APIGW.0308", "message": text},
        {"error": {"code": "APIGW.0308", "message": text}},
    ):
        assert _answer(429, payload).stated_limit == StatedLimit(30, 60)
        # The gateway's code is throttling whatever the status says.
        assert _answer(400, payload).stated_limit == StatedLimit(30, 60)


def test_only_a_throttling_answer_states_a_limit() -> None:
    text = GATEWAY.format(30, "1 minute")
    # The same words in an answer that is no throttling are no instruction.
    assert _answer(400, {"error_code": "Ecs.0005", "error_msg": text}).stated_limit is None
    assert _answer(200, {"job_id": "j", "note": text}).stated_limit is None
    # Throttling that names no limit: AIMD alone.
    assert _answer(429, {"error_code": "Common.1503", "error_msg": "slow"}).stated_limit is None
    assert _answer(429, None).stated_limit is None
    assert _answer(202, {"error": {"code": "Common.0024", "message": "busy"}}).stated_limit is None
