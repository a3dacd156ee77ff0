"""`plan --preflight`: every server read as a run would read it first; nothing is sent.

Resolved as a run would be (the same credentials, endpoints, CAs and pacing, and a
state file's saved options), then a report of what would block a reinstall:
preflight.csv and preflight.json, and a summary by finding on the terminal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.cli.resolve import resolve, saved_options
from orchestrator.cli.state_files import default_state
from orchestrator.console.logs import setup_logging
from orchestrator.engine.campaign import check_report_dir, connected
from orchestrator.engine.preflight import Finding
from orchestrator.engine.preflight_run import Preflight, check_fleet, write_preflight
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.model import TargetState
from orchestrator.store import SqliteLocation
from orchestrator.visible import echo

__all__ = ["run_preflight"]

PREFLIGHT_LISTED = 10  # blocking servers listed per finding on the terminal
# Of plan's options, those a read of the servers leaves out: the estimate's pause, and
# the user data (a file unlike the state's is a run's concern, no reason to refuse a read).
_NOT_READ = ("user_data", "pause_between_waves")


def run_preflight(
    inventory: Path, defaults: InventoryDefaults, given: Mapping[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Read every server of INVENTORY (or the state file's pending targets) and report:
    the exit code, and what `plan --output json` says of it."""
    state_path: Path | None = given.get("state_path")
    location = SqliteLocation(state_path or default_state(inventory, given.get("report_dir")))
    read = {k: v for k, v in given.items() if k not in _NOT_READ}
    inv = resolve(location, read, saved_options(location), defaults=defaults)
    setup_logging(None, "WARNING", inv.cloud.secrets() if inv.cloud else ())
    check_report_dir(inv.report_dir)
    states: dict[tuple[str, str], TargetState] | None = None
    if state_path is not None:
        with location.open(readonly=True) as store:
            targets = list(store.iter_targets())
        specs = [t.spec for t in targets]  # as a resume would send them
        states = {t.spec.key: t.state for t in targets}
    else:
        specs = list(InventoryReader(inventory, defaults))

    async def check() -> Preflight:
        async with connected(inv, (s.key for s in specs)) as client:
            return await check_fleet(
                client,
                specs,
                retry=inv.settings.retry,
                workers=inv.settings.poll_workers(),
                skip_since=inv.settings.skip_reinstalled_since,
                states=states,
            )

    result = asyncio.run(check())
    if result.aborted:
        # Nothing could be read: an earlier preflight report stays as it was.
        echo(f"error: {result.aborted}; nothing was sent", err=True)
        return result.exit_code, _summary(result, aborted=result.aborted)
    checked_at = datetime.now(UTC).isoformat(timespec="seconds")
    directory = inv.report_dir / f"preflight-{inventory.stem}"
    csv_path, json_path = write_preflight(directory, result, str(inventory), checked_at)
    counts = result.counts()
    sent = ", ".join(f"{n} {kind}" for kind, n in sorted(result.requests.items()))
    echo(f"preflight: {len(result.rows)} target(s) checked ({sent or 'no'} read(s))")
    for row_finding in Finding:
        if not counts[row_finding]:
            continue
        rows = [r for r in result.rows if r.verdict.finding is row_finding]
        first = rows[0].verdict
        mark = f"BLOCKS  {first.reason}" if first.blocks else "ok"
        echo(f"  {row_finding.value:<18} {counts[row_finding]:>6}  {mark}")
        if first.blocks:
            for r in rows[:PREFLIGHT_LISTED]:
                # The reason once per finding; again only where it differs.
                why = "" if r.verdict.reason == first.reason else f": {r.verdict.reason}"
                echo(f"    {r.spec.project_id}/{r.spec.server_id}{why}")
            if len(rows) > PREFLIGHT_LISTED:
                echo(f"    ... {len(rows) - PREFLIGHT_LISTED} more in {csv_path}")
    echo(f"report: {csv_path}\n        {json_path}")
    if result.blocking:
        echo(f"{len(result.blocking)} target(s) would fail or wait; no reinstall was sent")
    else:
        echo("nothing blocks; no reinstall was sent")
    return result.exit_code, _summary(result, files=(csv_path, json_path))


def _summary(
    result: Preflight, *, files: tuple[Path, ...] = (), aborted: str | None = None
) -> dict[str, Any]:
    """The preflight in plan's JSON document: what was read, found and written."""
    counts = result.counts()
    return {
        "checked": len(result.rows),
        "reads": dict(result.requests),
        "findings": {f.value: counts[f] for f in Finding if counts[f]},
        "blocking": len(result.blocking),
        "files": [str(p) for p in files],
        "aborted": aborted,
    }
