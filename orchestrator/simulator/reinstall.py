"""The body of a reinstall request: parsed and checked, or refused with the field named."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestrator.simulator.errors import ApiFault

WITH_STOP_SERVER = "withStopServer"


@dataclass(frozen=True, slots=True)
class ReinstallRequest:
    keyname: str
    userid: str
    mode: str | None
    byol: str | None


def parse_reinstall(body: bytes) -> ReinstallRequest:
    """Raises ApiFault `Common.0002` for an empty body, `Ecs.0005` for an invalid one."""
    if not body.strip():
        raise ApiFault("Common.0002")
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiFault("Ecs.0005", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiFault("Ecs.0005", "The request body must be a JSON object.")
    spec = data.get("os-reinstall")
    if not isinstance(spec, dict):
        raise ApiFault("Ecs.0005", "Field 'os-reinstall' must be an object.")
    for name in ("keyname", "userid"):
        if not isinstance(spec.get(name), str):
            raise ApiFault("Ecs.0005", f"Field 'os-reinstall.{name}' must be a string.")
    mode = spec.get("mode", None)
    if "mode" in spec and mode != WITH_STOP_SERVER:
        raise ApiFault("Ecs.0005", f"Field 'os-reinstall.mode' must be '{WITH_STOP_SERVER}'.")
    byol = None
    if "metadata" in spec:
        metadata = spec["metadata"]
        if not isinstance(metadata, dict):
            raise ApiFault("Ecs.0005", "Field 'os-reinstall.metadata' must be an object.")
        if "BYOL" in metadata:
            byol = metadata["BYOL"]
            if not isinstance(byol, str):
                raise ApiFault("Ecs.0005", "Field 'os-reinstall.metadata.BYOL' must be a string.")
    return ReinstallRequest(spec["keyname"], spec["userid"], mode, byol)
