"""`plan --preflight`: read every server, paced as a run reads them, and write what was found.

    check_fleet(client, specs, ...)   one read per server (none for targets a state
                                      file already has final or mid-way), classified
                                      by preflight.classify
    write_preflight(directory, ...)   preflight.csv (one row per target, with the
                                      action it calls for), preflight.json (counts and
                                      server IDs by finding) and blocked.csv (the
                                      blocking ones, as `run --exclude` reads them)

Only `Cloud.server` is ever called here: a preflight sends no reinstall.
Credentials refused (401) or an endpoint that is wrong or unreachable stop the
check at once (exit 2), since every other read would meet the same.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from orchestrator.cloud.interface import Cloud, ServerView
from orchestrator.cloud.retry_policy import RetrySettings, retrying
from orchestrator.engine.preflight import Finding, Verdict, classify
from orchestrator.errors import (
    ApiError,
    AuthFailed,
    NotFound,
    Rejected,
    ReportError,
    RunCannotGoOn,
    WrongEndpoint,
)
from orchestrator.model import FINAL_STATES, TargetSpec, TargetState
from orchestrator.nofollow import PRIVATE_FILE, folder_mode, make_dir, replacing
from orchestrator.spreadsheet import CsvWriter, neutralise

PREFLIGHT_CSV = "preflight.csv"
PREFLIGHT_JSON = "preflight.json"
BLOCKED_CSV = "blocked.csv"  # an inventory of the blocking servers: `run --exclude` takes it
BLOCKED_COLUMNS = ("project_id", "server_id", "finding", "reason")
CSV_COLUMNS = (
    "project_id",
    "server_id",
    "line",
    "region",
    "mode",
    "finding",
    "blocks",
    "reason",
    "status",
    "task_state",
    "locked",
    "launched_at",
    "state",
    "action",
)

# The `action` column: what a row calls for, one word a script can filter on.
ACTIONS: Mapping[Finding, str] = MappingProxyType(
    {
        Finding.READY: "send",  # a run sends it
        Finding.WOULD_SKIP: "skip",  # a run leaves it alone (--skip-reinstalled-since)
        Finding.DONE: "none",  # final in the state file
        Finding.IN_FLIGHT: "resume",  # mid-way in the state file: a resume settles it
    }
)
EXCLUDE = "exclude"  # blocks: fix the server first, or leave it out (--exclude blocked.csv)


@dataclass(frozen=True, slots=True)
class Checked:
    """One target: what was found, and the reading it was found in (if any)."""

    spec: TargetSpec
    verdict: Verdict
    server: ServerView | None = None
    state: TargetState | None = None  # in the state file given, if any


@dataclass
class Preflight:
    rows: list[Checked]
    requests: dict[str, int] = field(default_factory=dict)
    aborted: str | None = None  # why the check could not go on (credentials, endpoint)

    @property
    def blocking(self) -> list[Checked]:
        return [r for r in self.rows if r.verdict.blocks]

    def counts(self) -> Counter[Finding]:
        return Counter(r.verdict.finding for r in self.rows)

    @property
    def exit_code(self) -> int:
        """2: credentials or endpoint refused; 1: something blocks; 0: nothing does."""
        if self.aborted:
            return 2
        return 1 if self.blocking else 0


async def check_fleet(
    client: Cloud,
    specs: Sequence[TargetSpec],
    *,
    retry: RetrySettings,
    workers: int,
    skip_since: datetime | None = None,
    states: Mapping[tuple[str, str], TargetState] | None = None,
) -> Preflight:
    """Read and classify every target; stop at the first sign that no read can work."""
    rows: list[Checked | None] = [None] * len(specs)
    aborted: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(specs)):
        queue.put_nowait(i)
    states = states or {}

    async def worker() -> None:
        while not aborted:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            spec = specs[i]
            state = states.get(spec.key)
            if state is not None and state is not TargetState.PENDING:
                rows[i] = Checked(spec, _from_state(state), None, state)
                continue
            try:
                rows[i] = await _check_one(client, spec, retry, skip_since, state)
            except (AuthFailed, RunCannotGoOn) as exc:
                aborted.append(_why_abort(exc))
                return

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, min(workers, len(specs))))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return Preflight(
        rows=[r for r in rows if r is not None],
        requests=dict(client.requests),
        aborted=aborted[0] if aborted else None,
    )


def _from_state(state: TargetState) -> Verdict:
    if state in FINAL_STATES:
        return Verdict(Finding.DONE, f"{state.value} in the state file: not sent again")
    return Verdict(Finding.IN_FLIGHT, f"{state.value} in the state file: a resume settles it")


def _why_abort(exc: ApiError) -> str:
    if isinstance(exc, AuthFailed):
        return f"credentials refused by the API: {exc}"
    if isinstance(exc, WrongEndpoint):
        return str(exc)
    return f"the endpoint does not answer: {exc}"


async def _check_one(
    client: Cloud,
    spec: TargetSpec,
    retry: RetrySettings,
    skip_since: datetime | None,
    state: TargetState | None,
) -> Checked:
    try:
        async for attempt in retrying(retry):
            with attempt:
                server = await client.server(spec.project_id, spec.server_id, spec.region)
    except NotFound as exc:
        return Checked(
            spec,
            Verdict(Finding.MISSING, f"does not exist ({exc.code or exc.status})"),
            None,
            state,
        )
    except (AuthFailed, RunCannotGoOn):
        raise
    except Rejected as exc:
        return Checked(spec, Verdict(Finding.REFUSED, f"the read was refused: {exc}"), None, state)
    except ApiError as exc:
        return Checked(
            spec, Verdict(Finding.UNREADABLE, f"could not read the server: {exc}"), None, state
        )
    return Checked(spec, classify(server, spec, skip_since=skip_since), server, state)


def summary(result: Preflight, inventory: str, checked_at: str) -> dict[str, Any]:
    """preflight.json: counts and server IDs by finding, blocking ones first."""
    groups: dict[str, list[str]] = {}
    for row in sorted(result.rows, key=lambda r: (not r.verdict.blocks, r.verdict.finding)):
        groups.setdefault(row.verdict.finding.value, []).append(
            f"{row.spec.project_id}/{row.spec.server_id}"
        )
    counts = result.counts()
    return {
        "inventory": inventory,
        "checked_at": checked_at,
        "total": len(result.rows),
        "blocking": len(result.blocking),
        "exit_code": result.exit_code,
        "aborted": result.aborted,
        "counts": {f.value: counts[f] for f in Finding if counts[f]},
        "blocking_findings": sorted({r.verdict.finding.value for r in result.blocking}),
        "servers": groups,
        "requests": result.requests,
        "reinstalls_sent": 0,
    }


def csv_row(row: Checked) -> list[str]:
    server = row.server
    return [
        row.spec.project_id,
        row.spec.server_id,
        str(row.spec.line),
        row.spec.region or "",
        row.spec.mode or "",
        row.verdict.finding.value,
        "yes" if row.verdict.blocks else "no",
        row.verdict.reason,
        (server.status or "") if server else "",
        (server.task_state or "") if server else "",
        "" if server is None or server.locked is None else str(server.locked).lower(),
        (server.launched_at or "") if server else "",
        row.state.value if row.state else "",
        action(row),
    ]


def action(row: Checked) -> str:
    return EXCLUDE if row.verdict.blocks else ACTIONS.get(row.verdict.finding, "send")


def write_preflight(
    directory: Path,
    result: Preflight,
    inventory: str,
    checked_at: str,
    mode: int = PRIVATE_FILE,
) -> tuple[Path, Path]:
    """Write preflight.csv, preflight.json and blocked.csv (permissions `mode`), each
    renamed into place when complete. blocked.csv is written even when nothing blocks
    (a header only), so that an older one never outlives the preflight that made it.

    The report folder may be shared: the folder `directory` is refused if it is a
    symbolic link, and the files are written whole by `nofollow.replacing`.
    """
    csv_path, json_path = directory / PREFLIGHT_CSV, directory / PREFLIGHT_JSON
    try:
        make_dir(directory, folder_mode(mode), link_ok=False)
        with replacing(csv_path, mode) as fh:
            writer = CsvWriter(fh)
            writer.writerow(CSV_COLUMNS)
            for row in result.rows:
                # A cell opened by a spreadsheet must not run as a formula.
                writer.writerow([neutralise(cell) for cell in csv_row(row)])
        with replacing(json_path, mode) as fh:
            json.dump(summary(result, inventory, checked_at), fh, indent=2)
            fh.write("\n")
        with replacing(directory / BLOCKED_CSV, mode) as fh:
            writer = CsvWriter(fh)
            writer.writerow(BLOCKED_COLUMNS)
            for row in result.blocking:
                cells = (row.spec.project_id, row.spec.server_id, row.verdict.finding.value,
                         row.verdict.reason)  # fmt: skip
                writer.writerow([neutralise(cell) for cell in cells])
    except OSError as exc:
        raise ReportError(f"cannot write the preflight report in {directory}: {exc}") from exc
    return csv_path, json_path
