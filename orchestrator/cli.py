"""Command line: parse, set up logging, call one async function, map the outcome to an exit code.

Exit codes:
    0  every target succeeded
    1  the run finished and some targets failed
    2  invalid input or usage, an unusable state file or report directory,
       or credentials refused; nothing unsafe was done
    3  stopped before finishing (interrupted, or work deferred); resume to continue
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from orchestrator import auth
from orchestrator.campaign import (
    Invocation,
    check_report_dir,
    default_state_path,
    execute,
    open_state,
)
from orchestrator.endpoints import Endpoints
from orchestrator.errors import IncompleteImport, OrchestratorError, UsageError
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.logsetup import setup_logging
from orchestrator.model import TargetState
from orchestrator.report import (
    build_summary,
    check_group_by,
    summary_to_dict,
    write_campaign_report,
)
from orchestrator.runner import RunSettings
from orchestrator.simulator import SimulatorConfig
from orchestrator.simulator.cli import simulate
from orchestrator.state import StateStore

EXIT_CODES = """\b
Exit codes:
  0  every target succeeded
  1  the run finished and some targets failed
  2  invalid input or usage, an unusable state file or report
     directory, or credentials refused; nothing unsafe was done
  3  stopped before finishing (interrupted, or work deferred): resume
"""


def fail(exc: BaseException, code: int) -> NoReturn:
    """Print the error and its chain of causes, then exit."""
    click.echo(f"error: {exc}", err=True)
    cause = exc.__cause__
    while cause is not None:
        click.echo(f"  caused by: {type(cause).__name__}: {cause}", err=True)
        cause = cause.__cause__
    sys.exit(code)


def guarded(fn: Callable[..., int]) -> Callable[..., None]:
    """Map the project's exceptions to exit codes, keeping the command bodies plain."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except OrchestratorError as exc:
            # Whatever stops a command before its run starts (bad input, an unusable
            # state file or report directory) is for the operator to fix: exit 2.
            # A run that started always ends through its outcome (0, 1 or 3).
            fail(exc, 2)
        sys.exit(code)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@click.group(epilog=EXIT_CODES)
@click.version_option(package_name="ecs-reinstall-orchestrator")
def cli() -> None:
    """Reinstall the OS of whole ECS fleets: paced, tracked, resumable, never twice."""


cli.add_command(simulate)


