"""The two list APIs: their query parameters, the status filter, and paging.

    GET /v1/{project_id}/cloudservers/detail?offset=PAGE&limit=N&status=S
        pages by number: `offset` is the page (1 first; 0 is 1 too), `count` the
        number of servers that match, over all pages
    GET /v2.1/{project_id}/servers/detail?changes-since=T&limit=N&marker=ID&status=S
        (and /v2/...) Nova's list: the page after the server `marker`, and a
        `servers_links` "next" link whenever the page is full; `changes-since`
        keeps the servers whose `updated` is at or after T (Nova compares `>=`)

Both list a project's servers newest first (`Fleet.listing`), each shown as the
single read shows it, and both compute every page afresh from the servers'
state at that moment, as a real service does: nothing holds a listing still
between two page reads. A server whose status changes can therefore move out
of a status filter (the servers after it move up a page, so a client paging by
number can miss one) or into it; a Nova marker is a position in the order,
which state changes do not move.

The status filter is Nova's (`task_and_vm_state_from_status`), which the v1
reference describes too: a status names vm_states, and a task-specific status
(REBUILD) a task state as well. So `status=SHUTOFF` also lists a stopped server
being rebuilt (shown as REBUILD), and `status=ACTIVE` a running one powering
off. A status no server here can have (BUILD, or a word that is no status)
lists nothing, as Nova does before microversion 2.38.

Pure functions of the query, the servers and the time; ApiFault (v1) or
NovaFault (Nova) for a parameter the service would refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from orchestrator.simulator.errors import ApiFault, NovaFault
from orchestrator.simulator.fleet import Server, View, server_fields

DEFAULT_LIMIT = 25  # "Each page contains 25 ECSs by default"
MAX_LIMIT = 1000  # "... and a maximum of 1,000 ECSs are returned"

# Nova's _STATE_MAP, for the vm_states and task states the simulator's servers
# have: the status a server shows, by vm_state, then task state (None: any other).
_STATE_MAP: dict[str, dict[str | None, str]] = {
    "active": {None: "ACTIVE", "rebuilding": "REBUILD"},
    "stopped": {None: "SHUTOFF", "rebuilding": "REBUILD"},
    "error": {None: "ERROR", "rebuilding": "REBUILD"},
}


@dataclass(frozen=True, slots=True)
class StatusFilter:
    """The servers a `status` query keeps: vm_state in `vm_states` and, unless any
    task state will do (`tasks` is None), task state in `tasks`."""

    vm_states: frozenset[str]
    tasks: frozenset[str | None] | None

    @classmethod
    def of(cls, statuses: Iterable[str]) -> StatusFilter:
        wanted = {status.upper() for status in statuses}
        vm_states: set[str] = set()
        tasks: set[str | None] = set()
        any_task = False
        for vm_state, by_task in _STATE_MAP.items():
            for task, status in by_task.items():
                if status in wanted:
                    vm_states.add(vm_state)
                    tasks.add(task)
                    any_task = any_task or task is None
        return cls(frozenset(vm_states), None if any_task else frozenset(tasks))

    def keeps(self, view: View) -> bool:
        if view.vm_state not in self.vm_states:
            return False
        return self.tasks is None or view.task_state in self.tasks


def _values(query: Sequence[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in query if key == name]


def _last(query: Sequence[tuple[str, str]], name: str) -> str | None:
    values = _values(query, name)
    return values[-1] if values else None


def _status_filter(query: Sequence[tuple[str, str]]) -> StatusFilter | None:
    statuses = _values(query, "status")
    return StatusFilter.of(statuses) if statuses else None


def _ecs_refusal(message: str) -> ApiFault:
    return ApiFault("Ecs.0005", message)


def _nova_refusal(message: str) -> ApiFault:
    return NovaFault(400, message)


def _whole(value: str | None, name: str, default: int, refusal: Callable[[str], ApiFault]) -> int:
    """A whole number >= 0 from the query, or the API's refusal naming the parameter."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise refusal(f"Parameter '{name}' must be a whole number >= 0.")
    return number


