"""The audit trail as CTS's trace list (v3) shows it: `GET /v3/{project_id}/traces`.

Query parameters as the reference names them: `trace_type` (required, `system`),
`resource_id`, `from` and `to` (13-digit UTC epoch milliseconds, used together),
`limit` (10 by default, at most 200). Newest first; a trace shows only once it was
delivered (`SimulatorConfig.trace_delay` after the request).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.simulator import draws
from orchestrator.simulator.errors import ApiFault

if TYPE_CHECKING:
    from orchestrator.simulator.world import World

DEFAULT_LIMIT, MAX_LIMIT = 10, 200


def _refusal(message: str) -> ApiFault:
    return ApiFault("Ecs.0005", message)  # a 400: the parameter named


def _last(query: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in query if k == name]
    return values[-1] if values else None


def _millis(query: Sequence[tuple[str, str]], name: str) -> int | None:
    text = _last(query, name)
    if text is None:
        return None
    if not (text.isdigit() and len(text) == 13):
        raise _refusal(f"Parameter '{name}' must be a 13-digit UTC timestamp in milliseconds.")
    return int(text)


def trace_list(
    world: World, project_id: str, query: Sequence[tuple[str, str]], now: float
) -> dict[str, Any]:
    if _last(query, "trace_type") != "system":
        raise _refusal("Parameter 'trace_type' is required: 'system'.")
    start, end = _millis(query, "from"), _millis(query, "to")
    if (start is None) != (end is None):
        raise _refusal("Parameters 'from' and 'to' must be used together.")
    limit_text = _last(query, "limit") or str(DEFAULT_LIMIT)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise _refusal(f"Parameter 'limit' must be 1 to {MAX_LIMIT}.")
    lowest = now - 3600 if start is None else start / 1000
    highest = now if end is None else end / 1000
    found = world.traces_of(project_id, _last(query, "resource_id"), lowest, highest, now)
    shown = found[: int(limit_text)]
    traces = [
        {
            "trace_id": draws.uuid_like(world.config.seed, "trace", server_id, at),
            "trace_name": name,
            "trace_rating": "normal" if status < 400 else "warning",
            "trace_type": "ApiCall",
            "resource_id": server_id,
            "resource_type": "ecs",
            "service_type": "ECS",
            "code": str(status),
            "api_version": "1.0" if name == "reinstallOs" else "2.0",
            "time": int(at * 1000),
            "record_time": int(at * 1000),
        }
        for _, server_id, name, at, status in shown
    ]
    return {"traces": traces, "meta_data": {"count": len(traces), "marker": None}}
