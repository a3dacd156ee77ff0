"""A run's options, resolved once: given now, else saved in the state, else the default.

    given now   the command line, as click parsed it (None where an option was not given)
    saved       the options recorded with the state's latest invocation ({} for a new one)
    defaults    RunSettings' own; shorter waits with --simulate (`SIMULATED`)

`resolve` merges them into one frozen `Invocation` that the engine and the commands
only read. Every value is checked here, a saved one too (a state file is input), and
a bad one is refused naming its option, before anything is created or sent. What
`Invocation.options` records with the invocation is what the next resume reads back
as `saved`: its keys and values are a format, kept as they are.

The cloud part (credentials, endpoints, CAs) is in `connection`, what is sent (request
options, user data, the part of the inventory) in `request_options`; the rollout's
merge with the plan fixed in the state, in `orchestrator.rollout.setup`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator import redact
from orchestrator.cli.checks import check_simulate_alone, check_state_file
from orchestrator.cli.connection import (
    Connection,
    check_same_cloud,
    connection_from,
    names_a_cloud,
)
from orchestrator.cli.request_options import request_record, user_data_from
from orchestrator.cli.rollout import confirm_on_terminal
from orchestrator.clocks import SERVICE_CLOCKS_AGREE_WITHIN
from orchestrator.cloud.network import CaBundle
from orchestrator.cloud.userdata import UserData
from orchestrator.console.notify import check_webhook
from orchestrator.engine.campaign import Invocation
from orchestrator.engine.known_jobs import known_jobs
from orchestrator.engine.retry_select import RetryRequest
from orchestrator.engine.selection import Selection
from orchestrator.engine.settings import RunSettings
from orchestrator.engine.shard import parse_shard
from orchestrator.errors import IncompleteImport, UsageError
from orchestrator.inventory import InventoryDefaults
from orchestrator.nofollow import PRIVATE_FILE, parse_mode
from orchestrator.rollout.options import RolloutOptions
from orchestrator.simulator import SimulatorConfig
from orchestrator.store import SqliteLocation, StateLocation, is_dsn, pg_location

__all__ = [
    "SIMULATED",
    "LogChoice",
    "report_dir_from",
    "report_mode_from",
    "resolve",
    "rollout_from",
    "saved_options",
    "settings_from",
    "state_location",
]

# With --simulate a job takes seconds: the waits that suit a cloud's minutes shrink.
SIMULATED: Mapping[str, float] = {
    "first_poll": 0.5,
    "poll_cap": 2.0,
    "settle_quiet": 10.0,
    "busy_recheck_delay": 2.0,
    "verify_within": 10.0,
    "audit_trail_delay": 5.0,
}
_DEFAULTS = RunSettings()
# Rollout flags: given False means "not given", so a resume keeps what the state has.
_ROLLOUT_FLAGS = ("keep_going", "confirm_waves")


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


def saved_options(location: StateLocation) -> dict[str, Any]:
    """The options of the state's latest invocation ({} for a new run)."""
    if not location.exists():
        return {}
    try:
        with location.open(readonly=True) as store:
            return store.last_options()
    except IncompleteImport:
        return {}  # nothing was ever run from it; open_state starts it over


def resolve(
    location: StateLocation,
    given: Mapping[str, Any],
    saved: Mapping[str, Any],
    *,
    inventory: Path | None = None,
    defaults: InventoryDefaults | None = None,
    selection: Selection | None = None,
    retry: RetryRequest | None = None,
    environ: Mapping[str, str] | None = None,
) -> Invocation:
    """The invocation's configuration, every value checked; nothing is created or sent.

    `inventory` and `defaults` are `run`'s (the request options, compared with the
    saved ones); `environ` is where credentials and CA variables are read.
    """
    defaults = InventoryDefaults() if defaults is None else defaults
    check_simulate_alone(given)
    check_same_cloud(saved, given)
    simulate = bool(given.get("simulate") or (saved.get("simulate") and not names_a_cloud(given)))
    settings = settings_from(given, saved, simulate)
    report_dir = report_dir_from(given.get("report_dir"), saved, location)
    group_by = given.get("group_by") or saved.get("group_by")
    report_mode = report_mode_from(given.get("report_mode"), saved)
    user_data = user_data_from(given, saved)
    rollout = rollout_from(given, saved)
    known = known_jobs(given.get("known_jobs") or (), given.get("known_jobs_file"))
    request_options, changed = request_record(given, saved, inventory, defaults, user_data)
    simulator = _simulator(given) if simulate else None
    environ = os.environ if environ is None else environ
    connection = None if simulate else connection_from(given, saved, environ)
    if settings.skip_reinstalled_since is not None and not settings.preflight:
        raise UsageError("--skip-reinstalled-since reads each server first: drop --no-preflight")
    if selection is not None:
        selection.check()
    if retry is not None:
        retry.check()
    ca = connection.ca if connection else CaBundle(None, "system")
    return Invocation(
        state_path=location.path if isinstance(location, SqliteLocation) else Path(location.label),
        location=location,
        report_dir=report_dir,
        settings=settings,
        inventory=inventory,
        defaults=defaults,
        endpoint=connection.endpoint if connection else None,
        endpoint_template=connection.endpoint_template if connection else None,
        cloud=connection.cloud if connection else None,
        endpoints=connection.endpoints if connection else None,
        ca=ca,
        simulate=simulator,
        simulate_seed=given.get("sim_seed") if simulate else None,
        live_progress=False if given.get("no_live") else None,
        apply_request_options=changed,
        group_by=group_by,
        report_mode=report_mode,
        user_data=user_data,
        selection=selection or Selection(),
        rollout=rollout,
        ack_failures=bool(given.get("ack_failures")),
        confirm=confirm_on_terminal if rollout.confirm_waves else None,
        journal_lost=bool(given.get("journal_lost")),
        known_jobs=known,
        notify=_webhooks(given.get("notify") or ()),
        metrics_file=given.get("metrics_file"),
        metrics_port=given.get("metrics_port"),
        metrics_address=_listen_address(given.get("metrics_address") or "127.0.0.1"),
        options=_recorded(
            location=location,
            report_dir=report_dir,
            settings=settings,
            simulate=simulate,
            connection=connection,
            ca=ca,
            request_options=request_options,
            encoding=defaults.encoding,
            group_by=group_by,
            report_mode=report_mode,
            user_data=user_data,
            rollout=rollout,
        ),
    )


