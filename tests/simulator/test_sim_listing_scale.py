"""The list APIs at fleet scale: a page costs the views of its own servers, not of the
whole project, and a marker is found without a walk of the list; the answers are the
same as the full computation gives."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.simulator import listing
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.errors import NovaFault
from orchestrator.simulator.fleet import Server, View, traits_for

PROJECT = "0" * 32
NOW = 1.9e9  # after every server's `updated` (launched within a year of the epoch base)


@pytest.fixture
def servers() -> tuple[Server, ...]:
    config = SimulatorConfig()
    made = []
    for n in range(3000):
        server_id = str(uuid.UUID(int=n + 1))
        made.append(Server.new(PROJECT, server_id, traits_for(config, server_id)))
    return tuple(sorted(made, key=lambda s: (s.traits.created, s.server_id), reverse=True))


@pytest.fixture
def views(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The server IDs whose view was computed, in order."""
    made: list[str] = []
    original = Server.view

    def counted(self: Server, now: float) -> View:
        made.append(self.server_id)
        return original(self, now)

    monkeypatch.setattr(Server, "view", counted)
    yield made


def ids(answer: dict[str, Any]) -> list[str]:
    return [server["id"] for server in answer["servers"]]


def test_an_unfiltered_v1_page_makes_only_its_own_views(
    servers: tuple[Server, ...], views: list[str]
) -> None:
    answer = listing.page_v1(servers, [("offset", "2"), ("limit", "1000")], NOW)
    assert answer["count"] == 3000
    assert ids(answer) == [s.server_id for s in servers[1000:2000]]
    assert views == ids(answer)  # a view per listed server, none for the other 2,000
    # The same page as a filter that keeps every server gives (which views them all).
    every = [("status", "ACTIVE"), ("status", "SHUTOFF")]
    filtered = listing.page_v1(servers, [("offset", "2"), ("limit", "1000"), *every], NOW)
    assert filtered == answer
    assert len(views) == 1000 + 3000


def test_changes_since_skips_servers_between_jobs_unchanged_since(
    servers: tuple[Server, ...], views: list[str]
) -> None:
    newest = max(s.updated for s in servers)
    since = [("changes-since", "2030-01-01T00:00:00Z")]
    assert newest < 1.8934848e9  # 2030-01-01: nothing changed since
    assert listing.page_nova(servers, since, NOW, "http://x/v2.1/p/servers/detail") == {
        "servers": []
    }
    assert views == []  # no server's view was needed to know that
    # A server changed since (as a job's end sets `updated`) is listed, with its view.
    servers[1500].updated = NOW
    answer = listing.page_nova(servers, since, NOW, "http://x/v2.1/p/servers/detail")
    assert ids(answer) == views == [servers[1500].server_id]


def test_a_marker_found_by_position_pages_as_the_walk_does(servers: tuple[Server, ...]) -> None:
    positions = {server.server_id: i for i, server in enumerate(servers)}
    url = "http://x/v2.1/p/servers/detail"
    for marker in (servers[0].server_id, servers[999].server_id, servers[-1].server_id):
        query = [("limit", "1000"), ("marker", marker)]
        walked = listing.page_nova(servers, query, NOW, url)
        assert listing.page_nova(servers, query, NOW, url, positions) == walked
    unknown = [("marker", str(uuid.UUID(int=10**9)))]
    for known in (None, positions):
        with pytest.raises(NovaFault, match="not found"):
            listing.page_nova(servers, unknown, NOW, url, known)
