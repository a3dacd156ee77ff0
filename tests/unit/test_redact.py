"""The secret registry: what is blanked, in which forms, and where it stands alone."""

from __future__ import annotations

import json

import pytest

from orchestrator import redact
from orchestrator.errors import ApiError, ProjectRefused, UsageError


def test_a_secret_of_four_or_more_characters_is_blanked_everywhere() -> None:
    redact.register("s3cr")
    assert redact.blank("xs3crx s3cr") == "x***x ***"


def test_json_escaped_forms_are_blanked_too() -> None:
    secret = 'to"k\\en-ü-1'
    redact.register(secret)
    for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
        assert redact.blank(f"<{form}>") == "<***>"


@pytest.mark.parametrize(
    ("text", "blanked"),
    [
        ("ab", "***"),
        ("password 'ab' refused", "password '***' refused"),
        ("token=ab;", "token=***;"),
        ("about cabs and tabs", "about cabs and tabs"),  # inside words: left, not revealed
        ("ab_1 1ab", "ab_1 1ab"),
    ],
)
def test_a_short_secret_is_blanked_only_where_it_stands_alone(text: str, blanked: str) -> None:
    redact.register("ab")
    assert redact.blank(text) == blanked


def test_the_longest_secret_goes_whole() -> None:
    redact.register("abcd", "abcdefgh")
    assert redact.blank("abcdefgh") == "***"


def test_errors_are_blanked_when_made_with_secrets_registered_later() -> None:
    assert str(ApiError("tok-0815 refused")) == "tok-0815 refused"
    redact.register("tok-0815")
    refused = ProjectRefused("HTTP 403 Pdp.0001: tok-0815 refused", code="tok-0815")
    assert (str(refused), refused.code) == ("HTTP 403 Pdp.0001: *** refused", "***")
    assert str(UsageError("uses tok-0815")) == "uses ***"


def test_nothing_registered_changes_nothing() -> None:
    redact.register("", None)
    assert not redact.any_registered()
    assert redact.blank("anything ab") == "anything ab"
