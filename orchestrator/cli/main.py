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
import dataclasses
import json
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from orchestrator.cli.checks import (
    check_region,
    check_simulate_alone,
    check_state_file,
    log_file_option,
    region_option,
)
from orchestrator.cli.rollout import (
    confirm_on_terminal,
    plan_lines,
    plan_options,
    rollout_from,
    rollout_options,
    status_fields,
    status_lines,
)
from orchestrator.cli.types import POSITIVE, POSITIVE_SECONDS, SECONDS, SHARE, Number
from orchestrator.clocks import SERVICE_CLOCKS_AGREE_WITHIN
from orchestrator.cloud import cloudconfig, regions
from orchestrator.cloud.endpoints import Endpoints, check_endpoint
from orchestrator.cloud.network import ca_bundle, ssl_context
from orchestrator.cloud.userdata import UserData, load_user_data
from orchestrator.console.logs import setup_logging
from orchestrator.console.messages import end_of_run
from orchestrator.console.status_view import render_text, status_to_dict
from orchestrator.console.status_watch import watch_status
from orchestrator.engine.campaign import (
    Invocation,
    RegionCheck,
    Result,
    check_report_dir,
    connected,
    default_state_path,
    execute,
    open_state,
)
from orchestrator.engine.known_jobs import known_jobs, write_unrecorded
from orchestrator.engine.outcome import exit_code
from orchestrator.engine.preflight import Finding
from orchestrator.engine.preflight_run import Preflight, check_fleet, write_preflight
from orchestrator.engine.retry_select import STATES_IS, RetryRequest, plan_retry
from orchestrator.engine.runner import Answer, RunSettings
from orchestrator.engine.selection import Selection, SelectionFilter, left_out_text
from orchestrator.engine.shard import parse_shard
from orchestrator.errors import IncompleteImport, InventoryError, OrchestratorError, UsageError
from orchestrator.inventory import (
    EncodingProblem,
    InventoryDefaults,
    InventoryReader,
    check_encoding,
)
from orchestrator.model import FINAL_STATES, TargetState
from orchestrator.nofollow import PRIVATE_FILE, parse_mode
from orchestrator.report import (
    check_group_by,
    write_campaign_report,
)
from orchestrator.rollout.options import RolloutOptions
from orchestrator.rollout.report import rollout_summary
from orchestrator.simulator import SimulatorConfig
from orchestrator.simulator.cli import simulate
from orchestrator.store import SqliteLocation, StateLocation, is_dsn, pg_location
from orchestrator.store.sqlite import StateStore, StoreFailure
from orchestrator.store.sqlite import backup as state_backup
from orchestrator.store.status import read_status
from orchestrator.visible import echo, excepthook

EXIT_CODES = """\b
Exit codes:
  0  every target succeeded
  1  the run finished and some targets failed
  2  invalid input or usage, an unusable state file or report
     directory, or credentials refused; nothing unsafe was done
  3  stopped before finishing (interrupted, work deferred, the window
     closed, a canary failed or a failure budget tripped): resume
"""


def fail(exc: BaseException, code: int) -> NoReturn:
    """Print the error and its chain of causes, then exit."""
    echo(f"error: {exc}", err=True)
    cause = exc.__cause__
    while cause is not None:
        echo(f"  caused by: {type(cause).__name__}: {cause}", err=True)
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