GROUP_BY_OPTION = click.option(
    "--group-by",
    metavar="COLUMN",
    help="In the report, count states by this column: project_id, region, mode, "
    "error_code or an inventory column such as owner.",
)


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--endpoint",
            help="ECS endpoint for every project, e.g. https://ecs.eu-de.otc.t-systems.com",
        ),
        click.option(
            "--endpoint-template",
            help="Endpoint with a {region} placeholder, filled from the region column.",
        ),
        click.option(
            "--simulate",
            is_flag=True,
            help="Start the built-in ECS simulator in-process and use it.",
        ),
        click.option(
            "--report-dir",
            type=click.Path(path_type=Path),
            default=Path("reports"),
            show_default=True,
            help="Where reports (and default state files) go.",
        ),
        click.option("--rate", type=float, help="Reinstall requests per second.  [default: 10]"),
        click.option(
            "--poll-rate", type=float, help="Job and server queries per second.  [default: 50]"
        ),
        click.option(
            "--max-in-flight",
            type=int,
            help="Most servers being reinstalled at once.  [default: 200]",
        ),
        click.option(
            "--job-timeout",
            type=float,
            help="Seconds before an unfinished job is failed.  [default: 3600]",
        ),
        click.option(
            "--first-poll",
            type=float,
            help="Seconds before the first job query.  [default: 5; 0.5 with --simulate]",
        ),
        click.option(
            "--poll-cap",
            type=float,
            help="Longest interval between job queries.  [default: 60; 2 with --simulate]",
        ),
        click.option(
            "--drain-timeout",
            type=float,
            help="After SIGINT/SIGTERM, follow accepted jobs this long.  [default: 60]",
        ),
        click.option(
            "--no-preflight",
            is_flag=True,
            help=(
                "Do not read each server before sending (saves a query; "
                "in-doubt targets are then settled against the intent time)."
            ),
        ),
        click.option(
            "--log-file",
            type=click.Path(path_type=Path),
            help="Log of every state change.  [default: <state>.log]",
        ),
        click.option(
            "--log-level",
            default="INFO",
            show_default=True,
            type=click.Choice(["DEBUG", "INFO", "WARNING"], case_sensitive=False),
        ),
        click.option("--no-live", is_flag=True, help="Plain progress lines even on a terminal."),
        GROUP_BY_OPTION,
        click.option(
            "--sim-job-seconds",
            default="1:3",
            show_default=True,
            help="With --simulate: job duration MIN[:MAX].",
        ),
        click.option(
            "--sim-job-fail-rate",
            type=float,
            default=0.0,
            show_default=True,
            help="With --simulate: share of jobs that FAIL.",
        ),
        click.option(
            "--sim-seed",
            type=int,
            default=0,
            show_default=True,
            help="With --simulate: seed of the simulator.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings_from(opts: dict[str, Any], saved: dict[str, Any], simulate: bool) -> RunSettings:
    def pick(name: str, default: Any) -> Any:
        if opts.get(name) is not None:
            return opts[name]
        return saved.get(name, default)

    fast = simulate
    return RunSettings(
        rate=_positive("--rate", pick("rate", 10.0)),
        poll_rate=_positive("--poll-rate", pick("poll_rate", 50.0)),
        max_in_flight=int(_positive("--max-in-flight", pick("max_in_flight", 200))),
        job_timeout=_positive("--job-timeout", pick("job_timeout", 3600.0)),
        first_poll=pick("first_poll", 0.5 if fast else 5.0),
        poll_cap=pick("poll_cap", 2.0 if fast else 60.0),
        settle_delay=pick("first_poll", 0.5 if fast else 5.0),
        drain_timeout=pick("drain_timeout", 60.0),
        preflight=not (opts.get("no_preflight") or saved.get("no_preflight", False)),
    )


def _positive(flag: str, value: Any) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{flag} must be a positive number, got {value!r}")
    return float(value)


def _job_seconds(text: str) -> tuple[float, float]:
    try:
        low, _, high = text.partition(":")
        pair = (float(low), float(high or low))
    except ValueError:
        raise UsageError(f"--sim-job-seconds {text!r}: expected MIN[:MAX] in seconds") from None
    if not (0 <= pair[0] <= pair[1]):
        raise UsageError(f"--sim-job-seconds {text!r}: need 0 <= MIN <= MAX")
    return pair


def _saved_options(state_path: Path) -> dict[str, Any]:
    """The options of the state file's latest invocation ({} for a new run)."""
    if not state_path.exists():
        return {}
    try:
        with StateStore.open(state_path, readonly=True) as store:
            return store.last_options()
    except IncompleteImport:
        return {}  # nothing was ever run from it; open_state starts it over


def _invocation(
    state_path: Path,
    inventory: Path | None,
    opts: dict[str, Any],
    defaults: InventoryDefaults,
    credentials: auth.Credentials | None,
) -> Invocation:
    """Options given now, else those of the latest invocation, else defaults; checked
    before the state file is touched, so a usage error leaves nothing behind."""
    saved = _saved_options(state_path)
    new_target = opts.get("endpoint") or opts.get("endpoint_template")
    simulate_flag = bool(opts.get("simulate") or (saved.get("simulate") and not new_target))
    settings = settings_from(opts, saved, simulate_flag)
    inv = Invocation(
        state_path=state_path,
        report_dir=opts["report_dir"],
        settings=settings,
        inventory=inventory,
        defaults=defaults,
        credentials=credentials,
        live_progress=False if opts.get("no_live") else None,
        group_by=opts.get("group_by") or saved.get("group_by"),
    )
    if simulate_flag:
        inv.simulate = SimulatorConfig(
            seed=opts.get("sim_seed") or 0,
            job_seconds=_job_seconds(opts.get("sim_job_seconds") or "1:3"),
            job_fail_rate=opts.get("sim_job_fail_rate") or 0.0,
        )
    else:
        inv.endpoint = opts.get("endpoint") or (
            None if opts.get("endpoint_template") else saved.get("endpoint")
        )
        inv.endpoint_template = opts.get("endpoint_template") or (
            None if opts.get("endpoint") else saved.get("endpoint_template")
        )
        if inv.endpoint is None and inv.endpoint_template is None:
            raise UsageError("give --endpoint or --endpoint-template (or --simulate)")
        Endpoints(inv.endpoint, inv.endpoint_template)  # raises UsageError when unsafe
        if credentials is None:
            raise UsageError(
                "no credentials: set OS_AUTH_TOKEN, or HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"
            )
    inv.options = {
        "report_dir": str(inv.report_dir.resolve()),
        "endpoint": inv.endpoint,
        "endpoint_template": inv.endpoint_template,
        "simulate": simulate_flag,
        "rate": settings.rate,
        "poll_rate": settings.poll_rate,
        "max_in_flight": settings.max_in_flight,
        "job_timeout": settings.job_timeout,
        "first_poll": settings.first_poll,
        "poll_cap": settings.poll_cap,
        "drain_timeout": settings.drain_timeout,
        "no_preflight": not settings.preflight,
        "auth": credentials.kind if credentials else ("simulator" if simulate_flag else None),
        "group_by": inv.group_by,
    }
    return inv


def _start(
    state_path: Path,
    inventory: Path | None,
    opts: dict[str, Any],
    defaults: InventoryDefaults,
) -> int:
    credentials = auth.from_env(os.environ)
    secrets = credentials.secrets() if credentials else ()
    setup_logging(None, opts["log_level"], secrets)
    inv = _invocation(state_path, inventory, opts, defaults, credentials)
    check_report_dir(inv.report_dir)
    store = open_state(inv)
    try:
        # Only now are the inventory's columns known; still nothing has been sent.
        check_group_by(store.run_info(), inv.group_by)
        # The log file starts once the state file exists: an invalid inventory leaves neither.
        setup_logging(
            opts.get("log_file") or state_path.with_suffix(".log"), opts["log_level"], secrets
        )
        result = asyncio.run(execute(inv, store))
    finally:
        store.close()
    outcome = result.outcome
    counts = outcome.counts
    click.echo(
        "finished: "
        + ", ".join(f"{counts[s]} {s.value}" for s in TargetState if counts.get(s))
        + (f"; {outcome.deferred} deferred" if outcome.deferred else "")
    )
    if outcome.aborted:
        click.echo(f"stopped: {outcome.aborted}", err=True)
    if result.report is not None:
        click.echo(f"report: {result.report.directory}")
        for path in (
            result.report.summary_json,
            result.report.targets_csv,
            result.report.report_md,
            result.report.report_html,
        ):
            click.echo(f"  {path}")
    if result.report_error:
        click.echo(
            f"error: {result.report_error}\n  the state file is intact; write the report later "
            f"with: orchestrator report --state {state_path} --report-dir DIR",
            err=True,
        )
    if outcome.exit_code == 3:
        click.echo(
            f"not finished; continue with: orchestrator resume --state {state_path}", err=True
        )
    return outcome.exit_code


@cli.command(epilog=EXIT_CODES)
@click.argument("inventory", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="SQLite state file.  [default: <report-dir>/<inventory>.state.sqlite]",
)
@click.option("--keyname", help="Key pair name, where the inventory gives none.")
@click.option("--userid", help="User ID, where the inventory gives none.")
@click.option(
    "--stop-server",
    is_flag=True,
    help="Send mode withStopServer (reinstall running servers), where the inventory gives no mode.",
)
@click.option(
    "--byol/--no-byol", default=None, help="metadata.BYOL, where the inventory gives none."
)
@run_options
@guarded
def run(
    inventory: Path,
    state_path: Path | None,
    keyname: str | None,
    userid: str | None,
    stop_server: bool,
    byol: bool | None,
    **opts: Any,
) -> int:
    """Reinstall every server in INVENTORY (CSV or JSON) and write the report.

    Running the same command again resumes: nothing already succeeded is sent again.
    """
    state_path = state_path or default_state_path(inventory, opts["report_dir"])
    defaults = InventoryDefaults(keyname, userid, "withStopServer" if stop_server else None, byol)
    return _start(state_path, inventory, opts, defaults)


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--state",
    "state_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The state file of the run to resume.",
)
@run_options
@guarded
def resume(state_path: Path, **opts: Any) -> int:
    """Resume a run from its state file, without the inventory."""
    return _start(state_path, None, opts, InventoryDefaults())


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--state", "state_path", required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--failures", default=50, show_default=True, help="Failed targets to list.")
@guarded
def status(state_path: Path, as_json: bool, failures: int) -> int:
    """Print counts by state and the failures."""
    with StateStore.open(state_path, readonly=True) as store:
        summary = summary_to_dict(build_summary(store.run_info(), store.iter_targets()))
        failed = [
            {
                "project_id": t.project_id,
                "server_id": t.server_id,
                "error_code": t.error_code,
                "fail_reason": t.fail_reason,
            }
            for t in store.iter_targets()
            if t.state is TargetState.FAILED
        ][:failures]
    if as_json:
        click.echo(json.dumps({**summary, "failures": failed}, indent=2))
        return 0
    click.echo(f"run {summary['run_id']} ({summary['state_path']}): {summary['total']} targets")
    for state, n in summary["counts"].items():
        click.echo(f"  {state:<11} {n}")
    if failed:
        click.echo("failures:")
        for f in failed:
            click.echo(
                f"  {f['project_id']}/{f['server_id']}: {f['error_code']} {f['fail_reason']}"
            )
    return 0


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--state", "state_path", required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    help="Where to write it.  [default: the run's own report directory]",
)
@GROUP_BY_OPTION
@guarded
def report(state_path: Path, report_dir: Path | None, group_by: str | None) -> int:
    """Write the report again from the state file."""
    with StateStore.open(state_path, readonly=True) as store:
        run = store.run_info()
        target_dir = report_dir or Path(run.options.get("report_dir") or "reports")
        group_by = group_by or run.options.get("group_by")
        check_group_by(run, group_by)
        paths = write_campaign_report(target_dir, store, group_by=group_by)
    click.echo(f"report: {paths.directory}")
    click.echo(f"  {paths.report_html}")
    return 0


