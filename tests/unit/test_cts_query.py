"""Where and how the audit trail (CTS) is asked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.cloud.queries import cts_base, trace_query


@pytest.mark.parametrize(
    ("ecs", "cts"),
    [
        ("https://ecs.eu-de.otc.t-systems.com", "https://cts.eu-de.otc.t-systems.com"),
        ("https://ecs.eu-ch2.sc.otc.t-systems.com", "https://cts.eu-ch2.sc.otc.t-systems.com"),
        (
            "https://ecs.ap-southeast-1.myhuaweicloud.com:443",
            "https://cts.ap-southeast-1.myhuaweicloud.com:443",
        ),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),  # one host serves both
        ("https://gateway.example/ecs", "https://gateway.example/ecs"),
    ],
)
def test_the_cts_endpoint_is_the_ecs_one_renamed(ecs: str, cts: str) -> None:
    assert cts_base(ecs) == cts


def test_the_trace_query_names_the_server_and_a_window_in_milliseconds() -> None:
    since = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    query = dict(trace_query("01234567-89ab-cdef-0123-456789abcdef", since))
    assert query["trace_type"] == "system" and query["service_type"] == "ECS"
    assert query["resource_id"] == "01234567-89ab-cdef-0123-456789abcdef"
    assert query["from"] == "1796522400000" and len(query["to"]) == 13
    assert int(query["to"]) > int(query["from"]) and query["limit"] == "200"
    with pytest.raises(ValueError, match="timezone-aware"):
        trace_query("s1", datetime(2026, 12, 6, 2, 0))
