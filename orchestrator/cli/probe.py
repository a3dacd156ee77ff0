"""`probe SERVER`: reinstall one named test server and record what it shows
(engine/probe.py): before a first fleet run, the behaviours the documentation leaves
open are confirmed on the operator's own cloud."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.checks import region_option
from orchestrator.cli.exits import guarded
from orchestrator.cli.resolve import resolve
from orchestrator.cli.types import POSITIVE_SECONDS
from orchestrator.console.logs import setup_logging
from orchestrator.engine.campaign import check_report_dir, connected
from orchestrator.engine.probe import Probe, Prober, write_probe
from orchestrator.errors import ApiError, UsageError
from orchestrator.inventory import InventoryDefaults
from orchestrator.inventory.rules import CHECKS, Bad
from orchestrator.model import TargetSpec
from orchestrator.store import SqliteLocation
from orchestrator.visible import echo

__all__ = ["probe"]

PROBE_EXIT_CODES = """\b
Exit codes:
  0  the reinstall was sent and followed to its end; see what it showed
  1  sent, but it did not end within --timeout, or a read failed at the end
  2  invalid input or usage, not confirmed, credentials refused, or the
     reinstall refused: nothing was reinstalled
"""


@click.command(epilog=PROBE_EXIT_CODES)
@click.argument("server")
@click.option("--project", "project_id", required=True, help="The server's project ID.")
@click.option("--keyname", required=True, help="Key pair to install.")
@click.option("--userid", required=True, help="User ID to send with the reinstall.")
@click.option("--stop-server", is_flag=True, help="Send mode withStopServer (a running server).")
@click.option("--byol/--no-byol", default=None)
@click.option(
    "--cloud-init",
    is_flag=True,
    help="Send the Cloud-Init reinstall (POST /v2/...), the one OTC eu-de documents; "
    "it takes mode withStopServer only.",
)
@click.option("--endpoint", help="As for run.")
@click.option("--endpoint-template", help="As for run.")
@click.option("--os-cloud", metavar="NAME", help="As for run.")
@click.option("--cloud", type=click.Choice(["otc", "huawei"]), help="As for run.")
@region_option(help="As for run.")
@click.option("--ca-bundle", type=click.Path(path_type=Path, dir_okay=False), help="As for run.")
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Where the readings go (probe-SERVER-TIME.csv and .json).",
)
@click.option(
    "--interval",
    type=POSITIVE_SECONDS,
    default=10.0,
    show_default=True,
    metavar="S",
    help="Seconds between readings of the server and its job.",
)
@click.option(
    "--watch-after",
    type=POSITIVE_SECONDS,
    default=600.0,
    show_default=True,
    metavar="S",
    help="After the job ended, keep reading until the server rests showing a reinstall, "
    "at most this long.",
)
@click.option(
    "--timeout",
    type=POSITIVE_SECONDS,
    default=3600.0,
    show_default=True,
    metavar="S",
    help="Stop reading after this long in all.",
)
@click.option(
    "--duplicate",
    is_flag=True,
    help="Right after the reinstall is accepted, send a second one and record what the "
    "service does with it (refused, or accepted and failed): a second reinstall of the "
    "same test server.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@guarded
def probe(server: str, **given: Any) -> int:
    """Reinstall SERVER (one test server you name: its disk is wiped) and record every
    reading until it is back: whether launched_at moved, whether the system disk's
    volume changed, how long it took, and (--duplicate) what a second reinstall sent
    while the first runs does. Run it once per cloud before a first fleet run."""
    project_id = given.pop("project_id")
    spec = _spec(project_id, server, given)
    location = SqliteLocation(given["report_dir"] / ".probe-no-state.sqlite")  # never opened
    inv = resolve(location, given, {}, defaults=InventoryDefaults())
    setup_logging(None, "WARNING", inv.cloud.secrets() if inv.cloud else ())
    check_report_dir(inv.report_dir)
    twice = " and then a second one (--duplicate)" if given["duplicate"] else ""
    if not given["yes"]:
        if not sys.stdin.isatty():
            raise UsageError("probe reinstalls a server: confirm on a terminal, or give --yes")
        click.confirm(
            f"Reinstall server {server} of project {project_id}{twice}? Its system disk is wiped",
            abort=True,
        )

    async def go() -> Probe:
        async with connected(inv) as client:
            prober = Prober(
                client,
                spec,
                interval=given["interval"],
                timeout=given["timeout"],
                after=given["watch_after"],
                duplicate=given["duplicate"],
            )
            try:
                return await prober.run()
            except ApiError:
                if prober.probe.job_id is None:
                    raise  # nothing was reinstalled
                return prober.probe

    try:
        result = asyncio.run(go())
    except ApiError as exc:
        raise UsageError(f"probe of {server}: {exc}; nothing was reinstalled") from exc
    csv_path, json_path = write_probe(inv.report_dir, result)
    echo(f"probe of {project_id}/{server}:")
    for line in result.findings():
        echo(f"  {line}")
    echo(f"readings: {csv_path}\n          {json_path}")
    ended = result.job_status in ("SUCCESS", "FAIL") and result.after is not None
    return 0 if ended and "timeout" not in result.ended else 1


def _spec(project_id: str, server: str, given: dict[str, Any]) -> TargetSpec:
    values = {
        "project_id": project_id,
        "server_id": server,
        "keyname": given["keyname"],
        "userid": given["userid"],
    }
    flags = {"project_id": "--project", "server_id": "SERVER"}
    for name, value in values.items():
        try:
            CHECKS[name](value)
        except Bad as exc:
            raise UsageError(f"{flags.get(name, '--' + name)}: {exc}") from None
    return TargetSpec(
        project_id=project_id,
        server_id=server,
        keyname=given["keyname"],
        userid=given["userid"],
        line=0,
        region=given.get("region"),
        mode="withStopServer" if given["stop_server"] or given["cloud_init"] else None,
        byol=given["byol"],
        cloud_init=given["cloud_init"],
    )
