"""Command line: parse, set up logging, call one async function, map the outcome to an exit code."""

from __future__ import annotations

import click

from orchestrator.simulator.cli import simulate


@click.group()
def cli() -> None:
    """Reinstall the OS of whole ECS fleets, safely and resumably."""


cli.add_command(simulate)


def main() -> None:
    cli()
