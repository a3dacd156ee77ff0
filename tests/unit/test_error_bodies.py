"""How an answer's body is read: the error shapes, and the two list answers, row by row.

`error_of` reads the shapes the official SDK reads, in its order; the list readers
give a page or an ApiError for any answer at all (Hypothesis throws arbitrary JSON
at them, as test_answers_fuzz does at the three other calls).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cloud.answers import (
    MAX_BODY_BYTES,
    MAX_LIST_BODY_BYTES,
    Answer,
    ServerChanges,
    ServerPage,
    ServerView,
    answer_of,
    error_of,
    server_changes_outcome,
    server_page_outcome,
)
from orchestrator.errors import ApiError, BadResponse

WHERE = "https://ecs.example/v1/p/cloudservers/detail"
SERVER = "00000000-0000-4000-8000-000000000001"
OTHER = "00000000-0000-4000-8000-000000000002"
GW = "APIGW.0308"


@pytest.mark.parametrize(
    ("payload", "read"),
    [
        # The API gateway's flat shape.
        ({"error_code": GW, "error_msg": "throttled", "request_id": "x"}, (GW, "throttled")),
        ({"error_code": "APIGW.0301", "error_msg": None}, ("APIGW.0301", "")),
        # Flat code and message; a number is a code too.
        ({"code": "Ecs.0114", "message": "gone"}, ("Ecs.0114", "gone")),
        ({"code": 400, "message": "bad"}, ("400", "bad")),
        # The ECS service's nested shape, and Nova's fault names (any key).
        ({"error": {"code": "Ecs.0605", "message": "locked"}}, ("Ecs.0605", "locked")),
        ({"error": {"message": "no code"}}, ("", "no code")),
        ({"badRequest": {"code": 400, "message": "no marker"}}, ("400", "no marker")),
        ({"itemNotFound": {"code": 404, "message": "not found"}}, ("404", "not found")),
        # The SDK's order: the flat gateway shape first.
        ({"error_code": GW, "error_msg": "a", "error": {"code": "X.1", "message": "b"}}, (GW, "a")),
        # Text is cleaned like any text from an answer.
        ({"error_code": "Ecs.\x1b[31m", "error_msg": "a\x00b"}, ("Ecs.\\x1b[31m", "a\\x00b")),
    ],
)
def test_error_shapes_are_read(payload: dict[str, Any], read: tuple[str, str]) -> None:
    assert error_of(payload) == read


@pytest.mark.parametrize(
    "payload",
    [
        # A job's own outcome: error_code without error_msg.
        {"status": "FAIL", "error_code": "Ecs.0101", "fail_reason": "disk"},
        {"status": "SUCCESS", "error_code": None, "fail_reason": None},
        {"error_code": "", "error_msg": "empty code"},
        {"code": True, "message": "a bool is no code"},
        {"code": "Ecs.0114"},  # no message
        # Answers that carry no error: a server (its fault is two levels down), a list.
        {"server": {"id": SERVER, "fault": {"code": 500, "message": "x"}}},
        {"count": 1, "servers": [{"code": "x", "message": "y"}]},
        {"job_id": "abc"},
        [],
        "text",
        None,
    ],
)
def test_what_is_no_error_body(payload: Any) -> None:
    assert error_of(payload) is None


@pytest.mark.parametrize(
    ("status", "payload", "throttled", "auth_refused"),
    [
        (429, None, True, False),
        (429, {"error_code": "APIGW.0308", "error_msg": "x"}, True, False),
        (400, {"code": "APIGW.0308", "message": "x"}, True, False),
        (200, {"overLimit": {"code": "APIGW.0308", "message": "x"}}, True, False),
        (202, {"error_code": "Common.0024", "error_msg": "x"}, True, False),
        (200, {"error_code": "Common.0024", "error_msg": "x"}, False, False),
        (401, None, False, True),
        (403, {"error_code": "APIGW.0307", "error_msg": "x"}, False, True),
        (400, {"error": {"code": "APIGW.0301", "message": "x"}}, False, True),
        (403, {"error": {"code": "Pdp.0001", "message": "x"}}, False, False),
    ],
)
def test_throttled_and_refused_credentials_by_status_or_code(
    status: int, payload: Any, throttled: bool, auth_refused: bool
) -> None:
    answer = Answer(status, {}, payload)
    assert (answer.throttled, answer.auth_refused) == (throttled, auth_refused)


def server(server_id: str = SERVER, **fields: Any) -> dict[str, Any]:
    return {"id": server_id, "status": "SHUTOFF", "updated": "2027-01-15T08:00:00Z", **fields}


def v1(payload: Any, page: int = 1, limit: int = 2, status: int = 200) -> ServerPage:
    return server_page_outcome(Answer(status, {}, payload), page, limit, WHERE)


def nova(payload: Any, limit: int = 2, status: int = 200) -> ServerChanges:
    return server_changes_outcome(Answer(status, {}, payload), limit, WHERE)


def test_a_v1_page_and_which_page_comes_next() -> None:
    first = v1({"count": 3, "servers": [server(), server(OTHER)]})
    assert [s.server_id for s in first.servers] == [SERVER, OTHER]
    assert first.servers[0] == ServerView(
        SERVER, "SHUTOFF", None, None, None, "2027-01-15T08:00:00Z"
    )
    assert (first.count, first.next_page) == (3, 2)
    assert v1({"count": 3, "servers": [server()]}, page=2).next_page is None
    assert v1({"count": 4, "servers": [server(), server(OTHER)]}, page=2).next_page is None
    assert v1({"count": 0, "servers": []}).next_page is None
    # A count that says more while the page is empty: no endless paging.
    assert v1({"count": 9, "servers": []}, page=3).next_page is None


@pytest.mark.parametrize(
    "payload",
    [
        {"servers": []},  # no count
        {"count": -1, "servers": []},
        {"count": True, "servers": []},
        {"count": "2", "servers": []},
        {"count": 1},  # no servers
        {"count": 1, "servers": {"id": SERVER}},
        {"count": 1, "servers": [{"status": "ACTIVE"}]},  # a server without an id
        {"count": 1, "servers": [server("../../x")]},
        {"count": 3, "servers": [server(), server(OTHER), server()]},  # more than the limit
        {"count": 1, "servers": [server()], "error_code": "X.1", "error_msg": ""},
    ],
)
def test_unusable_v1_pages_are_bad_answers(payload: Any) -> None:
    with pytest.raises(ApiError) as info:
        v1(payload)
    assert isinstance(info.value, BadResponse) or info.value.code == "X.1"


def test_a_nova_page_and_its_next_marker() -> None:
    link = {
        "rel": "next",
        "href": f"https://ecs.example/v2.1/p/servers/detail?limit=2&marker={OTHER}",
    }
    page = nova({"servers": [server(), server(OTHER)], "servers_links": [link]})
    assert ([s.server_id for s in page.servers], page.next_marker) == ([SERVER, OTHER], OTHER)
    # The link's marker is taken, never its address: another host changes nothing.
    elsewhere = {"rel": "next", "href": f"https://203.0.113.9/x?marker={SERVER}"}
    assert nova({"servers": [server()], "servers_links": [elsewhere]}).next_marker == SERVER
    # No next link: the last page (whether full or not, when the service gives links).
    assert nova({"servers": [server()]}).next_marker is None
    assert nova({"servers": [], "servers_links": []}).next_marker is None
    only_self = [{"rel": "self", "href": "https://ecs.example/x?marker=abc"}]
    assert (
        nova({"servers": [server(), server(OTHER)], "servers_links": only_self}).next_marker is None
    )
    # A full page from a service that gives no links at all: go on after its last server.
    assert nova({"servers": [server(), server(OTHER)]}).next_marker == OTHER


@pytest.mark.parametrize(
    "links",
    [
        "next",
        [{"rel": "next"}],
        [{"rel": "next", "href": "https://ecs.example/x?limit=2"}],
        [{"rel": "next", "href": "https://ecs.example/x?marker=a%20b"}],
        [{"rel": "next", "href": "http://[::1/x?marker=abc"}],
        [{"rel": "next", "href": 12}],
    ],
)
def test_an_unusable_next_link_is_a_bad_answer(links: Any) -> None:
    with pytest.raises(BadResponse):
        nova({"servers": [server()], "servers_links": links})


def test_a_list_answer_may_be_larger_than_a_single_read() -> None:
    big = json.dumps({"count": 0, "servers": [], "pad": "x" * MAX_BODY_BYTES}).encode()
    with pytest.raises(BadResponse):
        answer_of("server", 200, {}, big)
    assert answer_of("list", 200, {}, big).payload["count"] == 0  # within the list's cap
    with pytest.raises(BadResponse):
        answer_of("list", 200, {}, b" " * (MAX_LIST_BODY_BYTES + 1))


# -- any answer at all ----------------------------------------------------------------------

texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
servers = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.sampled_from([SERVER, OTHER, "", "a b"]) | json_values,
            "status": json_values,
            "updated": json_values,
            "OS-EXT-STS:task_state": json_values,
            "locked": json_values,
        },
    )
    | json_values,
    max_size=4,
)
list_answers = st.fixed_dictionaries(
    {},
    optional={
        "count": st.integers(-2, 10) | json_values,
        "servers": servers | json_values,
        "servers_links": st.lists(
            st.fixed_dictionaries(
                {}, optional={"rel": st.sampled_from(["next", "self"]) | json_values, "href": texts}
            )
            | json_values,
            max_size=2,
        )
        | json_values,
        "error_code": json_values,
        "error_msg": json_values,
        "code": json_values,
        "message": json_values,
    },
)


def clean(text: str | None) -> bool:
    return text is None or not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from([200, 202, 400, 401, 404, 429, 500]),
    payload=list_answers | json_values,
    limit=st.integers(1, 3),
)
def test_any_list_answer_is_a_page_or_an_api_error(status: int, payload: Any, limit: int) -> None:
    raw = json.dumps(payload, allow_nan=True).encode("utf-8", "surrogatepass")
    answer = answer_of("list", status, {}, raw)
    for read in (
        lambda: v1(answer.payload, 1, limit, status),
        lambda: nova(answer.payload, limit, status),
    ):
        try:
            result = read()
        except ApiError as exc:
            assert clean(str(exc)) and clean(exc.code)
            continue
        assert len(result.servers) <= limit
        for view in result.servers:
            assert all(
                clean(v) for v in (view.server_id, view.status, view.updated, view.task_state)
            )
        if isinstance(result, ServerChanges) and result.next_marker is not None:
            assert result.next_marker.isascii() and result.next_marker.isprintable()
