"""`orchestrator simulate`: run the fake ECS API until SIGINT or SIGTERM.

The first line on stdout is the URL, flushed at once, so a parent process (a
test, a load measurement) can start it on port 0 and learn where it listens.
With `--tls` the second line is the path of the CA certificate to trust
(`orchestrator run --ca-bundle PATH`), removed when the simulator exits.
"""

from __future__ import annotations

import asyncio
import gc
import math
import shutil
import signal
import ssl
import sys
import tempfile
from pathlib import Path

import click

from orchestrator.cli.exits import SIMULATE_EXIT_CODES
from orchestrator.cli.types import POSITIVE, POSITIVE_SECONDS, SECONDS, Number
from orchestrator.simulator import option_values
from orchestrator.simulator.config import API_KINDS, ApiLimit, SimulatorConfig
from orchestrator.simulator.tls import TlsSetupError, given_certificate, made_certificate


@click.command(epilog=SIMULATE_EXIT_CODES)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free port (the URL is printed first).",
)
@click.option(
    "--tls",
    is_flag=True,
    help="Serve HTTPS with a certificate made at start for 127.0.0.1, ::1 and localhost; "
    "the CA that issued it is written to a file whose path is printed (the second line "
    "on stdout), for the orchestrator's --ca-bundle. Needs the extra [simulator].",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Serve HTTPS with this certificate (PEM, chain first); needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The private key of --tls-cert (PEM).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of every random draw: same seed, same fleet and outcomes.",
)
@click.option(
    "--fleet",
    "fleet",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=option_values.fleet,
    metavar="INVENTORY",
    help="CSV or JSON inventory (project_id, server_id): only these servers exist. "
    "Without it every canonical UUID exists.",
)
@click.option(
    "--missing-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of servers that do not exist (404 Ecs.0114).",
)
@click.option(
    "--locked-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of servers that are locked (400 Ecs.0605).",
)
@click.option(
    "--no-disk-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of servers without a system disk (400 Ecs.0105).",
)
@click.option(
    "--running-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of servers initially ACTIVE (reinstall needs mode withStopServer).",
)
@click.option(
    "--job-seconds",
    default="2:5",
    show_default=True,
    callback=option_values.job_seconds,
    metavar="MIN[:MAX]",
    help="How long the server shows REBUILD (the rebuild phase of a job), drawn per job.",
)
@click.option(
    "--queue-seconds",
    default="2:60",
    show_default=True,
    callback=option_values.job_seconds,
    metavar="MIN[:MAX]",
    help="How long an accepted job waits in INIT with the server untouched, drawn per job.",
)
@click.option(
    "--power-off-seconds",
    default="10:90",
    show_default=True,
    callback=option_values.job_seconds,
    metavar="MIN[:MAX]",
    help="withStopServer on a running server: how long it shows ACTIVE with task_state "
    "powering-off after the queue, drawn per job.",
)
@click.option(
    "--stopped-seconds",
    default="1:5",
    show_default=True,
    callback=option_values.job_seconds,
    metavar="MIN[:MAX]",
    help="After the power-off: how long it shows SHUTOFF with no task state before REBUILD.",
)
@click.option(
    "--job-fail-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of reinstall jobs that end FAIL (the system disk kept, launched_at unchanged).",
)
@click.option(
    "--fail-to-error-rate",
    default=0.5,
    type=option_values.RATE,
    show_default=True,
    help="Share of FAIL jobs that leave the server ERROR; the others put it back as it was "
    "(SHUTOFF, or ERROR if it was ERROR).",
)
@click.option(
    "--fail-restarts",
    is_flag=True,
    help="A failed reinstall of a running server starts it again (ACTIVE, the old system "
    "disk): a start, not a reinstall.",
)
@click.option(
    "--launched-at",
    "launched_at",
    type=click.Choice(["reinstall", "never", "any-start"]),
    default="reinstall",
    show_default=True,
    help="When OS-SRV-USG:launched_at moves (the reference does not say): on a reinstall, "
    "never, or on a reinstall and on any start of the server. The system disk's volume "
    "ID changes on every reinstall whatever this says.",
)
@click.option(
    "--keep-power-state",
    is_flag=True,
    help="A reinstall of a stopped server leaves it SHUTOFF (else it is started).",
)
@click.option(
    "--come-back-seconds",
    default="0",
    show_default=True,
    callback=option_values.job_seconds,
    metavar="MIN[:MAX]",
    help="After a successful reinstall, how long the server boots (SHUTOFF, task state "
    "powering-on) before it shows ACTIVE; the job says SUCCESS first.",
)
@click.option(
    "--second-reinstall",
    type=click.Choice(["refuse", "fail-second", "fail-both"]),
    default="refuse",
    show_default=True,
    help="A reinstall sent while another runs: refused (Ecs.0603 / Ecs.0100), or "
    "accepted with a job that FAILs (fail-second), the first one failing too, the server "
    "left in ERROR (fail-both).",
)
@click.option(
    "--trace-delay",
    default=60.0,
    show_default=True,
    type=SECONDS,
    help="The audit trail (GET /v3/{project_id}/traces): a reinstall request the service "
    "saw shows in trace queries this many seconds later.",
)
@click.option(
    "--success-but-error-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of jobs that say SUCCESS while the server ends ERROR (for --verify tests).",
)
@click.option(
    "--success-but-stale-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of jobs that say SUCCESS while the old system disk stays (for --verify tests).",
)
@click.option(
    "--pending-payment-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of accepted reinstalls whose job stays PENDING_PAYMENT (a yearly/monthly "
    "server's order awaiting payment) with the server untouched.",
)
@click.option(
    "--job-retention",
    default=86400.0,
    type=POSITIVE_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="How long a job is kept after it ended; asked about later: 400 Common.0011.",
)
@click.option(
    "--error-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of API requests answered 500/503 without acting.",
)
@click.option(
    "--drop-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of accepted reinstalls whose answer is never sent (connection closed).",
)
@click.option(
    "--error-after-acting-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of accepted reinstalls (job created) answered 500/503 instead of the job ID.",
)
@click.option(
    "--slow-answer-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of accepted reinstalls (acted on at once) whose answer is held back "
    "--slow-answer-seconds.",
)
@click.option(
    "--slow-answer-seconds",
    default=75.0,
    type=SECONDS,
    show_default=True,
    help="How long a slow answer is held, in real seconds (longer than a client's timeout).",
)
@click.option(
    "--rate-limit",
    type=POSITIVE,
    metavar="RPS",
    help="The ECS service's own flow control: requests per second allowed per API "
    f"({', '.join(API_KINDS)}), a token bucket; default none. See --throttle-style.",
)
@click.option(
    "--throttle-style",
    type=click.Choice(["429", "202"]),
    default="429",
    show_default=True,
    help="How --rate-limit answers: 429 Common.1503 with Retry-After, "
    "or 202 with Common.0024 and no job.",
)
@click.option(
    "--api-limit",
    "api_limits",
    multiple=True,
    callback=option_values.api_limits,
    metavar="[KIND=]PER_SECOND[/PER_MINUTE]",
    help="The API gateway in front of the service: at most PER_SECOND calls of each API "
    "in a clock second and PER_MINUTE in a clock minute ('/60': per minute only), past "
    "which it answers 429 APIGW.0308 without Retry-After. Checked before --rate-limit. "
    f"With KIND= ({', '.join(API_KINDS)}), for that API alone; repeat for more.",
)
@click.option(
    "--extra-servers",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    metavar="N",
    help="Per project of the fleet, N more servers that exist and are listed by the list "
    "APIs but are not in --fleet (the inventory), so that paging is realistic.",
)
@click.option(
    "--unoffered",
    multiple=True,
    type=click.Choice(API_KINDS),
    metavar="KIND",
    help="An API this cloud does not offer (repeatable): the gateway answers 404 "
    f"APIGW.0101 to every call of it. One of {', '.join(API_KINDS)}.",
)
@click.option(
    "--busy-rate",
    default=0.0,
    type=option_values.RATE,
    show_default=True,
    help="Share of API requests answered 501 Ecs.0603 without acting.",
)
@click.option(
    "--latency-ms",
    default=0.0,
    type=Number(min=0.0, metavar="MS"),
    show_default=True,
    help="Delay before answering each API request, in milliseconds.",
)
@click.option(
    "--token",
    envvar="SIM_TOKEN",
    show_envvar=True,
    help="Accept this X-Auth-Token (prefer the env var: keeps it off the command line).",
)
@click.option(
    "--ak",
    envvar="SIM_AK",
    show_envvar=True,
    help="Accept SDK-HMAC-SHA256 signatures by this access key (needs --sk).",
)
@click.option(
    "--sk", envvar="SIM_SK", show_envvar=True, help="Secret key for --ak (prefer the env var)."
)
@click.option(
    "--keypairs",
    callback=option_values.keypairs,
    metavar="A,B,C",
    help="Comma-separated key pair names that exist (others: 400 Ecs.0314); default: any.",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    envvar="SIM_USERS",
    show_envvar=True,
    callback=option_values.users,
    metavar="NAME:PASSWORD:DOMAIN",
    help="An IAM user (repeat for more; prefer the env var, space-separated): "
    "POST /v3/auth/tokens then issues project-scoped tokens.",
)
@click.option(
    "--token-ttl",
    default=86400.0,
    show_default=True,
    type=POSITIVE_SECONDS,
    help="Seconds an IAM token is valid.",
)
@click.option(
    "--deny-project",
    "denied_projects",
    multiple=True,
    metavar="PROJECT_ID",
    help="ECS requests in this project get 403 Pdp.0001 (repeat for more).",
)
@click.option(
    "--reinstall-apis",
    default="v1,v2",
    show_default=True,
    callback=lambda ctx, param, value: option_values.reinstall_apis(value),
    metavar="v1,v2",
    help="The reinstall APIs the gateway publishes (OTC eu-de documents only v2, the "
    "Cloud-Init one); another is answered 404 APIGW.0101.",
)
@click.option(
    "--frozen-account",
    type=click.Choice(["400", "403"]),
    help="The account is frozen: every ECS request is answered Ecs.0003 with this status.",
)
@click.option(
    "--aksk-lock-after",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="The API gateway locks the key pair (--ak) after N failed signatures ...",
)
@click.option(
    "--aksk-lock-seconds",
    default=300.0,
    show_default=True,
    type=SECONDS,
    help="... for this long: every request it signs is refused, even a good one.",
)
@click.option(
    "--clock-offset",
    default=0.0,
    show_default=True,
    type=float,
    metavar="SECONDS",
    help="The service's clock runs this far ahead of this machine's (negative: behind): "
    "Date headers, launched_at, updated and job times, and its signature checks.",
)
def simulate(
    host: str,
    port: int,
    tls: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    seed: int,
    fleet: tuple[tuple[str, str], ...] | None,
    missing_rate: float,
    locked_rate: float,
    no_disk_rate: float,
    running_rate: float,
    job_seconds: tuple[float, float],
    queue_seconds: tuple[float, float],
    power_off_seconds: tuple[float, float],
    stopped_seconds: tuple[float, float],
    job_fail_rate: float,
    fail_to_error_rate: float,
    fail_restarts: bool,
    launched_at: str,
    keep_power_state: bool,
    come_back_seconds: tuple[float, float],
    second_reinstall: str,
    trace_delay: float,
    success_but_error_rate: float,
    success_but_stale_rate: float,
    pending_payment_rate: float,
    job_retention: float,
    error_rate: float,
    drop_rate: float,
    error_after_acting_rate: float,
    slow_answer_rate: float,
    slow_answer_seconds: float,
    rate_limit: float | None,
    throttle_style: str,
    api_limits: tuple[tuple[str | None, ApiLimit], ...],
    extra_servers: int,
    unoffered: tuple[str, ...],
    busy_rate: float,
    latency_ms: float,
    token: str | None,
    ak: str | None,
    sk: str | None,
    keypairs: tuple[str, ...] | None,
    users: tuple[tuple[str, str, str], ...],
    token_ttl: float,
    denied_projects: tuple[str, ...],
    reinstall_apis: tuple[str, ...],
    frozen_account: str | None,
    aksk_lock_after: int,
    aksk_lock_seconds: float,
    clock_offset: float,
) -> None:
    """Run a simulated ECS API (reinstall v1 and v2, job status, server details and the
    two server lists) with faults.

    Prints the URL as the first line of stdout, serves until SIGINT or SIGTERM,
    then exits 0. Auth is off unless --token or --ak/--sk is given.

    The timing defaults are realistic on purpose: an accepted job may sit in INIT
    with the server untouched, and withStopServer first powers a running server
    off, so a client that settles a lost answer too early is caught here. Give
    --queue-seconds 0 --power-off-seconds 0 --stopped-seconds 0 for instant jobs.
    """
    if (ak is None) != (sk is None):
        raise click.UsageError("--ak and --sk must be given together")
    if not math.isfinite(clock_offset):
        raise click.UsageError("--clock-offset must be a finite number of seconds")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key must be given together")
    if tls and tls_cert is not None:
        raise click.UsageError(
            "--tls makes a certificate, --tls-cert/--tls-key give one: use one or the other"
        )
    config = SimulatorConfig(
        seed=seed,
        fleet=fleet,
        missing_rate=missing_rate,
        locked_rate=locked_rate,
        no_disk_rate=no_disk_rate,
        running_rate=running_rate,
        job_seconds=job_seconds,
        queue_seconds=queue_seconds,
        power_off_seconds=power_off_seconds,
        stopped_seconds=stopped_seconds,
        job_fail_rate=job_fail_rate,
        fail_to_error_rate=fail_to_error_rate,
        fail_restarts=fail_restarts,
        launched_at_on_reinstall=launched_at != "never",
        launched_at_on_start=launched_at == "any-start",
        keep_power_state=keep_power_state,
        come_back_seconds=come_back_seconds,
        second_reinstall=second_reinstall,
        trace_delay=trace_delay,
        success_but_error_rate=success_but_error_rate,
        success_but_stale_rate=success_but_stale_rate,
        pending_payment_rate=pending_payment_rate,
        job_retention=job_retention,
        error_rate=error_rate,
        drop_rate=drop_rate,
        error_after_acting_rate=error_after_acting_rate,
        slow_answer_rate=slow_answer_rate,
        slow_answer_seconds=slow_answer_seconds,
        rate_limit=rate_limit,
        throttle_style="202" if throttle_style == "202" else "429",
        api_limit=next((limit for kind, limit in reversed(api_limits) if kind is None), None),
        api_limit_by_kind=tuple(dict((k, v) for k, v in api_limits if k is not None).items()),
        extra_servers=extra_servers,
        unoffered=unoffered,
        busy_rate=busy_rate,
        latency_ms=latency_ms,
        token=token,
        ak=ak,
        sk=sk,
        keypairs=keypairs,
        users=users,
        token_ttl=token_ttl,
        denied_projects=denied_projects,
        reinstall_apis=reinstall_apis,
        frozen_status=None if frozen_account is None else int(frozen_account),
        aksk_lock_after=aksk_lock_after,
        aksk_lock_seconds=aksk_lock_seconds,
        clock_offset=clock_offset,
    )
    ca_dir = Path(tempfile.mkdtemp(prefix="orchestrator-simulator-")) if tls else None
    try:
        context, ca_file = None, None
        if ca_dir is not None:
            context, ca_file = made_certificate(ca_dir)
        elif tls_cert is not None and tls_key is not None:
            context = given_certificate(tls_cert, tls_key)
        asyncio.run(_serve(config, host, port, context, ca_file))
    except TlsSetupError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        if ca_dir is not None:
            shutil.rmtree(ca_dir, ignore_errors=True)


