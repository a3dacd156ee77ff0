"""Shell completion as the docs tell an operator to set it up: the console script prints
bash's completion code (`_ORCHESTRATOR_COMPLETE=bash_source orchestrator`), and a bash
that evaluates it completes commands, options and an option's choices."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(sys.executable).parent
BASH = shutil.which("bash")


def complete(*words: str) -> list[str]:
    """What bash offers for the last of `words`, after sourcing the completion code."""
    array = " ".join(f"'{w}'" for w in ("orchestrator", *words))
    program = (
        'eval "$(_ORCHESTRATOR_COMPLETE=bash_source orchestrator)"\n'
        f"COMP_WORDS=({array}); COMP_CWORD={len(words)}\n"
        "_orchestrator_completion orchestrator\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}"}
    assert BASH is not None
    done = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(BASH is None, reason="no bash on this machine")
def test_bash_completion_completes_commands_options_and_choices() -> None:
    assert (SCRIPTS / "orchestrator").is_file(), "the console script is not installed"
    assert complete("sta") == ["status"]
    assert sorted(complete("re")) == ["report", "resume", "retry"]
    assert complete("run", "fleet.csv", "--log-l") == ["--log-level"]
    assert complete("run", "fleet.csv", "--log-level", "") == ["debug", "info", "warning"]
    assert complete("status", "--out") == ["--output"]
    assert complete("plan", "fleet.csv", "--output", "j") == ["json"]


def test_the_distinctive_command_and_its_alias_are_one_program() -> None:
    """`ecs-reinstall` (the distribution's name) and `orchestrator` run the same CLI."""
    for name in ("ecs-reinstall", "orchestrator"):
        script = SCRIPTS / name
        assert script.is_file(), f"the console script {name} is not installed"
        done = subprocess.run(
            [str(script), "status", "-h"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert f"Usage: {name} status [OPTIONS]" in done.stdout