def _entries(
    servers: Sequence[Server], now: float, keep: StatusFilter | None, since: float | None
) -> Iterator[tuple[Server, View]]:
    """The servers that pass the filters, each with its view at `now`, in list order."""
    for server in servers:
        if (
            since is not None
            and server.updated < since
            and server.job is None
            and server.back_at is None
        ):
            # Between jobs a server shows its own `updated`: not changed since, and
            # its view (the costly part at a million servers) is not needed.
            continue
        view = server.view(now)
        if keep is not None and not keep.keeps(view):
            continue
        if since is not None and view.updated < since:
            continue
        yield server, view


def page_v1(
    servers: Sequence[Server], query: Sequence[tuple[str, str]], now: float
) -> dict[str, Any]:
    """The answer of the v1 list: `count` (all that match) and one page of `servers`."""
    page = max(_whole(_last(query, "offset"), "offset", 1, _ecs_refusal), 1)
    limit = _whole(_last(query, "limit"), "limit", DEFAULT_LIMIT, _ecs_refusal)
    if limit == 0:
        raise _ecs_refusal("Parameter 'limit' must be at least 1.")
    limit = min(limit, MAX_LIMIT)
    start = (page - 1) * limit
    keep = _status_filter(query)
    if keep is None:
        # Unfiltered, every server matches: only the page's own views are made (a
        # million-server project is paged without a million views per page).
        shown = [(server, server.view(now)) for server in servers[start : start + limit]]
        count = len(servers)
    else:
        matching = list(_entries(servers, now, keep, None))
        shown = matching[start : start + limit]
        count = len(matching)
    return {
        "count": count,
        "servers": [server_fields(server, now, view) for server, view in shown],
    }


def page_nova(
    servers: Sequence[Server],
    query: Sequence[tuple[str, str]],
    now: float,
    url: str,
    positions: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The answer of Nova's list at `url` (scheme, host and path of the request): one
    page of `servers`, and `servers_links` with the "next" link when the page is full.
    `positions`: each server's index in `servers`, where the caller keeps one."""
    limit = min(_whole(_last(query, "limit"), "limit", DEFAULT_LIMIT, _nova_refusal), MAX_LIMIT)
    since = _changes_since(_last(query, "changes-since"))
    marker = _last(query, "marker")
    start = 0
    if marker is not None:
        # Looked up among all the project's servers, whatever the filters: a marker
        # server that has left the status filter still marks a place in the order.
        if positions is not None:
            start = positions.get(marker, -2) + 1
        else:
            start = next((i + 1 for i, s in enumerate(servers) if s.server_id == marker), -1)
        if start < 0:
            raise NovaFault(400, f"marker [{marker}] not found")
    shown: list[tuple[Server, View]] = []
    if limit:
        for entry in _entries(servers[start:], now, _status_filter(query), since):
            shown.append(entry)
            if len(shown) == limit:
                break
    answer: dict[str, Any] = {
        "servers": [_nova_fields(server_fields(server, now, view)) for server, view in shown]
    }
    if limit and len(shown) == limit:
        # Nova's link: the request's own parameters, sorted, with the marker replaced.
        params = sorted((k, v) for k, v in query if k != "marker")
        params.append(("marker", shown[-1][0].server_id))
        answer["servers_links"] = [{"rel": "next", "href": f"{url}?{urlencode(params)}"}]
    return answer


def _nova_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A server as Nova lists it: its attached volumes carry only `id` and
    `delete_on_termination` (the reference's Table 8), no boot index or device."""
    volumes = fields.get("os-extended-volumes:volumes_attached") or []
    fields["os-extended-volumes:volumes_attached"] = [
        {k: v for k, v in volume.items() if k in ("id", "delete_on_termination")}
        for volume in volumes
    ]
    return fields


def _changes_since(value: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 `changes-since` (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise NovaFault(400, "Invalid changes-since value") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
