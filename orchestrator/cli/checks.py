"""Checks of command-line options that a type alone cannot make, each naming its option.

    log_file_option    --log-file: a regular file (new or existing) that can be
                       appended to, outside /proc, /sys and /dev
    region_option      --region: a region name, as the inventory's region column
    check_region       the same rule for a region from clouds.yaml or the state file
    check_simulate_alone   --simulate with an option that names a real cloud
    check_state_file   --state (SQLite): a regular file, or none yet

All run while the command line is parsed or before the state file is touched:
a bad option is exit 2 with nothing created.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from orchestrator.errors import UsageError
from orchestrator.inventory.rules import CHECKS, Bad

# What a real cloud is named by; --simulate runs against the built-in one instead.
_CLOUD_OPTIONS = (
    ("endpoint", "--endpoint"),
    ("endpoint_template", "--endpoint-template"),
    ("os_cloud", "--os-cloud"),
    ("cloud", "--cloud"),
)
# Kernel interfaces, not storage: a "file" there may open and then refuse every
# write (/proc/version) or fill nothing (/dev/full).
_SPECIAL = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_simulate_alone(opts: Mapping[str, Any]) -> None:
    if not opts.get("simulate"):
        return
    given = [flag for name, flag in _CLOUD_OPTIONS if opts.get(name)]
    if given:
        raise UsageError(
            f"--simulate runs against the built-in simulator; {'/'.join(given)} cannot be"
            " used with it"
        )


def check_log_file(path: Path) -> Path:
    """The log file, if it can be appended to; UsageError naming --log-file otherwise.

    Nothing is left behind: an existing file is opened and closed, a new one is
    created and removed (its folders are made later, with the log).
    """
    where = f"--log-file {path}"
    resolved = path.resolve()
    if any(resolved.is_relative_to(special) for special in _SPECIAL):
        raise UsageError(
            f"{where}: {resolved} is a kernel interface (/proc, /sys, /dev), not a place"
            " for a log file; give a path on a disk"
        )
    try:
        info = os.stat(resolved)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(f"{where}: cannot be used: {exc.strerror}") from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise UsageError(f"{where}: is {kind}; give a file to append the log to")
        _probe(where, resolved, os.O_WRONLY | os.O_APPEND, remove=False)
        return path
    folder = next((p for p in resolved.parents if p.exists()), Path("/"))
    if not folder.is_dir():
        raise UsageError(f"{where}: {folder} is not a directory")
    if folder == resolved.parent:
        _probe(where, resolved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, remove=True)
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: cannot create folders in {folder}")
    return path


def check_state_file(path: Path) -> Path:
    """A SQLite state file is a regular file, or none yet: SQLite would take /dev/null
    for an empty database and keep nothing."""
    try:
        info = os.stat(path)
    except OSError:
        return path  # none yet, or not reachable: creating or opening it says why
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise UsageError(f"--state {path}: is {kind}; give a state file (or a new path)")
    return path


def _probe(where: str, path: Path, flags: int, *, remove: bool) -> None:
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise UsageError(f"{where}: cannot be written: {exc.strerror}") from None
    os.close(fd)
    if remove:
        path.unlink(missing_ok=True)


def _log_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    try:
        return check_log_file(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"--log-file {value}: ")) from None


def log_file_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--log-file", type=click.Path(path_type=Path), callback=_log_file, help=help
    )


def check_region(value: str, where: str) -> str:
    """A region name as the inventory's region column takes it (it goes into a hostname)."""
    try:
        checked: str = CHECKS["region"](value)
    except Bad as exc:
        raise UsageError(f"{where}: {exc}") from None
    return checked


def _region(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_region(value, "--region")
    except UsageError as exc:
        raise click.BadParameter(str(exc).removeprefix("--region: ")) from None


def region_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--region", metavar="REGION", callback=_region, help=help)
