"""The option groups the commands share: where the state and report are, how a run is
paced and followed, and what is sent (Cloud-Init, user data), and which part of the
inventory.

Options only say what was typed: a value not given is None, so that a resume can
tell "not given" from a default and take the state file's value instead. The
defaults and the state file's values are applied in one place, `resolve`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.checks import log_file_option, region_option
from orchestrator.cli.document import OUTPUT_OPTION
from orchestrator.cli.rollout import rollout_options
from orchestrator.cli.types import POSITIVE, POSITIVE_SECONDS, SECONDS, SHARE
from orchestrator.inventory import EncodingProblem, check_encoding
from orchestrator.nofollow import parse_mode

__all__ = [
    "CAMPAIGN_OPTION",
    "GROUP_BY_OPTION",
    "REPORT_MODE_OPTION",
    "STATE_HELP",
    "accept_changed_user_data",
    "cloud_init_options",
    "encoding_option",
    "run_options",
    "selection_options",
    "user_data_option",
]

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


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of `run`, `resume` and `retry`: where to connect, how fast, how to
    follow and settle, the log, the report and the rollout."""
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
            help=(
                "Job and server queries per second; server lists at the same rate,"
                " paced apart.  [default: 50]"
            ),
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
            "--list-reads/--no-list-reads",
            default=None,
            help=(
                "Read servers through the list APIs where that costs fewer calls: a"
                " project by pages of 1,000 before sending, servers in flight by the"
                " project's changes; --no-list-reads reads every server singly.  [default:"
                " --list-reads]"
            ),
        ),
        click.option(
            "--verify/--no-verify",
            default=None,
            help=(
                "After a job ends SUCCESS, read the server: succeeded only when it is back"
                " (ACTIVE, or SHUTOFF as before) on a new system disk (where that cannot be"
                " told: with a newer launched_at); otherwise failed with"
                " Orchestrator.NotVerified.  [default: --verify]"
            ),
        ),
        click.option(
            "--verify-within",
            type=POSITIVE_SECONDS,
            metavar="S",
            help=(
                "How long a server still coming back after SUCCESS (booting, a task state)"
                " is read again before it fails as Orchestrator.NotVerified.  [default: 600;"
                " 10 with --simulate]"
            ),
        ),
        click.option(
            "--audit-trail",
            type=click.Choice(["cts"]),
            help=(
                "Before a reinstall is sent again on doubt, ask the cloud's audit trail"
                " (Cloud Trace Service) whether it was received; never resent if it was."
            ),
        ),
        click.option(
            "--audit-trail-delay",
            type=POSITIVE_SECONDS,
            metavar="S",
            help=(
                "With --audit-trail: no record counts as evidence of absence only this"
                " long after the intent (CTS documents about a minute).  [default: 300;"
                " 5 with --simulate]"
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
            default="info",
            show_default=True,
            # Shown as the other choices are (lower case); taken in any case.
            type=click.Choice(["debug", "info", "warning"], case_sensitive=False),
            help="What reaches the log file and the console.",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"], case_sensitive=False),
            help=(
                "json: JSON lines in the log file and on stderr (no live panel); the"
                " fields: docs/reference/logs.md. A log file keeps one format: another"
                " than its lines' is refused.  [default: the log file's format, else text]"
            ),
        ),
        click.option("--no-live", is_flag=True, help="Plain progress lines even on a terminal."),
        OUTPUT_OPTION,
        click.option(
            "--notify",
            multiple=True,
            metavar="URL",
            envvar="ORCHESTRATOR_NOTIFY",
            help=(
                "Post a JSON event to this webhook (repeatable; Slack/Teams-compatible) on a"
                " canary failure, a breaker trip, a wave's end, the window closing and the"
                " run's end. Never recorded: give it again on resume (or set"
                " ORCHESTRATOR_NOTIFY, URLs separated by spaces)."
            ),
        ),
        click.option(
            "--metrics-file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Keep the run's counters here in Prometheus' text format (textfile collector).",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(0, 65535),
            help="Serve the run's counters at http://ADDRESS:PORT/metrics while it lasts.",
        ),
        click.option(
            "--metrics-address",
            default="127.0.0.1",
            show_default=True,
            help="Where --metrics-port listens (0.0.0.0 in a container a scraper reaches).",
        ),
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


encoding_option = click.option(
    "--encoding",
    callback=_encoding,
    help=(
        "Text encoding of the inventory where it has no byte order mark, e.g. cp1252 "
        "for a spreadsheet saved on Windows.  [default: UTF-8; UTF-8/16/32 with a BOM "
        "are recognised]"
    ),
)
