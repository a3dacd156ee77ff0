"""The state file's lock follows the file, not its name (issue 7, finding 8).

Two processes each time: this one and a `python -c` child. Before the fix the lock
was a `.lock` file next to the name given, so a symlink (or any other name for the
same file) let a second orchestrator run on it at once, and a file still being
created could be deleted as an "incomplete import" by another process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.errors import StateError
from orchestrator.model import TargetSpec, TargetState
from orchestrator.store.sqlite import StateStore

REPO = Path(__file__).resolve().parents[2]
PROJECT = "0123456789abcdef0123456789abcdef"
SHA = "cd" * 32

pytestmark = pytest.mark.timeout(30)

OPEN_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from orchestrator.errors import StateError
    from orchestrator.store.sqlite import StateStore
    try:
        StateStore.open(Path(sys.argv[1]))
    except StateError as exc:
        print("refused:", exc)
    else:
        print("opened")
    """
)

# Creates a state file whose import blocks (after the first target) until the
# file named by argv[2] exists: a creation caught half-way, lock held.
SLOW_CREATE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from orchestrator.model import TargetSpec
    from orchestrator.store.sqlite import StateStore

    def targets():
        for n in range(1, 4):
            yield TargetSpec(
                project_id="0123456789abcdef0123456789abcdef",
                server_id=f"00000000-0000-4000-8000-{n:012x}",
                keyname="k", userid="u", line=n + 1,
            )
            if n == 1:
                print("creating", flush=True)
                go_on = Path(sys.argv[2])
                while not go_on.exists():
                    time.sleep(0.02)

    StateStore.create(
        Path(sys.argv[1]), targets(), inventory_path="fleet.csv", inventory_sha256="cd" * 32
    ).close()
    print("created", flush=True)
    """
)


def spec(n: int) -> TargetSpec:
    return TargetSpec(
        project_id=PROJECT,
        server_id=f"00000000-0000-4000-8000-{n:012x}",
        keyname="k",
        userid="u",
        line=n + 1,
    )


def make_state(path: Path) -> None:
    StateStore.create(
        path, [spec(n) for n in range(1, 4)], inventory_path="fleet.csv", inventory_sha256=SHA
    ).close()


def open_in_child(path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", OPEN_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20,
        check=True,
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("alias", ["symlink", "hardlink", "relative"])
def test_another_name_for_a_held_state_file_is_refused_in_another_process(
    tmp_path: Path, alias: str
) -> None:
    state = tmp_path / "fleet.state.sqlite"
    make_state(state)
    other = tmp_path / "elsewhere" / "alias.sqlite"
    other.parent.mkdir()
    if alias == "symlink":
        other.symlink_to(state)
    elif alias == "hardlink":
        os.link(state, other)
    else:
        other = Path(os.path.relpath(state, REPO))  # the child runs in REPO

    with StateStore.open(state):
        answer = open_in_child(other)

    assert answer.startswith("refused:"), answer
    assert "in use" in answer
    assert str(os.getpid()) in answer  # the holder is named
    # Released with the holder: the alias opens now.
    assert open_in_child(other).startswith("opened")


def test_the_symlink_holder_blocks_the_real_name_too(tmp_path: Path) -> None:
    state = tmp_path / "fleet.state.sqlite"
    make_state(state)
    link = tmp_path / "link.sqlite"
    link.symlink_to(state)

    with StateStore.open(link):
        answer = open_in_child(state)

    assert answer.startswith("refused:"), answer


def test_a_state_file_being_created_is_not_deleted_by_another_process(tmp_path: Path) -> None:
    state = tmp_path / "fleet.state.sqlite"
    go_on = tmp_path / "go-on"
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_CREATE_SCRIPT, str(state), str(go_on)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "creating"
        assert state.exists()  # linked into place already, import unfinished

        # What `run` does with a file whose import never finished: discard it. Not
        # while another process holds it.
        with pytest.raises(StateError, match="in use"):
            StateStore.discard_incomplete(state)
        with pytest.raises(StateError, match="in use"):
            StateStore.open(state)
        assert state.exists()

        go_on.touch()
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=10)
    assert child.returncode == 0, err
    assert "created" in out
    with StateStore.open(state) as store:
        assert store.counts()[TargetState.PENDING] == 3


def test_an_abandoned_incomplete_file_is_discarded_under_its_lock(tmp_path: Path) -> None:
    state = tmp_path / "fleet.state.sqlite"
    go_on = tmp_path / "never"
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_CREATE_SCRIPT, str(state), str(go_on)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "creating"
    child.kill()  # killed mid-import: the file stays, unlocked, incomplete
    child.communicate(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not state.exists():
        time.sleep(0.02)

    StateStore.discard_incomplete(state)

    assert not state.exists()
    make_state(state)  # the name is free again
    with pytest.raises(StateError, match="complete; not deleting"):
        StateStore.discard_incomplete(state)
