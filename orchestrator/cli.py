"""Command line: parse, set up logging, call one async function, map the outcome to an exit code.

Exit codes:
    0  every target succeeded
    1  the run finished and some targets failed
    2  invalid input or usage, an unusable state file or report directory,
       or credentials refused; nothing unsafe was done
    3  stopped before finishing (interrupted, or work deferred); resume to continue
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from orchestrator import cloudconfig, eventloop, regions
from orchestrator.campaign import (
    Invocation,
    RegionCheck,
    check_report_dir,
    default_state_path,
    execute,
    open_state,
)
from orchestrator.endpoints import Endpoints, check_endpoint
from orchestrator.errors import IncompleteImport, InventoryError, OrchestratorError, UsageError
from orchestrator.inventory import (
    EncodingProblem,
    InventoryDefaults,
    InventoryReader,
    check_encoding,
)
from orchestrator.logsetup import setup_logging
from orchestrator.messages import end_of_run
from orchestrator.network import ca_bundle
from orchestrator.report import (
    check_group_by,
    write_campaign_report,
)
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
        click.option(
            "--region",
            metavar="REGION",
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
            "--settle-quiet",
            type=float,
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
        settle_quiet=_positive("--settle-quiet", pick("settle_quiet", 10.0 if fast else 600.0)),
        preflight=not (opts.get("no_preflight") or saved.get("no_preflight", False)),
        skip_reinstalled_since=_since(pick("skip_reinstalled_since", None)),
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
    return parsed


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


def _request_options(defaults: InventoryDefaults) -> dict[str, Any]:
    """The request options given on the command line, as recorded in the state file."""
    return {
        "keyname": defaults.keyname,
        "userid": defaults.userid,
        "mode": defaults.mode,
        "byol": defaults.byol,
    }


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


def _invocation(
    state_path: Path,
    inventory: Path | None,
    opts: dict[str, Any],
    defaults: InventoryDefaults,
) -> Invocation:
    """Options given now, else those of the latest invocation, else defaults; checked
    before the state file is touched, so a usage error leaves nothing behind."""
    saved = _saved_options(state_path)
    _check_same_cloud(saved, opts)
    new_target = opts.get("endpoint") or opts.get("endpoint_template") or opts.get("os_cloud")
    simulate_flag = bool(opts.get("simulate") or (saved.get("simulate") and not new_target))
    settings = settings_from(opts, saved, simulate_flag)
    report_dir = opts.get("report_dir") or Path(saved.get("report_dir") or "reports")
    inv = Invocation(
        state_path=state_path,
        report_dir=report_dir,
        settings=settings,
        inventory=inventory,
        defaults=defaults,
        live_progress=False if opts.get("no_live") else None,
        group_by=opts.get("group_by") or saved.get("group_by"),
    )
    request_options = _request_options(defaults) if inventory is not None else None
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
        click.echo(
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


def _start(
    state_path: Path,
    inventory: Path | None,
    opts: dict[str, Any],
    defaults: InventoryDefaults,
) -> int:
    fmt = str(opts.get("log_format") or "text").lower()
    inv = _invocation(state_path, inventory, opts, defaults)
    secrets = inv.cloud.secrets() if inv.cloud else ()
    setup_logging(None, opts["log_level"], secrets, fmt)
    check_report_dir(inv.report_dir)
    store = open_state(inv)
    try:
        # Only now are the inventory's columns known; still nothing has been sent.
        check_group_by(store.run_info(), inv.group_by)
        # The log file starts once the state file exists: an invalid inventory leaves neither.
        setup_logging(
            opts.get("log_file") or state_path.with_suffix(".log"), opts["log_level"], secrets, fmt
        )
        if inv.cloud is not None:
            # Where the credentials came from and whose they are; never a secret.
            about = {k: v for k, v in inv.cloud.describe().items() if v}
            logging.getLogger("orchestrator.campaign").info(
                "credentials: %s; CA: %s",
                ", ".join(f"{k}={v}" for k, v in about.items()),
                inv.ca.source,
            )
        result = eventloop.run(execute(inv, store))
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
            result.report.report_html,
        ):
            click.echo(f"  {path}")
    if result.report_error:
        click.echo(
            f"error: {result.report_error}\n  the state file is intact; write the report later "
            f"with: orchestrator report --state {state_path} --report-dir DIR",
            err=True,
        )
    return outcome.exit_code


def _encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--encoding: any text encoding Python knows, else a usage error (exit 2)."""
    if value is None:
        return None
    try:
        check_encoding(value)
    except EncodingProblem as exc:
        raise click.BadParameter(str(exc)) from None
    return value