def _report_mode(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """--report-mode: an octal file mode for the report's files, else exit 2."""
    if value is None:
        return None
    try:
        return parse_mode(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


REPORT_MODE_OPTION = click.option(
    "--report-mode",
    metavar="OCTAL",
    callback=_report_mode,
    help="Permissions of the report's files, e.g. 0640 for a group that reads them; its"
    " folder gets the matching folder mode.  [default: 0600, as the state file]",
)


CAMPAIGN_OPTION = click.option(
    "--campaign",
    metavar="NAME",
    help="With a PostgreSQL --state: the campaign (schema orch_NAME), so that one database"
    " holds several.  [default for run: the inventory's file name]",
)
STATE_HELP = "The state file, or the PostgreSQL database postgresql://USER@HOST:PORT/DB."


def state_location(
    state: str, campaign: str | None, inventory: Path | None = None
) -> StateLocation:
    """--state (and --campaign): a SQLite file, or a campaign in a PostgreSQL database."""
    if is_dsn(state):
        return pg_location(state, campaign, inventory)
    if campaign is not None:
        raise UsageError(
            "--campaign names a campaign in a PostgreSQL database (--state postgresql://...);"
            " a SQLite state file is one campaign already"
        )
    return SqliteLocation(check_state_file(Path(state)))


def _resume(inv: Invocation) -> str:
    shard = f" --shard {inv.settings.shard}" if inv.settings.shard else ""
    return inv.state.resume_args() + shard


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option(
            "--endpoint",
            help="ECS endpoint for every project, e.g. https://ecs.eu-de.otc.t-systems.com",
        ),
        click.option(
            "--endpoint-template",
            help="Endpoint with a {region} placeholder, filled from the region column.",
        ),
        click.option(
            "--os-cloud",
            metavar="NAME",
            help="Cloud of clouds.yaml to use (also OS_CLOUD); passwords stay in the "
            "files or the environment, never on the command line.",
        ),
        click.option(
            "--cloud",
            type=click.Choice(["otc", "huawei"]),
            help="Whose known ECS endpoints to use by region when neither --endpoint nor "
            "the service catalog gives one.  [default: guessed from auth_url]",
        ),
        region_option(
            help="Region of targets whose row gives none, e.g. eu-de.  "
            "[default: region_name of the cloud, or OS_REGION_NAME]",
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(path_type=Path, dir_okay=False),
            help="PEM file of CAs to trust (a company CA).  "
            "[default: cacert of the cloud, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, or the system's]",
        ),
        click.option(
            "--simulate",
            is_flag=True,
            help="Start the built-in ECS simulator in-process and use it.",
        ),
        click.option(
            "--report-dir",
            type=click.Path(path_type=Path),
            help="Where reports (and default state files) go.  [default: reports]",
        ),
        click.option(
            "--rate",
            type=POSITIVE,
            help="Reinstall requests per second.  [default: 10]",
        ),
        click.option(
            "--poll-rate",
            type=POSITIVE,
            help="Job and server queries per second.  [default: 50]",
        ),
        click.option(
            "--max-in-flight",
            type=click.IntRange(min=1),
            help="Most servers being reinstalled at once.  [default: 200]",
        ),
        click.option(
            "--job-timeout",
            type=POSITIVE_SECONDS,
            help="Seconds before an unfinished job is failed.  [default: 3600]",
        ),
        click.option(
            "--first-poll",
            type=POSITIVE_SECONDS,
            help="Seconds before the first job query.  [default: 5; 0.5 with --simulate]",
        ),
        click.option(
            "--poll-cap",
            type=POSITIVE_SECONDS,
            help="Longest interval between job queries.  [default: 60; 2 with --simulate]",
        ),
        click.option(
            "--drain-timeout",
            type=SECONDS,
            help="After SIGINT/SIGTERM, follow accepted jobs this long.  [default: 60]",
        ),
        click.option(
            "--settle-quiet",
            type=POSITIVE_SECONDS,
            help=(
                "A reinstall whose answer was lost counts as not accepted (and may be sent"
                " again) only after this many seconds with no sign of activity on the server."
                " Raised automatically when jobs are seen to start later.  [default: 600;"
                " 10 with --simulate]"
            ),
        ),
        click.option(
            "--skip-reinstalled-since",
            metavar="TIME",
            help=(
                "Leave servers whose launched_at is after TIME (ISO 8601 with a zone) alone,"
                " reported as skipped: to run an inventory again safely with a new state file."
            ),
        ),
        click.option(
            "--accept-changed-endpoint",
            is_flag=True,
            help="Go on with a state file made for another --endpoint/--endpoint-template.",
        ),
        click.option(
            "--journal-lost",
            is_flag=True,
            help=(
                "The state file's -wal journal is lost for good (refused without this):"
                " every target not final is settled from its server before anything is"
                " sent to it."
            ),
        ),
        click.option(
            "--known-job",
            "known_jobs",
            multiple=True,
            metavar="[PROJECT/]SERVER=JOB",
            help=(
                "A job id the service returned that the state file could not record (the"
                " run lists them when that happens): the target follows that job."
            ),
        ),
        click.option(
            "--known-jobs",
            "known_jobs_file",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            help="A CSV file of project_id,server_id,job_id: as --known-job for each row.",
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
            "--max-clock-skew",
            type=SECONDS,
            metavar="S",
            help=(
                "Send nothing while this host's clock differs from the service's (the Date"
                " header of its answers) by more than S seconds.  [default: 60]"
            ),
        ),
        click.option(
            "--shard",
            metavar="K/N",
            help=(
                "Run only shard K of N of the campaign (servers split by a hash of their ID),"
                " so that N hosts can share it; each shard is held by one runner at a time."
                " Needs a PostgreSQL --state to run shards at once."
            ),
        ),
        click.option(
            "--verify/--no-verify",
            default=None,
            help=(
                "After a job ends SUCCESS, read the server: succeeded only when it is back"
                " (ACTIVE, or SHUTOFF as before) with a newer launched_at; otherwise failed"
                " with Orchestrator.NotVerified.  [default: --verify]"
            ),
        ),
        click.option(
            "--busy-rechecks",
            # Each waits twice the one before: 30 at the 60 s default is 2,000 years.
            type=click.IntRange(min=0, max=30),
            help=(
                "A server busy with an operation not of this run is read again this often"
                " in the same run before it is deferred.  [default: 3]"
            ),
        ),
        click.option(
            "--busy-recheck-delay",
            type=POSITIVE_SECONDS,
            help=(
                "Seconds before the first re-check of a busy server, doubled for each"
                " next one.  [default: 60; 2 with --simulate]"
            ),
        ),
        log_file_option(help="Log of every state change.  [default: <state>.log]"),
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
        GROUP_BY_OPTION,
        REPORT_MODE_OPTION,
        rollout_options,
        click.option(
            "--sim-job-seconds",
            default="1:3",
            show_default=True,
            help="With --simulate: job duration MIN[:MAX].",
        ),
        click.option(
            "--sim-job-fail-rate",
            type=SHARE,
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
        # Checked again here: a state file's saved values did not all pass the types.
        first_poll=_positive("--first-poll", pick("first_poll", 0.5 if fast else 5.0)),
        poll_cap=_positive("--poll-cap", pick("poll_cap", 2.0 if fast else 60.0)),
        settle_delay=_positive("--first-poll", pick("first_poll", 0.5 if fast else 5.0)),
        drain_timeout=_not_negative("--drain-timeout", pick("drain_timeout", 60.0)),
        settle_quiet=_positive("--settle-quiet", pick("settle_quiet", 10.0 if fast else 600.0)),
        preflight=not (opts.get("no_preflight") or saved.get("no_preflight", False)),
        max_clock_skew=_positive("--max-clock-skew", pick("max_clock_skew", 60.0)),
        # The built-in simulator writes every time from one clock.
        clock_margin=0.0 if simulate else SERVICE_CLOCKS_AGREE_WITHIN,
        skip_reinstalled_since=_since(pick("skip_reinstalled_since", None)),
        expected_job_seconds=opts.get("expected_job_seconds"),
        # Never taken from the latest invocation: that may have been another shard's.
        shard=parse_shard(opts.get("shard")),
        verify=bool(pick("verify", True)),
        busy_rechecks=int(pick("busy_rechecks", 3)),
        busy_recheck_delay=_positive(
            "--busy-recheck-delay", pick("busy_recheck_delay", 2.0 if fast else 60.0)
        ),
    )


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--skip-reinstalled-since {text!r}: expected an ISO 8601 time such as"
            " 2026-11-30T02:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise UsageError(
            f"--skip-reinstalled-since {text!r}: give a zone (Z or +01:00); the cloud's"
            " times are UTC"
        )
    try:
        parsed.astimezone(UTC)  # what every comparison does; year 9999 at -23:59 overflows
    except OverflowError:
        raise UsageError(f"--skip-reinstalled-since {text!r}: out of the range of times") from None
    return parsed


def _positive(flag: str, value: Any) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{flag} must be a positive number, got {value!r}")
    return float(value)


def _not_negative(flag: str, value: Any) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{flag} must be a number >= 0, got {value!r}")
    return float(value)


def _job_seconds(text: str) -> tuple[float, float]:
    try:
        low, _, high = text.partition(":")
        pair = (float(low), float(high or low))
    except ValueError:
        raise UsageError(f"--sim-job-seconds {text!r}: expected MIN[:MAX] in seconds") from None
    if not (0 <= pair[0] <= pair[1]) or not math.isfinite(pair[1]):
        raise UsageError(f"--sim-job-seconds {text!r}: need 0 <= MIN <= MAX, both finite")
    return pair


def _saved_options(location: StateLocation) -> dict[str, Any]:
    """The options of the state's latest invocation ({} for a new run)."""
    if not location.exists():
        return {}
    try:
        with location.open(readonly=True) as store:
            return store.last_options()
    except IncompleteImport:
        return {}  # nothing was ever run from it; open_state starts it over


def _request_options(defaults: InventoryDefaults, user_data: UserData | None) -> dict[str, Any]:
    """The request options given on the command line, as recorded in the state file."""
    return {
        "keyname": defaults.keyname,
        "userid": defaults.userid,
        "mode": defaults.mode,
        "byol": defaults.byol,
        "cloud_init": defaults.cloud_init,
        "user_data_sha256": user_data.sha256 if user_data else None,
    }


def _user_data(opts: dict[str, Any], saved: dict[str, Any]) -> UserData | None:
    """--user-data, else the file the state file's latest invocation used, read again now;
    a resume whose file changed is refused unless --accept-changed-options."""
    recorded = saved.get("user_data") if isinstance(saved.get("user_data"), dict) else None
    given: Path | None = opts.get("user_data")
    if given is None and recorded is None:
        return None
    if given is not None:
        user_data = load_user_data(given)
    else:
        assert recorded is not None
        try:
            user_data = load_user_data(Path(str(recorded.get("path"))))
        except UsageError as exc:
            raise UsageError(
                f"{exc}; the state file's runs used this user data file: give it again"
                " with --user-data FILE"
            ) from None
    if (
        recorded is not None
        and recorded.get("sha256") != user_data.sha256
        and not opts.get("accept_changed_options")
    ):
        raise UsageError(
            f"user data {user_data.path} differs from the one the state file's runs used"
            f" ({recorded.get('path')}, sha256 {str(recorded.get('sha256'))[:12]}…, now"
            f" {user_data.sha256[:12]}…). Add --accept-changed-options to send the new one"
            " to the targets not sent yet (the others keep what they were sent with)"
        )
    return user_data


def _check_same_cloud(saved: dict[str, Any], opts: dict[str, Any]) -> None:
    """Refuse to switch a state file between the simulator and a real cloud, or (unless
    accepted) between endpoints: its in-flight jobs live where it was made."""
    if not saved:
        return
    new_target = (
        opts.get("endpoint")
        or opts.get("endpoint_template")
        or opts.get("os_cloud")
        or opts.get("cloud")
    )
    was_simulated = bool(saved.get("simulate"))
    if opts.get("simulate") and not was_simulated:
        raise UsageError(
            "this state file was made against a real endpoint "
            f"({saved.get('endpoint') or saved.get('endpoint_template')}); --simulate cannot"
            " resume it: its jobs and servers are in that cloud"
        )
    if new_target and was_simulated:
        raise UsageError(
            "this state file was made with --simulate; it cannot be resumed against a real"
            " endpoint. Start a new state file (--state NEW_PATH) for the real run"
        )
    if not new_target or was_simulated:
        return
    before = (saved.get("endpoint"), saved.get("endpoint_template"))
    now = (opts.get("endpoint"), opts.get("endpoint_template"))
    if before != now and not opts.get("accept_changed_endpoint"):
        raise UsageError(
            f"the endpoint differs from the state file's: was {_endpoint_text(*before)},"
            f" now {_endpoint_text(*now)}. Jobs already accepted are followed at the new"
            " endpoint only if you say so: add --accept-changed-endpoint"
        )


def _endpoint_text(endpoint: str | None, template: str | None) -> str:
    return f"--endpoint {endpoint}" if endpoint else f"--endpoint-template {template}"


def _changed_request_options(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    recorded = saved.get("request_options")
    if not isinstance(recorded, dict):
        return []
    return [
        f"{name}: was {recorded.get(name)!r}, now {value!r}"
        for name, value in now.items()
        if recorded.get(name) != value
    ]


def _saved_mode(given: int | None, saved: dict[str, Any]) -> int:
    """--report-mode given now, else the state file's latest, else 0600."""
    if given is not None:
        return given
    try:
        return parse_mode(str(saved.get("report_mode") or "0600"))
    except ValueError:
        return PRIVATE_FILE  # a state file's value is never trusted to widen access


def _invocation(
    location: StateLocation,
    inventory: Path | None,
    opts: dict[str, Any],
    defaults: InventoryDefaults,
) -> Invocation:
    """Options given now, else those of the latest invocation, else defaults; checked
    before the state file is touched, so a usage error leaves nothing behind."""
    check_simulate_alone(opts)
    saved = _saved_options(location)
    _check_same_cloud(saved, opts)
    new_target = opts.get("endpoint") or opts.get("endpoint_template") or opts.get("os_cloud")
    simulate_flag = bool(opts.get("simulate") or (saved.get("simulate") and not new_target))
    settings = settings_from(opts, saved, simulate_flag)
    # A PostgreSQL campaign is resumed from any host: the last one's report folder is
    # a path on that host, so the default there is ./reports.
    saved_dir = saved.get("report_dir") if isinstance(location, SqliteLocation) else None
    report_dir = opts.get("report_dir") or Path(saved_dir or "reports")
    inv = Invocation(
        state_path=location.path if isinstance(location, SqliteLocation) else Path(location.label),
        location=location,
        report_dir=report_dir,
        settings=settings,
        inventory=inventory,
        defaults=defaults,
        live_progress=False if opts.get("no_live") else None,
        group_by=opts.get("group_by") or saved.get("group_by"),
        report_mode=_saved_mode(opts.get("report_mode"), saved),
    )
    inv.user_data = _user_data(opts, saved)
    inv.rollout = rollout_from(opts, saved)
    inv.ack_failures = bool(opts.get("ack_failures"))
    inv.journal_lost = bool(opts.get("journal_lost"))
    inv.known_jobs = known_jobs(opts.get("known_jobs") or (), opts.get("known_jobs_file"))
    inv.confirm = confirm_on_terminal if inv.rollout.confirm_waves else None
    request_options = _request_options(defaults, inv.user_data) if inventory is not None else None
    if request_options is not None:
        changed = _changed_request_options(saved, request_options)
        if changed and not opts.get("accept_changed_options"):
            raise UsageError(
                "request options differ from the state file's ("
                + "; ".join(changed)
                + "). Add --accept-changed-options to apply the new ones to the targets"
                " nothing was sent for yet (the others keep what they were sent with)"
            )
        inv.apply_request_options = bool(changed)
    else:
        request_options = saved.get("request_options")
        if isinstance(request_options, dict) and inv.user_data is not None:
            request_options = {**request_options, "user_data_sha256": inv.user_data.sha256}
    if simulate_flag:
        inv.simulate = SimulatorConfig(
            seed=opts.get("sim_seed") or 0,
            job_seconds=_job_seconds(opts.get("sim_job_seconds") or "1:3"),
            job_fail_rate=opts.get("sim_job_fail_rate") or 0.0,
        )
    else:
        _cloud_and_endpoints(inv, opts, saved)
    if settings.skip_reinstalled_since is not None and not settings.preflight:
        raise UsageError("--skip-reinstalled-since reads each server first: drop --no-preflight")
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
        "settle_quiet": settings.settle_quiet,
        "no_preflight": not settings.preflight,
        "max_clock_skew": settings.max_clock_skew,
        "verify": settings.verify,
        "busy_rechecks": settings.busy_rechecks,
        "busy_recheck_delay": settings.busy_recheck_delay,
        "skip_reinstalled_since": (
            settings.skip_reinstalled_since.isoformat() if settings.skip_reinstalled_since else None
        ),
        "request_options": request_options,
        "encoding": defaults.encoding,
        "auth": inv.cloud.auth_type if inv.cloud else ("simulator" if simulate_flag else None),
        "os_cloud": inv.cloud.cloud if inv.cloud and inv.cloud.source == "clouds.yaml" else None,
        "credentials": inv.cloud.describe() if inv.cloud else None,
        "cloud": inv.endpoints.cloud if inv.endpoints else None,
        "region": inv.endpoints.region if inv.endpoints else None,
        "ca_bundle": str(inv.ca.path) if inv.ca.path else None,
        "ca_bundle_source": inv.ca.source,
        "group_by": inv.group_by,
        "report_mode": f"{inv.report_mode:04o}",
        "state": location.label,  # never a password: a DSN with one is refused
        "shard": str(settings.shard) if settings.shard else None,
        # Where the user data came from and its hash: never its content.
        "user_data": inv.user_data.describe() if inv.user_data else None,
        "rollout": inv.rollout.to_dict(),
    }
    return inv


def _cloud_and_endpoints(inv: Invocation, opts: dict[str, Any], saved: dict[str, Any]) -> None:
    """Credentials, endpoints and CAs for a real cloud; every check before anything starts.

    A resumed run keeps the cloud, region and endpoints it was started with unless
    they are given again; the password is read again from where it lives.
    """
    os_cloud = opts.get("os_cloud") or saved.get("os_cloud")
    config = cloudconfig.load(os_cloud, os.environ)
    if config is None:
        raise UsageError(
            "no credentials: use --os-cloud NAME (clouds.yaml), the OS_* variables "
            "(OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, ...), OS_AUTH_TOKEN, or "
            "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"
        )
    inv.cloud = config
    if config.auth_type == "password" and config.auth_url:
        check_endpoint(config.auth_url)  # IAM gets the password: https unless loopback
    inv.endpoint = opts.get("endpoint") or (
        None if opts.get("endpoint_template") else saved.get("endpoint")
    )
    inv.endpoint_template = opts.get("endpoint_template") or (
        None if opts.get("endpoint") else saved.get("endpoint_template")
    )
    region = opts.get("region") or saved.get("region") or config.region_name
    if region and not opts.get("region"):  # --region was checked when parsed
        check_region(region, "the state file's region" if saved.get("region") else config.label)
    cloud = opts.get("cloud") or saved.get("cloud") or regions.guess_cloud(config.auth_url)
    if (
        inv.endpoint is None
        and inv.endpoint_template is None
        and cloud is None
        and config.auth_type != "password"
    ):
        raise UsageError(
            "give --endpoint or --endpoint-template (or --simulate), or --cloud otc|huawei "
            "with --region"
        )
    if cloud and region and not regions.is_known(cloud, region):
        echo(
            f"warning: region {region!r} is not among the known {cloud} regions; "
            f"trying {regions.ecs_endpoint(cloud, region)}",
            err=True,
        )
    # Raises UsageError when unsafe or incomplete.
    inv.endpoints = Endpoints(
        inv.endpoint,
        inv.endpoint_template,
        cloud=cloud,
        region=region,
        catalog=config.auth_type == "password",
    )
    ca_option = opts.get("ca_bundle")
    saved_ca = saved.get("ca_bundle") if saved.get("ca_bundle_source") == "--ca-bundle" else None
    inv.ca = ca_bundle(
        ca_option or (Path(saved_ca) if saved_ca else None), config.cacert, os.environ
    )
    ssl_context(inv.ca)  # a file that is no PEM bundle: refused now, not mid-run


def _start(
    location: StateLocation,
    inventory: Path | None,
    opts: dict[str, Any],
    defaults: InventoryDefaults,
    *,
    selection: Selection | None = None,
    retry: RetryRequest | None = None,
) -> int:
    fmt = str(opts.get("log_format") or "text").lower()
    inv = _invocation(location, inventory, opts, defaults)
    if selection is not None:
        selection.check()
        inv.selection = selection
    if retry is not None:
        retry.check()
    secrets = inv.cloud.secrets() if inv.cloud else ()
    setup_logging(None, opts["log_level"], secrets, fmt)
    check_report_dir(inv.report_dir, inv.report_mode)
    store = open_state(inv)
    try:
        if retry is not None:
            # Chosen before the invocation starts: a selection of nothing is exit 2.
            inv.retry = (retry, plan_retry(store, retry))
        # Only now are the inventory's columns known; still nothing has been sent.
        check_group_by(store.run_info(), inv.group_by)
        # The log file starts once the state file exists: an invalid inventory leaves neither.
        setup_logging(
            opts.get("log_file") or location.log_path(inv.report_dir, inv.settings.shard),
            opts["log_level"],
            secrets,
            fmt,
        )
        if inv.cloud is not None:
            # Where the credentials came from and whose they are; never a secret.
            about = {k: v for k, v in inv.cloud.describe().items() if v}
            logging.getLogger("orchestrator.campaign").info(
                "credentials: %s; CA: %s",
                ", ".join(f"{k}={v}" for k, v in about.items()),
                inv.ca.source,
            )
        try:
            result = asyncio.run(execute(inv, store))
        except StoreFailure as exc:
            # The database went away during the run: whatever was sent is recorded as
            # intent; a resume (from any host) settles it. Not finished: exit 3.
            echo(f"error: {exc}", err=True)
            echo(f"not finished; continue with: orchestrator resume {_resume(inv)}", err=True)
            return 3
    finally:
        store.close()
    outcome = result.outcome
    for line in end_of_run(
        outcome.counts,
        # What follows `resume --state`: the file, or the DSN with its campaign (and shard).
        state_path=_resume(inv).removeprefix("--state "),
        requests=result.requests,
        deferred=outcome.deferred,
        stopped=outcome.stopped,
        aborted=outcome.aborted,
        credentials_refused=outcome.credentials_refused,
    ):
        echo(line.text, err=line.err)
    if outcome.held:
        echo(f"held: {outcome.held}", err=True)
    if result.report is not None:
        echo(f"report: {result.report.directory}")
        for path in (
            result.report.summary_json,
            result.report.targets_csv,
            result.report.report_md,
            result.report.report_html,
            result.report.retry_csv,
        ):
            if path is not None:
                echo(f"  {path}")
    if result.report_error:
        echo(
            f"error: {result.report_error}\n  the state is intact; write the report later "
            f"with: orchestrator report {location.resume_args()} --report-dir DIR",
            err=True,
        )
    if outcome.unrecorded:
        _list_unrecorded(outcome.unrecorded, result, inv)
    return outcome.exit_code


def _list_unrecorded(answers: Sequence[Answer], result: Result, inv: Invocation) -> None:
    """Job ids the service returned that the state store could not record: shown, and
    written next to the report, so that a resume can be given them (--known-jobs)."""
    echo(
        f"error: {len(answers)} job id(s) the service returned could not be recorded in"
        " the state file; a resume must be given them, or it would take those servers"
        " for untouched while their jobs may still be queued:",
        err=True,
    )
    for answer in answers:
        echo(f"  {answer.describe()}", err=True)
    folder = result.report.directory if result.report is not None else inv.report_dir
    path = folder / f"unrecorded-jobs-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv"
    rows = [(a.target.project_id, a.target.server_id, a.job_id) for a in answers]
    try:
        write_unrecorded(path, rows)
        given = f"--known-jobs {path}"
    except OSError as exc:
        echo(f"  (could not write {path}: {exc.strerror})", err=True)
        given = " ".join(f"--known-job {p}/{s}={j}" for p, s, j in rows)
    echo(f"resume with: orchestrator resume {_resume(inv)} {given}", err=True)


def _encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--encoding: any text encoding Python knows, else a usage error (exit 2)."""
    if value is None:
        return None
    try:
        check_encoding(value)
    except EncodingProblem as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def user_data_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--user-data",
        type=click.Path(path_type=Path),
        help=(
            "Text file (script or cloud-config, at most 32 KB) injected by Cloud-Init into"
            " the targets sent with the Cloud-Init API; base64-encoded, never logged or"
            " stored (only its path and sha256).  [default: the state file's]"
        ),
    )(fn)


def accept_changed_user_data(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--accept-changed-options",
        is_flag=True,
        help="Go on although the user data file changed since the state file's runs.",
    )(fn)


def cloud_init_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = user_data_option(fn)
    return click.option(
        "--cloud-init",
        is_flag=True,
        default=None,
        help=(
            "Use the Cloud-Init reinstall API (POST /v2/.../reinstallos), where the"
            " inventory's cloud_init column does not say."
        ),
    )(fn)


def selection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--only-project",
            "only_project",
            multiple=True,
            metavar="ID",
            help="Only the servers of this project (repeatable).",
        ),
        click.option(
            "--exclude",
            type=click.Path(path_type=Path, dir_okay=False),
            metavar="FILE",
            help="Leave out the servers of this inventory (CSV or JSON; a report's"
            " targets.csv or retry.csv will do).",
        ),
        click.option(
            "--limit",
            type=int,
            metavar="N",
            help="Only the first N servers (after --only-project and --exclude).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _selection(opts: dict[str, Any], encoding: str | None) -> Selection:
    return Selection(
        only_projects=tuple(opts.pop("only_project", None) or ()),
        limit=opts.pop("limit", None),
        exclude=opts.pop("exclude", None),
        encoding=encoding,
    )


encoding_option = click.option(
    "--encoding",
    callback=_encoding,
    help=(
        "Text encoding of the inventory where it has no byte order mark, e.g. cp1252 "
        "for a spreadsheet saved on Windows.  [default: UTF-8; UTF-8/16/32 with a BOM "
        "are recognised]"
    ),
)


def preflight_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`plan`'s connection options: those of `run` that a read of the servers needs."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option(
            "--preflight",
            is_flag=True,
            help="Read every server (paced like a run, same credentials and endpoints) and "
            "report what would block a reinstall; writes preflight.csv and preflight.json. "
            "Exit 0 when nothing blocks, 1 otherwise, 2 when credentials or the endpoint fail.",
        ),
        click.option(
            "--state",
            "state_path",
            type=click.Path(path_type=Path, dir_okay=False),
            help="A run's state file: show what a resume would do (final, in doubt, "
            "pending); with --preflight, read only the targets still pending.",
        ),
        click.option("--os-cloud", metavar="NAME", help="As for run."),
        click.option("--cloud", type=click.Choice(["otc", "huawei"]), help="As for run."),
        region_option(help="As for run."),
        click.option(
            "--ca-bundle", type=click.Path(path_type=Path, dir_okay=False), help="As for run."
        ),
        click.option("--simulate", is_flag=True, help="Read from the built-in simulator."),
        click.option(
            "--report-dir",
            type=click.Path(path_type=Path),
            help="Where the preflight report goes.  [default: reports]",
        ),
        click.option("--poll-rate", type=POSITIVE, help="Server reads per second.  [default: 50]"),
        click.option("--skip-reinstalled-since", metavar="TIME", help="As for run."),
        click.option("--accept-changed-endpoint", is_flag=True, help="As for run."),
        click.option("--sim-seed", type=int, default=0, show_default=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@cli.command(epilog=EXIT_CODES)
@click.argument("inventory", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--state",
    "state_path",
    metavar="PATH|URL",
    help="SQLite state file, or a PostgreSQL database postgresql://USER@HOST:PORT/DB"
    " (password from PGPASSWORD or ~/.pgpass).  [default: <report-dir>/<inventory>.state.sqlite]",
)
@CAMPAIGN_OPTION
@encoding_option
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
@click.option(
    "--accept-changed-options",
    is_flag=True,
    help=(
        "Re-running with other --keyname/--userid/--stop-server/--byol/--cloud-init/"
        "--user-data than the state file's: apply them to the targets nothing was sent for yet."
    ),
)
@cloud_init_options
@selection_options
@run_options
@guarded
def run(
    inventory: Path,
    state_path: str | None,
    campaign: str | None,
    keyname: str | None,
    userid: str | None,
    stop_server: bool,
    byol: bool | None,
    encoding: str | None,
    cloud_init: bool | None,
    **opts: Any,
) -> int:
    """Reinstall every server in INVENTORY (CSV or JSON) and write the report.

    Running the same command again resumes: nothing already succeeded is sent again,
    and options not given again are the state file's (the defaults shown apply to a
    new state file). With --only-project/--exclude/--limit only part of the
    inventory is imported; the report says how many were left out.
    """
    location = state_location(
        state_path or str(default_state_path(inventory, opts["report_dir"] or Path("reports"))),
        campaign,
        inventory,
    )
    selection = _selection(opts, encoding)
    defaults = InventoryDefaults(
        keyname,
        userid,
        "withStopServer" if stop_server else None,
        byol,
        encoding,
        cloud_init=cloud_init,
    )
    return _start(location, inventory, opts, defaults, selection=selection)


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--state",
    "state_path",
    required=True,
    metavar="PATH|URL",
    help="The state file of the run to resume, or its PostgreSQL database (with --campaign).",
)
@CAMPAIGN_OPTION
@user_data_option
@accept_changed_user_data
@run_options
@guarded
def resume(state_path: str, campaign: str | None, **opts: Any) -> int:
    """Resume a run from its state file, without the inventory.

    Every option not given again is taken from the state file's latest
    invocation (the defaults shown apply only to options it never set),
    including where the report goes.
    """
    return _start(state_location(state_path, campaign), None, opts, InventoryDefaults())


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--state",
    "state_path",
    required=True,
    metavar="PATH|URL",
    help="The state file whose targets to send again, or its PostgreSQL database.",
)
@CAMPAIGN_OPTION
@click.option(
    "--state-is",
    type=click.Choice(STATES_IS),
    default="failed",
    show_default=True,
    help="failed: failed targets; deferred: pending ones a run deferred; unverified:"
    " failed as Orchestrator.Unverified (needs --i-checked-unverified).",
)
@click.option(
    "--error-code",
    "error_codes",
    multiple=True,
    metavar="CODE",
    help="Only this code (repeatable).",
)
@click.option(
    "--project", "projects", multiple=True, metavar="ID", help="Only this project (repeatable)."
)
@click.option(
    "--i-checked-unverified",
    is_flag=True,
    help="Include Orchestrator.Unverified targets: you checked that they were not reinstalled.",
)
@user_data_option
@accept_changed_user_data
@run_options
@guarded
def retry(
    state_path: str,
    campaign: str | None,
    state_is: str,
    error_codes: tuple[str, ...],
    projects: tuple[str, ...],
    i_checked_unverified: bool,
    **opts: Any,
) -> int:
    """Send again only the selected targets of a state file, as a new attempt.

    By default every failed target except those failed as Orchestrator.Unverified
    (their reinstall may have happened: check them, then --i-checked-unverified).
    Each is sent with the values it was sent with before; no other target is
    sent. Targets left mid-way by an earlier invocation are settled and followed
    as by resume. The events keep every attempt; the report is written as for a run.
    """
    request = RetryRequest(
        state_is=state_is,
        error_codes=tuple(error_codes),
        projects=tuple(projects),
        checked_unverified=i_checked_unverified,
    )
    location = state_location(state_path, campaign)
    return _start(location, None, opts, InventoryDefaults(), retry=request)


@cli.command(epilog=EXIT_CODES)
@click.option("--state", "state_path", required=True, metavar="PATH|URL", help=STATE_HELP)
@CAMPAIGN_OPTION
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
    type=Number(min=0.2, metavar="SECONDS"),
    is_flag=False,
    flag_value=2.0,
    default=None,
    metavar="[SECONDS]",
    help="Refresh every SECONDS (2 if not given) until the run is no longer running.",
)
@guarded
def status(
    state_path: str, campaign: str | None, as_json: bool, failures: int, watch: float | None
) -> int:
    """Counts by state, failures by error code, in-doubt and deferred targets, elapsed
    and ETA; during a run too (reads the state file without locking or slowing it).
    Exits as a run would for the same state: 0, 1, or 3 while not finished."""
    where = state_path if is_dsn(state_path) else check_state_file(Path(state_path))
    if campaign is not None and not is_dsn(state_path):
        state_location(state_path, campaign)  # refuses --campaign with a state file
    if watch is None:
        snap = read_status(where, examples=failures, campaign=campaign)
        with state_location(state_path, campaign).open(readonly=True) as store:
            rollout = rollout_summary(store)
            if store.journal_missing:
                echo(f"warning: {store.journal_missing}", err=True)
        wave, window = status_fields(rollout)
        snap = dataclasses.replace(snap, wave=wave, window=window)
        if as_json:
            echo(json.dumps(status_to_dict(snap), indent=2))
        else:
            echo(render_text(snap))
            for line in status_lines(rollout):
                echo(line)
        return snap.exit_code
    return watch_status(where, watch, as_json=as_json, examples=failures, campaign=campaign)


@cli.command(epilog=EXIT_CODES)
@click.option("--state", "state_path", required=True, metavar="PATH|URL", help=STATE_HELP)
@CAMPAIGN_OPTION
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    help="Where to write it.  [default: the run's own report directory]",
)
@GROUP_BY_OPTION
@REPORT_MODE_OPTION
@guarded
def report(
    state_path: str,
    campaign: str | None,
    report_dir: Path | None,
    group_by: str | None,
    report_mode: int | None,
) -> int:
    """Write the report again from the state (of every shard). Exits as the run would for
    the same state: 0 all succeeded, 1 finished with failures, 3 not finished."""
    location = state_location(state_path, campaign)
    with location.open(readonly=True) as store:
        if store.journal_missing:
            echo(f"warning: {store.journal_missing}", err=True)
        run = store.run_info()
        # A PostgreSQL campaign's recorded folder is on whichever host ran it last.
        saved = run.options.get("report_dir") if isinstance(location, SqliteLocation) else None
        target_dir = report_dir or Path(saved or "reports")
        group_by = group_by or run.options.get("group_by")
        check_group_by(run, group_by)
        paths = write_campaign_report(
            target_dir,
            store,
            group_by=group_by,
            rollout=rollout_summary(store),
            mode=_saved_mode(report_mode, run.options),
        )
        counts = store.counts()
    echo(f"report: {paths.directory}")
    echo(f"  {paths.report_html}")
    return exit_code(counts)


@cli.command()
@click.option(
    "--state",
    "state_path",
    required=True,
    metavar="PATH",
    help="The SQLite state file to copy.",
)
@click.argument("destination", type=click.Path(path_type=Path, dir_okay=False))
@guarded
def backup(state_path: str, destination: Path) -> int:
    """Copy a state file into DESTINATION: one self-contained file, safe to move to
    another host and resume there. While a run holds a state file it is two files
    (the database and its -wal journal), and a copy of the first alone is refused;
    so is a backup while a run holds it. A PostgreSQL campaign is backed up with
    pg_dump."""
    if is_dsn(state_path):
        raise UsageError("backup copies a SQLite state file; back up PostgreSQL with pg_dump")
    state_backup(Path(state_path), destination)
    echo(f"state {state_path} copied to {destination}")
    return 0


@cli.command(epilog=EXIT_CODES)
@click.argument("inventory", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--keyname")
@click.option("--userid")
@click.option("--stop-server", is_flag=True)
@click.option("--byol/--no-byol", default=None)
@click.option("--endpoint", help="As for run (a single endpoint needs no region).")
@click.option(
    "--endpoint-template", help="As for run: then every server needs a region, checked here."
)
@encoding_option
@click.option("--rate", type=POSITIVE, default=10.0, show_default=True)
@click.option("--max-in-flight", type=click.IntRange(min=1), default=200, show_default=True)
@click.option(
    "--job-seconds",
    "--expected-job-seconds",
    "job_seconds",
    type=POSITIVE_SECONDS,
    default=300.0,
    show_default=True,
    help="Expected duration of one reinstall, for the estimate.",
)
@preflight_options
@cloud_init_options
@selection_options
@click.option("--pause-between-waves", type=SECONDS, default=0.0, metavar="S")
@plan_options
@guarded
def plan(
    inventory: Path,
    keyname: str | None,
    userid: str | None,
    stop_server: bool,
    byol: bool | None,
    endpoint: str | None,
    endpoint_template: str | None,
    encoding: str | None,
    rate: float,
    max_in_flight: int,
    job_seconds: float,
    cloud_init: bool | None,
    user_data: Path | None,
    pause_between_waves: float,
    **opts: Any,
) -> int:
    """Validate INVENTORY and show what a run would do, without sending anything."""
    check_simulate_alone({**opts, "endpoint": endpoint, "endpoint_template": endpoint_template})
    if opts.get("state_path") is not None:
        check_state_file(opts["state_path"])  # a FIFO would block the read
    if endpoint or endpoint_template:
        Endpoints(endpoint, endpoint_template)  # a URL that cannot be used: exit 2 here too
    data = load_user_data(user_data) if user_data is not None else None
    defaults = InventoryDefaults(
        keyname,
        userid,
        "withStopServer" if stop_server else None,
        byol,
        encoding,
        cloud_init=cloud_init,
    )
    selected = SelectionFilter.build(_selection(opts, encoding))
    reader = InventoryReader(inventory, defaults)
    regions = RegionCheck(str(inventory), needed=bool(endpoint_template and not endpoint))
    per_project: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    apis: Counter[str] = Counter()
    for spec in selected.filtered(regions.checked(reader)):
        per_project[spec.project_id] += 1
        modes[spec.mode or "(none)"] += 1
        apis["Cloud-Init (v2)" if spec.cloud_init else "v1"] += 1
    n = sum(per_project.values())
    # An invalid inventory: its problems, and no estimate for a run that cannot start.
    if reader.problem_count or regions.problems:
        raise InventoryError(
            reader.problems + regions.problems,
            total=reader.problem_count + len(regions.problems),
        )
    layout = reader.format if reader.dialect is None else f"csv, {reader.dialect.name}-separated"
    echo(
        f"inventory {inventory} ({layout}, {reader.encoding.label}): "
        f"{reader.rows} rows, {n + selected.total_left_out} valid targets"
        + (f", {n} selected" if selected.selection.active else "")
    )
    echo("defaults: " + _defaults_text(reader.defaults_in_effect, defaults))
    for project, count in sorted(per_project.items()):
        echo(f"  project {project}: {count}")
    echo("  mode: " + ", ".join(f"{m} {c}" for m, c in sorted(modes.items())))
    echo("  API: " + ", ".join(f"{a} {c}" for a, c in sorted(apis.items())))
    if data is not None:
        echo(
            f"  user data: {data.path} ({data.size} bytes, sha256 {data.sha256[:12]}…),"
            f" sent to the {apis['Cloud-Init (v2)']} Cloud-Init target(s)"
        )
    if selected.selection.active:
        note = left_out_text(selected.record())
        echo(f"  selection: {note or f'{selected.selected} selected, none left out'}")
    if reader.columns:
        echo("  extra columns kept for the report: " + ", ".join(reader.columns))
    if selected.selection.active and n == 0:
        raise UsageError("--only-project/--exclude/--limit leave no server of the inventory")
    rollout_keys = RolloutOptions.__dataclass_fields__
    options = RolloutOptions(
        **{k: v for k, v in opts.items() if k in rollout_keys and v is not None},
        pause_between_waves=pause_between_waves,
    ).check()
    for line in plan_lines(
        per_project, options, rate=rate, max_in_flight=max_in_flight, job_seconds=job_seconds
    ):
        echo(line)
    echo("no problems found; nothing was sent")
    state_path: Path | None = opts.get("state_path")
    if state_path is not None:
        show_resume(state_path)
    if not opts.get("preflight"):
        return 0
    opts.update(
        endpoint=endpoint,
        endpoint_template=endpoint_template,
        rate=rate,
        max_in_flight=max_in_flight,
    )
    return run_preflight(inventory, defaults, opts)


def show_resume(state_path: Path) -> None:
    """What `resume --state` would do with the state file, by state."""
    with StateStore.open(state_path, readonly=True) as store:
        counts = store.counts()
    final = sum(n for s, n in counts.items() if s in FINAL_STATES)
    doubt = counts.get(TargetState.IN_DOUBT, 0) + counts.get(TargetState.SUBMITTING, 0)
    following = counts.get(TargetState.SUBMITTED, 0) + counts.get(TargetState.RUNNING, 0)
    pending = counts.get(TargetState.PENDING, 0)
    echo(
        f"state {state_path}: a resume would leave {final} final target(s) alone "
        f"({', '.join(f'{n} {s.value}' for s, n in counts.items() if n and s in FINAL_STATES)}"
        f"{'' if final else 'none'}), settle {doubt} in doubt from the servers, "
        f"follow {following} job(s) under way and send {pending} pending"
    )


def run_preflight(inventory: Path, defaults: InventoryDefaults, opts: dict[str, Any]) -> int:
    """Read every server of INVENTORY (or the state file's pending targets) and report."""
    state_path: Path | None = opts.get("state_path")
    report_dir = opts.get("report_dir") or Path("reports")
    location = SqliteLocation(state_path or default_state_path(inventory, report_dir))
    inv = _invocation(location, None, opts, defaults)
    setup_logging(None, "WARNING", inv.cloud.secrets() if inv.cloud else ())
    check_report_dir(inv.report_dir)
    states: dict[tuple[str, str], TargetState] | None = None
    if state_path is not None:
        with StateStore.open(state_path, readonly=True) as store:
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
        return result.exit_code
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
    return result.exit_code


PREFLIGHT_LISTED = 10  # blocking servers listed per finding on the terminal


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
    sys.excepthook = excepthook
    cli(standalone_mode=True)
