"""What the ECS API's answers say, as the engine reads it: the views of a job, a
server, a page of servers and an audit record, and the one cleaning of every string
taken from an answer (ECS here, IAM in orchestrator.iam). Pure: `answers` decides
what an answer means, this module what its fields hold.

    service_text(value, limit)      text safe to store, log and show
    job_view(job_id, payload)       -> JobView
    server_view(server_id, server)  -> ServerView (a single read, or a list's row)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from orchestrator import redact
from orchestrator.errors import BadResponse
from orchestrator.visible import visible

# Characters no stored or shown text should carry: C0 and C1 controls and DEL
# (NUL alone breaks PostgreSQL's text, ESC drives terminals) and the bidirectional
# overrides and isolates that reorder what a reader sees become visible escapes
# (`orchestrator.visible`: what the service sent stays readable); whitespace
# controls and line separators become spaces; unpaired surrogates (UTF-8 cannot
# encode them: SQLite's write fails) become U+FFFD.
_WHITESPACE_CONTROLS = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
REPLACEMENT: Final = "\ufffd"


def service_text(value: Any, limit: int) -> str:
    """A value from an answer as text that is safe to store, log and show.

    Whitespace controls become spaces, other control characters visible escapes
    (`\\x1b`), unpaired surrogates U+FFFD, registered secrets '***'; then the text
    is cut to `limit` characters (after blanking, so a cut never leaves half a
    secret).
    """
    text = value if isinstance(value, str) else _scalar_text(value)
    text = visible(_WHITESPACE_CONTROLS.sub(" ", text))
    return redact.blank(_SURROGATES.sub(REPLACEMENT, text))[:limit]


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    # A list or object where text was expected: compact JSON, bounded by the
    # body's size and MAX_DEPTH (checked when it was parsed).
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return f"<{type(value).__name__}>"


def optional_text(value: Any, limit: int = 2000) -> str | None:
    """`service_text`, with None for a field the answer leaves out or empty."""
    if value is None or value == "":
        return None
    return service_text(value, limit)


@dataclass(frozen=True, slots=True)
class JobView:
    job_id: str
    # INIT, RUNNING, SUCCESS, FAIL, PENDING_PAYMENT, or one outside JOB_STATUSES (as
    # the service wrote it, cleaned): the engine reports that, never guesses.
    status: str
    server_id: str | None
    error_code: str | None
    fail_reason: str | None
    begin_time: str | None = None  # the job's own times, as the service reports them
    end_time: str | None = None
    # When the work began (its first sub-job's begin_time): the job may have waited
    # in INIT since begin_time. None where the answer does not say.
    started_time: str | None = None


@dataclass(frozen=True, slots=True)
class ServerView:
    server_id: str
    status: str | None
    vm_state: str | None
    task_state: str | None
    launched_at: str | None
    updated: str | None = None  # moves with every change of the server
    # Preflight evidence: None where the answer did not say.
    locked: bool | None = None  # `locked`: the service refuses a reinstall (Ecs.0605)
    system_disk: bool | None = None  # a system disk attached (none: Ecs.0105)
    # The system disk's volume ID (the volume at boot index 0): a reinstall replaces the
    # disk, the one change the reference promises. None where the answer does not say
    # which volume that is (Nova's list gives no boot index): "cannot tell".
    system_volume: str | None = None
    # The IDs of every attached volume, where the answer lists them: a list without
    # boot indexes still shows whether a volume known to be the system disk is there.
    attached: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ServerPage:
    """One page of the v1 list (`GET /v1/{project}/cloudservers/detail`), by number.

    `count` is how many servers matched the query when this page was read, over all
    pages: servers that change state between two reads move between pages, so a
    listing filtered by status and read page by page can miss or repeat one.
    """

    servers: tuple[ServerView, ...]
    page: int  # this page's number, 1 first
    limit: int  # servers per page asked for
    count: int

    @property
    def next_page(self) -> int | None:
        """The page to ask for next; None when this one was the last."""
        if not self.servers or self.page * self.limit >= self.count:
            return None
        return self.page + 1


@dataclass(frozen=True, slots=True)
class ServerChanges:
    """One page of Nova's list (`GET /v2.1/{project}/servers/detail`), by marker."""

    servers: tuple[ServerView, ...]
    # Pass as `marker` for the next page; None when this one was the last. A marker is a
    # place in the list's order (newest first), which changes of state do not move.
    next_marker: str | None


