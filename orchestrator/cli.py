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
from orchestrator.messages import end_of_run
from orchestrator.report import write_report
from orchestrator.runner import RunSettings
from orchestrator.simulator import SimulatorConfig
from orchestrator.simulator.cli import simulate
from orchestrator.state import StateStore
from orchestrator.status import exit_code_for, read_status, render_text, status_to_dict
from orchestrator.status.watch import watch_status

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
        click.option(
            "--log-format",
            default="text",
            show_default=True,
            type=click.Choice(["text", "json"], case_sensitive=False),
            help=(
                "json: JSON lines in the log file and on stderr (no live panel); "
                "field names in the README, section Logs."
            ),
        ),
        click.option("--no-live", is_flag=True, help="Plain progress lines even on a terminal."),
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
    fmt = str(opts.get("log_format") or "text").lower()
    setup_logging(None, opts["log_level"], secrets, fmt)
    inv = _invocation(state_path, inventory, opts, defaults, credentials)
    check_report_dir(inv.report_dir)
    store = open_state(inv)
    try:
        # The log file starts once the state file exists: an invalid inventory leaves neither.
        setup_logging(
            opts.get("log_file") or state_path.with_suffix(".log"), opts["log_level"], secrets, fmt
        )
        result = asyncio.run(execute(inv, store))
    finally:
        store.close()
    outcome = result.outcome
    for line in end_of_run(
        outcome.counts,
        state_path=state_path,
        requests=result.requests,
        deferred=outcome.deferred,
        stopped=outcome.stopped,
        aborted=outcome.aborted,
        credentials_refused=outcome.credentials_refused,
    ):
        click.echo(line.text, err=line.err)
    if result.report is not None:
        click.echo(f"report: {result.report.directory}")
        for path in (
            result.report.summary_json,
            result.report.targets_csv,
            result.report.report_md,
        ):
            click.echo(f"  {path}")
    if result.report_error:
        click.echo(
            f"error: {result.report_error}\n  the state file is intact; write the report later "
            f"with: orchestrator report --state {state_path} --report-dir DIR",
            err=True,
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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (README: Commands).")
@click.option(
    "--failures",
    default=5,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="Server IDs listed per error code.",
)
@click.option(
    "--watch",
    type=click.FloatRange(min=0.2),
    is_flag=False,
    flag_value=2.0,
    default=None,
    metavar="[SECONDS]",
    help="Refresh every SECONDS (2 if not given) until the run is no longer running.",
)
@guarded
def status(state_path: Path, as_json: bool, failures: int, watch: float | None) -> int:
    """Counts by state, failures by error code, in-doubt and deferred targets, elapsed
    and ETA; during a run too (reads the state file without locking or slowing it).
    Exits as a run would for the same state: 0, 1, or 3 while not finished."""
    if watch is None:
        snap = read_status(state_path, examples=failures)
        click.echo(json.dumps(status_to_dict(snap), indent=2) if as_json else render_text(snap))
        return snap.exit_code
    return watch_status(state_path, watch, as_json=as_json, examples=failures)


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--state", "state_path", required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    help="Where to write it.  [default: the run's own report directory]",
)
@guarded
def report(state_path: Path, report_dir: Path | None) -> int:
    """Write the report again from the state file. Exits as the run would for the same
    state: 0 all succeeded, 1 finished with failures, 3 not finished."""
    with StateStore.open(state_path, readonly=True) as store:
        run = store.run_info()
        target_dir = report_dir or Path(run.options.get("report_dir") or "reports")
        paths = write_report(target_dir, run, store.iter_targets)
        counts = store.counts()
    click.echo(f"report: {paths.directory}")
    return exit_code_for({state.value: n for state, n in counts.items()})


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
    # An invalid inventory: its problems, and no estimate for a run that cannot start.
    reader.raise_if_problems()
    click.echo(f"inventory {inventory} ({reader.format}): {reader.rows} rows, {n} valid targets")
    click.echo("defaults: " + _defaults_text(reader.defaults_in_effect, defaults))
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
    click.echo("no problems found; nothing was sent")
    return 0


def _defaults_text(effective: dict[str, Any], cli: InventoryDefaults) -> str:
    """The defaults rows fall back on, and where each came from (file or command line)."""
    given = {"keyname": cli.keyname, "userid": cli.userid, "mode": cli.mode, "byol": cli.byol}
    given_required = ("keyname", "userid")
    parts = []
    for key in ("keyname", "userid", "mode", "byol"):
        value = effective.get(key)
        if value is None:
            parts.append(
                f"{key} (none: rows give their own)"
                if key in given_required
                else f"{key} (not set)"
            )
            continue
        source = "command line" if given[key] == value else "inventory file"
        shown = str(value).lower() if isinstance(value, bool) else value
        parts.append(f"{key}={shown} ({source})")
    return ", ".join(parts)


def main() -> None:
    cli(standalone_mode=True)
