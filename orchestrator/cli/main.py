"""Command line: parse, set up logging, call one async function, map the outcome to an exit code.

    run, resume, retry   run.py (options: options.py, resolved once: resolve.py;
                         the closing lines: output.py)
    plan                 plan.py (--preflight: preflight.py)
    status, report       status.py, report.py
    backup               backup.py
    probe                probe.py (one named server reinstalled, every reading kept)
    simulate             orchestrator.simulator.cli
    --output json        document.py (one JSON document on stdout at the end)
    no --state           state_files.py (where `run` keeps it, where `status` finds it)

Exit codes of a run (exits.py; each command's --help shows its own):
    0  every target succeeded
    1  the run finished and some targets failed
    2  invalid input or usage, an unusable state file or report directory,
       or credentials refused; nothing unsafe was done
    3  stopped before finishing (interrupted, or work deferred); resume to continue
"""

from __future__ import annotations

import sys

import click

from orchestrator.cli.backup import backup
from orchestrator.cli.exits import EXIT_CODES, fail, guarded
from orchestrator.cli.plan import plan
from orchestrator.cli.probe import probe
from orchestrator.cli.report import report
from orchestrator.cli.run import resume, retry, run
from orchestrator.cli.status import status
from orchestrator.simulator.cli import simulate
from orchestrator.visible import excepthook

__all__ = ["EXIT_CODES", "cli", "fail", "guarded", "main"]


# -h as well as --help, on every command: click hands the group's settings down.
@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ecs-reinstall-orchestrator")
def cli() -> None:
    """Reinstall the OS of whole ECS fleets: paced, tracked, resumable, never twice."""


for command in (simulate, run, resume, retry, status, report, backup, plan, probe):
    cli.add_command(command)


def main() -> None:
    sys.excepthook = excepthook
    cli(standalone_mode=True)
