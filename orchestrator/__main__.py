"""`python -m orchestrator`: the command line, as the `orchestrator` console script."""

from orchestrator.cli.main import main

if __name__ == "__main__":
    main()