async def _serve(
    config: SimulatorConfig,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    ca_file: Path | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # Here, not at the top: the main CLI registers this command without paying for
    # the server's imports (aiohttp's web stack) on every other command.
    from orchestrator.simulator.server import Simulator

    sim = Simulator(config, host=host, port=port, tls=tls)
    try:
        try:
            await sim.start()
        except OSError as exc:
            # An address this host does not have, a port in use or not allowed: exit 2.
            raise click.UsageError(
                f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}"
            ) from None
        try:
            # The fleet and everything built at start live as long as the process: kept out
            # of the collector's generations, they are not walked again at every full
            # collection. Those walks held requests up to 15 ms at a 6,000-server fleet,
            # which would blur the arrival times the simulator records to measure pacing.
            gc.freeze()
            click.echo(sim.url)
            if ca_file is not None:
                click.echo(ca_file)
            sys.stdout.flush()
            kinds = {
                "token": config.token is not None,
                "aksk": config.ak is not None,
                "iam": bool(config.users),
            }
            auth = "+".join(name for name, on in kinds.items() if on)
            fleet = "any UUID" if config.fleet is None else f"{len(config.fleet)} servers"
            click.echo(
                f"simulator listening on {sim.url} (seed={config.seed}, "
                f"auth={auth or 'off'}, fleet={fleet})",
                err=True,
            )
            if ca_file is not None:
                click.echo(f"CA certificate: {ca_file} (the orchestrator's --ca-bundle)", err=True)
            await stop.wait()
        finally:
            await sim.stop()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