@dataclass(frozen=True, slots=True)
class TraceView:
    """One record of the cloud's audit trail (CTS) about a server."""

    name: str  # the operation, e.g. reinstallOs
    time_ms: int | None  # when the operation happened, UTC epoch milliseconds
    code: str | None  # the HTTP status the API answered it with


def plain_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


def job_view(job_id: str, payload: Mapping[str, Any]) -> JobView:
    status = payload.get("status")
    if not isinstance(status, str) or not status.strip():
        raise BadResponse(f"job answer has no usable status ({service_text(status, 40)!r})")
    entities = payload.get("entities")
    server_id = started = None
    if isinstance(entities, dict):
        server_id = optional_text(entities.get("server_id"), 64)
        sub_jobs = entities.get("sub_jobs")
        first = sub_jobs[0] if isinstance(sub_jobs, list) and sub_jobs else None
        if isinstance(first, dict):
            started = optional_text(first.get("begin_time"), 64)
            if server_id is None and isinstance(first.get("entities"), dict):
                server_id = optional_text(first["entities"].get("server_id"), 64)
    return JobView(
        job_id=job_id,
        status=service_text(status.strip(), 40),
        server_id=server_id,
        error_code=optional_text(payload.get("error_code"), 64),
        fail_reason=optional_text(payload.get("fail_reason")),
        begin_time=optional_text(payload.get("begin_time"), 64),
        end_time=optional_text(payload.get("end_time"), 64),
        started_time=started,
    )


def server_view(server_id: str, server: Mapping[str, Any]) -> ServerView:
    if server.get("id") not in (None, server_id):
        raise BadResponse("server answer is about another server")
    locked = server.get("locked")
    return ServerView(
        server_id=server_id,
        status=optional_text(server.get("status"), 64),
        vm_state=optional_text(server.get("OS-EXT-STS:vm_state"), 64),
        task_state=optional_text(server.get("OS-EXT-STS:task_state"), 64),
        launched_at=optional_text(server.get("OS-SRV-USG:launched_at"), 64),
        updated=optional_text(server.get("updated"), 64),
        locked=locked if isinstance(locked, bool) else None,
        system_disk=_system_disk(server),
        system_volume=_system_volume(server),
        attached=_attached(server),
    )


def _system_disk(server: Mapping[str, Any]) -> bool | None:
    """Whether a system disk is attached: a root device name, or a volume with boot
    index 0. None when the answer does not allow telling (fields absent, volumes
    without a boot index): a preflight then does not claim a problem."""
    root = server.get("OS-EXT-SRV-ATTR:root_device_name")
    volumes = server.get("os-extended-volumes:volumes_attached")
    if isinstance(root, str) and root:
        return True
    if not isinstance(volumes, list):
        return None
    boot = [v.get("bootIndex") if isinstance(v, dict) else None for v in volumes]
    if any(_index_text(b) == "0" for b in boot if b is not None):
        return True
    if any(b is None for b in boot):
        return None
    return False


def _attached(server: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The IDs of the attached volumes; None when the answer does not list them."""
    volumes = server.get("os-extended-volumes:volumes_attached")
    if not isinstance(volumes, list):
        return None
    ids = (v.get("id") for v in volumes if isinstance(v, dict))
    return tuple(text for i in ids if isinstance(i, str) and (text := optional_text(i, 128)))


def _system_volume(server: Mapping[str, Any]) -> str | None:
    """The ID of the attached volume at boot index 0 (else, without boot indexes, the one
    on the root device); None when no volume says it is the system disk."""
    volumes = server.get("os-extended-volumes:volumes_attached")
    if not isinstance(volumes, list):
        return None
    attached = [v for v in volumes if isinstance(v, dict)]
    system = [v for v in attached if _index_text(v.get("bootIndex")) == "0"]
    if not system and not any("bootIndex" in v for v in attached):
        root = server.get("OS-EXT-SRV-ATTR:root_device_name")
        system = [v for v in attached if isinstance(root, str) and root and v.get("device") == root]
    if len(system) != 1:
        return None  # none, or several claiming it: the answer cannot tell
    volume = system[0].get("id")
    return optional_text(volume, 128) if isinstance(volume, str) else None


def _index_text(value: Any) -> str:
    # A boot index is a number or a numeric string; anything else is not "0".
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
