"""The query strings of the list and audit-trail calls, checked before anything is
sent: a page number, a page size, a status the service knows, a time window."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from orchestrator.cloud.views import plain_id

MAX_PAGE = 1000  # servers per page of either list, at most (the reference's maximum)
# The statuses the reference names for a list's `status` filter (the v1 list's range;
# Nova's is a subset): anything else is refused before it is sent.
LIST_STATUSES = frozenset(
    {
        "ACTIVE", "BUILD", "ERROR", "HARD_REBOOT", "MIGRATING", "REBOOT", "REBUILD",
        "RESIZE", "REVERT_RESIZE", "SHUTOFF", "VERIFY_RESIZE", "DELETED", "SHELVED",
        "SHELVED_OFFLOADED", "UNKNOWN",
    }
)  # fmt: skip
Query = tuple[tuple[str, str], ...]


def page_query(page: int, limit: int, status: str | None) -> Query:
    """The query of the v1 list's page `page`; ValueError for what may not be sent."""
    if isinstance(page, bool) or not (isinstance(page, int) and page >= 1):
        raise ValueError(f"page must be a whole number >= 1, got {page!r}")
    query: Query = (("offset", str(page)), ("limit", str(_page_size(limit))))
    return query + _status_query(status)


def cts_base(ecs_base: str) -> str:
    """The Cloud Trace Service endpoint beside an ECS one: the host's first label `ecs`
    becomes `cts` (ecs.eu-de.otc.t-systems.com -> cts.eu-de.otc.t-systems.com, as both
    clouds name them); any other host (the simulator, a gateway) serves both."""
    parts = urlsplit(ecs_base)
    host = parts.hostname or ""
    if not host.startswith("ecs."):
        return ecs_base
    netloc = parts.netloc.replace(host, "cts." + host[len("ecs.") :], 1)
    return urlunsplit(parts._replace(netloc=netloc))


def trace_query(server_id: str, since: datetime) -> Query:
    """The query of CTS's trace list (v3): the server's management traces since `since`."""
    if since.tzinfo is None or since.utcoffset() is None:
        raise ValueError("since must be a timezone-aware datetime")
    if not plain_id(server_id):
        raise ValueError("server_id must be a plain ID")
    start = int(since.timestamp() * 1000)
    end = max(int(datetime.now(UTC).timestamp() * 1000), start + 1)
    return (
        ("trace_type", "system"),
        ("service_type", "ECS"),
        ("resource_id", server_id),
        ("from", str(start)),
        ("to", str(end)),
        ("limit", "200"),
    )


def changes_query(since: datetime, limit: int, marker: str | None, status: str | None) -> Query:
    """The query of Nova's list of the changes since `since` (whole UTC seconds, rounded
    down), after `marker`; ValueError for what may not be sent."""
    if since.tzinfo is None or since.utcoffset() is None:
        raise ValueError("since must be a timezone-aware datetime")
    if marker is not None and not plain_id(marker):
        raise ValueError("marker must be a server ID (letters, digits, '-', '_')")
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    query: Query = (("changes-since", stamp), ("limit", str(_page_size(limit))))
    query += (("marker", marker),) if marker is not None else ()
    return query + _status_query(status)


def _page_size(limit: int) -> int:
    if isinstance(limit, bool) or not (isinstance(limit, int) and 1 <= limit <= MAX_PAGE):
        raise ValueError(f"limit must be a whole number from 1 to {MAX_PAGE}, got {limit!r}")
    return limit


def _status_query(status: str | None) -> Query:
    if status is None:
        return ()
    if status not in LIST_STATUSES:
        # A word the service does not know lists nothing (Nova before 2.38), which a
        # caller would read as "no such servers".
        raise ValueError(f"status must be one of {', '.join(sorted(LIST_STATUSES))}")
    return (("status", status),)