encoding_option = click.option(
    "--encoding",
    callback=_encoding,
    help=(
        "Text encoding of the inventory where it has no byte order mark, e.g. cp1252 "
        "for a spreadsheet saved on Windows.  [default: UTF-8; UTF-8/16/32 with a BOM "
        "are recognised]"
    ),
)


@cli.command(epilog=EXIT_CODES)
@click.argument("inventory", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="SQLite state file.  [default: <report-dir>/<inventory>.state.sqlite]",
)
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
        "Re-running with other --keyname/--userid/--stop-server/--byol than the state file's:"
        " apply them to the targets nothing was sent for yet."
    ),
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
    encoding: str | None,
    **opts: Any,
) -> int:
    """Reinstall every server in INVENTORY (CSV or JSON) and write the report.

    Running the same command again resumes: nothing already succeeded is sent again.
    """
    state_path = state_path or default_state_path(inventory, opts["report_dir"] or Path("reports"))
    defaults = InventoryDefaults(
        keyname, userid, "withStopServer" if stop_server else None, byol, encoding
    )
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
    """Resume a run from its state file, without the inventory.

    Every option not given again is taken from the state file's latest
    invocation (the defaults shown apply only to options it never set),
    including where the report goes.
    """
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
@GROUP_BY_OPTION
@guarded
def report(state_path: Path, report_dir: Path | None, group_by: str | None) -> int:
    """Write the report again from the state file. Exits as the run would for the same
    state: 0 all succeeded, 1 finished with failures, 3 not finished."""
    with StateStore.open(state_path, readonly=True) as store:
        run = store.run_info()
        target_dir = report_dir or Path(run.options.get("report_dir") or "reports")
        group_by = group_by or run.options.get("group_by")
        check_group_by(run, group_by)
        paths = write_campaign_report(target_dir, store, group_by=group_by)
        counts = store.counts()
    click.echo(f"report: {paths.directory}")
    click.echo(f"  {paths.report_html}")
    return exit_code_for({state.value: n for state, n in counts.items()})


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
    endpoint: str | None,
    endpoint_template: str | None,
    encoding: str | None,
    rate: float,
    max_in_flight: int,
    job_seconds: float,
) -> int:
    """Validate INVENTORY and show what a run would do, without sending anything."""
    _positive("--rate", rate)
    _positive("--max-in-flight", max_in_flight)
    defaults = InventoryDefaults(
        keyname, userid, "withStopServer" if stop_server else None, byol, encoding
    )
    reader = InventoryReader(inventory, defaults)
    regions = RegionCheck(str(inventory), needed=bool(endpoint_template and not endpoint))
    per_project: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    for spec in regions.checked(reader):
        per_project[spec.project_id] += 1
        modes[spec.mode or "(none)"] += 1
    n = sum(per_project.values())
    # An invalid inventory: its problems, and no estimate for a run that cannot start.
    if reader.problem_count or regions.problems:
        raise InventoryError(
            reader.problems + regions.problems,
            total=reader.problem_count + len(regions.problems),
        )
    layout = reader.format if reader.dialect is None else f"csv, {reader.dialect.name}-separated"
    click.echo(
        f"inventory {inventory} ({layout}, {reader.encoding.label}): "
        f"{reader.rows} rows, {n} valid targets"
    )
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
