"""Read the (project_id, server_id) pairs of a simulated fleet from an inventory file.

Deliberately simple and independent of the orchestrator's own inventory reader:
the simulator only needs the two ID columns, and must not fail where the
orchestrator would report a problem (that is the orchestrator's job to test).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

Fleet = tuple[tuple[str, str], ...]


def load_fleet(path: str | Path) -> Fleet:
    """The distinct (project_id, server_id) pairs of a CSV or JSON inventory, in file order.

    CSV: a header row naming `project_id` and `server_id` (other columns ignored).
    JSON: a list of objects, or an object whose `servers` key holds that list.
    Raises ValueError naming the file and row when a pair cannot be read.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        pairs = _from_json(path, text)
    else:
        pairs = _from_csv(path, text)
    return tuple(dict.fromkeys(pairs))


def _from_json(path: Path, text: str) -> list[tuple[str, str]]:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("servers")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of servers or {{'servers': [...]}}")
    pairs = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: servers[{index}] is not an object")
        pairs.append(_pair(path, f"servers[{index}]", item))
    return pairs


def _from_csv(path: Path, text: str) -> list[tuple[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if "project_id" not in header or "server_id" not in header:
        raise ValueError(f"{path}: the header must name project_id and server_id columns")
    reader.fieldnames = header
    pairs = []
    for row in reader:
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue  # blank line
        pairs.append(_pair(path, f"line {reader.line_num}", row))
    return pairs


def _pair(path: Path, where: str, row: dict[str, Any]) -> tuple[str, str]:
    project_id = row.get("project_id")
    server_id = row.get("server_id")
    if not isinstance(project_id, str) or not project_id.strip():
        raise ValueError(f"{path}: {where}: project_id is missing")
    if not isinstance(server_id, str) or not server_id.strip():
        raise ValueError(f"{path}: {where}: server_id is missing")
    return project_id.strip(), server_id.strip()