def _listen_address(text: str) -> str:
    """--metrics-address: an IP address of this machine's, not a name to resolve."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"--metrics-address: not an IP address: {text!r}") from None


def _webhooks(urls: Iterable[str]) -> tuple[str, ...]:
    """--notify: each URL checked, and blanked from every output (its path is often the
    webhook's only secret)."""
    checked = tuple(urls)
    for url in checked:
        check_webhook(url)
    redact.register(*checked)
    return checked


def _recorded(
    *,
    location: StateLocation,
    report_dir: Path,
    settings: RunSettings,
    simulate: bool,
    connection: Connection | None,
    ca: CaBundle,
    request_options: Any,
    encoding: str | None,
    group_by: str | None,
    report_mode: int,
    user_data: UserData | None,
    rollout: RolloutOptions,
) -> dict[str, Any]:
    """The options recorded with the invocation (the runs table), read back as `saved`."""
    cloud = connection.cloud if connection else None
    endpoints = connection.endpoints if connection else None
    return {
        "report_dir": str(report_dir.resolve()),
        "endpoint": connection.endpoint if connection else None,
        "endpoint_template": connection.endpoint_template if connection else None,
        "simulate": simulate,
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
        "verify_within": settings.verify_within,
        "audit_trail": settings.audit_trail,
        "audit_trail_delay": settings.audit_trail_delay,
        "busy_rechecks": settings.busy_rechecks,
        "busy_recheck_delay": settings.busy_recheck_delay,
        "list_reads": settings.list_reads,
        "skip_reinstalled_since": (
            settings.skip_reinstalled_since.isoformat() if settings.skip_reinstalled_since else None
        ),
        "request_options": request_options,
        "encoding": encoding,
        "auth": cloud.auth_type if cloud else ("simulator" if simulate else None),
        "os_cloud": cloud.cloud if cloud and cloud.source == "clouds.yaml" else None,
        "credentials": cloud.describe() if cloud else None,
        "cloud": endpoints.cloud if endpoints else None,
        "region": endpoints.region if endpoints else None,
        "ca_bundle": str(ca.path) if ca.path else None,
        "ca_bundle_source": ca.source,
        "group_by": group_by,
        "report_mode": f"{report_mode:04o}",
        "state": location.label,  # never a password: a DSN with one is refused
        "shard": str(settings.shard) if settings.shard else None,
        # Where the user data came from and its hash: never its content.
        "user_data": user_data.describe() if user_data else None,
        "rollout": rollout.to_dict(),
    }


# -- the run's settings ----------------------------------------------------------------


def settings_from(
    given: Mapping[str, Any], saved: Mapping[str, Any], simulate: bool
) -> RunSettings:
    """Pacing, polling, settling and checking: each given now, else saved, else default."""

    def pick(name: str) -> Any:
        if given.get(name) is not None:
            return given[name]
        default = SIMULATED[name] if simulate and name in SIMULATED else getattr(_DEFAULTS, name)
        return saved.get(name, default)

    return RunSettings(
        rate=_positive("--rate", pick("rate")),
        poll_rate=_positive("--poll-rate", pick("poll_rate")),
        max_in_flight=int(_positive("--max-in-flight", pick("max_in_flight"))),
        job_timeout=_positive("--job-timeout", pick("job_timeout")),
        # Checked again here: a state file's saved values did not all pass the types.
        first_poll=_positive("--first-poll", pick("first_poll")),
        poll_cap=_positive("--poll-cap", pick("poll_cap")),
        settle_delay=_positive("--first-poll", pick("first_poll")),
        drain_timeout=_not_negative("--drain-timeout", pick("drain_timeout")),
        settle_quiet=_positive("--settle-quiet", pick("settle_quiet")),
        preflight=not (given.get("no_preflight") or saved.get("no_preflight", False)),
        max_clock_skew=_positive("--max-clock-skew", pick("max_clock_skew")),
        # The built-in simulator writes every time from one clock.
        clock_margin=0.0 if simulate else SERVICE_CLOCKS_AGREE_WITHIN,
        skip_reinstalled_since=_since(pick("skip_reinstalled_since")),
        expected_job_seconds=given.get("expected_job_seconds"),
        # Never taken from the latest invocation: that may have been another shard's.
        shard=parse_shard(given.get("shard")),
        verify=bool(pick("verify")),
        verify_within=_positive("--verify-within", pick("verify_within")),
        audit_trail=_audit_trail(pick("audit_trail")),
        audit_trail_delay=_positive("--audit-trail-delay", pick("audit_trail_delay")),
        busy_rechecks=_count("--busy-rechecks", pick("busy_rechecks"), high=30),
        busy_recheck_delay=_positive("--busy-recheck-delay", pick("busy_recheck_delay")),
        list_reads=bool(pick("list_reads")),
    )


def _audit_trail(value: Any) -> str | None:
    if value in (None, "cts"):
        return value  # type: ignore[no-any-return]
    raise UsageError(f"--audit-trail {value!r}: the one audit trail known is 'cts'")


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):  # AttributeError: a saved value that is no text
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
    if not _number(value) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{flag} must be a positive number, got {value!r}")
    return float(value)