@cli.command(epilog=EXIT_CODES)
@click.argument("inventory", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--keyname")
@click.option("--userid")
@click.option("--stop-server", is_flag=True)
@click.option("--byol/--no-byol", default=None)
@click.option("--rate", type=float, default=10.0, show_default=True)
@click.option("--max-in-flight", type=int, default=200, show_default=True)
@click.option(
    "--job-seconds",
    type=float,
    default=300.0,
    show_default=True,
    help="Expected duration of one reinstall, for the estimate.",
)
@guarded
def plan(
    inventory: Path,
    keyname: str | None,
    userid: str | None,
    stop_server: bool,
    byol: bool | None,
    rate: float,
    max_in_flight: int,
    job_seconds: float,
) -> int:
    """Validate INVENTORY and show what a run would do, without sending anything."""
    _positive("--rate", rate)
    _positive("--max-in-flight", max_in_flight)
    defaults = InventoryDefaults(keyname, userid, "withStopServer" if stop_server else None, byol)
    reader = InventoryReader(inventory, defaults)
    per_project: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    for spec in reader:
        per_project[spec.project_id] += 1
        modes[spec.mode or "(none)"] += 1
    n = sum(per_project.values())
    click.echo(f"inventory {inventory} ({reader.format}): {reader.rows} rows, {n} valid targets")
    click.echo(
        f"defaults: keyname={keyname!r} userid={userid!r} mode={defaults.mode!r} byol={byol!r}"
    )
    for project, count in sorted(per_project.items()):
        click.echo(f"  project {project}: {count}")
    click.echo("  mode: " + ", ".join(f"{m} {c}" for m, c in sorted(modes.items())))
    if reader.columns:
        click.echo("  extra columns kept for the report: " + ", ".join(reader.columns))
    by_rate = n / rate
    # The last reinstall starts after all are sent (rate) and after every earlier
    # wave of --max-in-flight has finished (slots); then it takes one job's time.
    waves_before_last = max(math.ceil(n / max_in_flight) - 1, 0)
    shortest = max(by_rate, waves_before_last * job_seconds) + (job_seconds if n else 0.0)
    click.echo(
        f"shortest possible duration: {shortest / 60:.1f} min "
        f"(sending at {rate:g}/s takes {by_rate / 60:.1f} min; "
        f"{max_in_flight} in flight of ~{job_seconds:g} s jobs allow "
        f"{max_in_flight / job_seconds:.1f}/s)"
    )
    reader.raise_if_problems()
    click.echo("no problems found; nothing was sent")
    return 0


def main() -> None:
    cli(standalone_mode=True)
