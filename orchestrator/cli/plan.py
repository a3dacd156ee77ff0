"""`plan`: the inventory validated and what a run would do shown, nothing sent.

With --state, what a resume of that state file would do; with --preflight, every
server read as a run would read it first (`preflight`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.checks import check_simulate_alone, check_state_file, region_option
from orchestrator.cli.document import OUTPUT_OPTION, Ended, plan_to_dict
from orchestrator.cli.exits import PLAN_EXIT_CODES, guarded
from orchestrator.cli.options import cloud_init_options, encoding_option, selection_options
from orchestrator.cli.preflight import run_preflight
from orchestrator.cli.request_options import inventory_defaults, selection_from
from orchestrator.cli.rollout import plan_lines, plan_options
from orchestrator.cli.types import POSITIVE, POSITIVE_SECONDS, SECONDS
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.userdata import load_user_data
from orchestrator.engine.campaign import RegionCheck
from orchestrator.engine.selection import SelectionFilter, left_out_text
from orchestrator.errors import InventoryError, UsageError
from orchestrator.inventory import InventoryDefaults, InventoryReader
from orchestrator.model import FINAL_STATES, TargetState
from orchestrator.rollout.options import RolloutOptions
from orchestrator.store import open_store
from orchestrator.visible import echo

__all__ = ["plan", "show_resume"]


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


@click.command(epilog=PLAN_EXIT_CODES)
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
@OUTPUT_OPTION
@guarded
def plan(inventory: Path, **given: Any) -> Ended:
    """Validate INVENTORY and show what a run would do, without sending anything."""
    check_simulate_alone(given)
    state_path: Path | None = given["state_path"]
    if state_path is not None:
        check_state_file(state_path)  # a FIFO would block the read
    endpoint, endpoint_template = given["endpoint"], given["endpoint_template"]
    if endpoint or endpoint_template:
        Endpoints(endpoint, endpoint_template)  # a URL that cannot be used: exit 2 here too
    user_data: Path | None = given["user_data"]
    data = load_user_data(user_data) if user_data is not None else None
    defaults = inventory_defaults(given)
    selected = SelectionFilter.build(selection_from(given))
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
    about = {
        "path": str(inventory),
        "format": layout,
        "encoding": reader.encoding.label,
        "rows": reader.rows,
        "valid": n + selected.total_left_out,
        "selected": n,
    }
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
        **{k: v for k, v in given.items() if k in rollout_keys and v is not None}
    ).check()
    estimate = plan_lines(
        per_project,
        options,
        rate=given["rate"],
        max_in_flight=given["max_in_flight"],
        job_seconds=given["job_seconds"],
    )
    for line in estimate:
        echo(line)
    echo("no problems found; nothing was sent")
    resume = show_resume(state_path) if state_path is not None else None
    code, preflight = run_preflight(inventory, defaults, given) if given["preflight"] else (0, None)
    return Ended(
        code,
        plan_to_dict(
            code,
            inventory=about,
            projects=per_project,
            modes=modes,
            apis=apis,
            estimate=estimate,
            resume=resume,
            preflight=preflight,
        ),
    )


def show_resume(state_path: Path) -> dict[str, int]:
    """What `resume --state` would do with the state file, by state (said, and returned
    for the JSON document)."""
    with open_store(state_path, readonly=True) as store:
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
    return {"final": final, "in_doubt": doubt, "following": following, "pending": pending}


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