def _not_negative(flag: str, value: Any) -> float:
    if not _number(value) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{flag} must be a number >= 0, got {value!r}")
    return float(value)


def _count(flag: str, value: Any, *, high: int) -> int:
    # The option's type (an IntRange) checks it when given; a saved one is checked here.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise UsageError(f"{flag} must be a whole number in [0, {high}], got {value!r}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _job_seconds(text: str) -> tuple[float, float]:
    try:
        low, _, high = text.partition(":")
        pair = (float(low), float(high or low))
    except ValueError:
        raise UsageError(f"--sim-job-seconds {text!r}: expected MIN[:MAX] in seconds") from None
    if not (0 <= pair[0] <= pair[1]) or not math.isfinite(pair[1]):
        raise UsageError(f"--sim-job-seconds {text!r}: need 0 <= MIN <= MAX, both finite")
    return pair


def _simulator(given: Mapping[str, Any]) -> SimulatorConfig:
    """--simulate: the built-in simulator's options (never saved: given now or default)."""
    return SimulatorConfig(
        seed=given.get("sim_seed") or 0,
        job_seconds=_job_seconds(given.get("sim_job_seconds") or "1:3"),
        job_fail_rate=given.get("sim_job_fail_rate") or 0.0,
    )


# -- the report ------------------------------------------------------------------------


def report_dir_from(given: Path | None, saved: Mapping[str, Any], location: StateLocation) -> Path:
    """--report-dir given now, else the state's latest (SQLite only), else ./reports.

    A PostgreSQL campaign is resumed from any host: the last one's report folder is a
    path on that host, so the default there is ./reports. Absolute: what the run
    prints and logs reads the same as what a resume finds saved."""
    saved_dir = saved.get("report_dir") if isinstance(location, SqliteLocation) else None
    return (given or Path(saved_dir or "reports")).absolute()


def report_mode_from(given: int | None, saved: Mapping[str, Any]) -> int:
    """--report-mode given now, else the state's latest, else 0600."""
    if given is not None:
        return given
    try:
        return parse_mode(str(saved.get("report_mode") or "0600"))
    except ValueError:
        return PRIVATE_FILE  # a state file's value is never trusted to widen access


# -- the rollout -----------------------------------------------------------------------


def rollout_from(given: Mapping[str, Any], saved: Mapping[str, Any]) -> RolloutOptions:
    """Each rollout option as given now, else as the state's latest invocation had it."""
    now = {name: given.get(name) for name in RolloutOptions.__dataclass_fields__}
    for name in _ROLLOUT_FLAGS:
        now[name] = True if given.get(name) else None
    rollout = RolloutOptions.from_dicts(now, saved.get("rollout")).check()
    if rollout.confirm_waves and not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(
            "--confirm-waves asks on the terminal before each wave, and there is no terminal;"
            " run it in a terminal, or use --pause-between-waves instead"
        )
    return rollout


# -- the log -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogChoice:
    """--log-file, --log-level, --log-format (never saved: given now or default)."""

    file: Path | None  # None: next to the state (<state>.log), once the state exists
    level: str
    format: str | None  # text or json; None: the log file's own (`log_format_for`)

    @classmethod
    def of(cls, given: Mapping[str, Any]) -> LogChoice:
        return cls(
            file=given.get("log_file"),
            level=str(given.get("log_level") or "info"),
            format=str(given["log_format"]).lower() if given.get("log_format") else None,
        )
