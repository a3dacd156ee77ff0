"""`python -m orchestrator`: the command line, as the `orchestrator` console script.

`python -m orchestrator simulate ...` is how the simulator runs as its own process
(`SimulatorProcess`, in tests and benchmarks). That command needs none of the
orchestrator's own commands, whose imports (state store, runner, reports) cost
about 0.3 s of CPU at every start, so it is dispatched without them: the same
command, options, usage line and exit codes.
"""

import sys


def _main() -> None:
    if sys.argv[1:2] == ["simulate"]:
        import click

        from orchestrator.simulator.cli import simulate

        click.Group(commands=[simulate])(standalone_mode=True)
    else:
        from orchestrator.cli import main

        main()


if __name__ == "__main__":
    _main()
