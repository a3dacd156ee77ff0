"""Writing a run's report folder: summary.json, targets.csv and report.md.

Each file is staged as a temp file next to its final name and renamed into
place only once all three are written, so a failure (read-only folder, full
disk, a state store error mid-stream) leaves the previous report, or nothing,
never half a file. OS errors become `ReportError` naming the path.
"""

from __future__ import annotations

import contextlib
import csv
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from orchestrator.errors import ReportError
from orchestrator.model import RunInfo, Target
from orchestrator.report.render import (
    Listings,
    csv_extra_columns,
    csv_header,
    csv_row,
    render_markdown,
    summary_json,
)
from orchestrator.report.summary import build_summary

SUMMARY_JSON = "summary.json"
TARGETS_CSV = "targets.csv"
REPORT_MD = "report.md"


@dataclass(frozen=True, slots=True)
class ReportPaths:
    directory: Path
    summary_json: Path
    targets_csv: Path
    report_md: Path


def report_paths(report_dir: Path, run_id: str) -> ReportPaths:
    """Where the report of `run_id` goes; the run id must be one plain file name."""
    # run_id names a folder: refuse anything that would land outside report_dir.
    if run_id in ("", ".", "..") or "/" in run_id or "\\" in run_id or "\0" in run_id:
        raise ReportError(f"run id {run_id!r} cannot be used as a report folder name")
    directory = Path(report_dir) / run_id
    return ReportPaths(
        directory=directory,
        summary_json=directory / SUMMARY_JSON,
        targets_csv=directory / TARGETS_CSV,
        report_md=directory / REPORT_MD,
    )


def write_targets_csv(
    out: TextIO, run: RunInfo, targets: Iterable[Target], listings: Listings | None = None
) -> None:
    """Stream one CSV row per target to `out`, offering each target to `listings`.

    `out` must be opened with newline="" so the csv module controls line endings.
    """
    extra_keys = [key for _, key in csv_extra_columns(run.extra_columns)]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_header(run.extra_columns))
    for target in targets:
        writer.writerow(csv_row(target, extra_keys))
        if listings is not None:
            listings.offer(target)


def write_report(
    report_dir: Path, run: RunInfo, targets: Callable[[], Iterable[Target]]
) -> ReportPaths:
    """Write `<report_dir>/<run_id>/{summary.json,targets.csv,report.md}`.

    `targets` is called twice (summary pass, then CSV pass) and must return a
    fresh iterable each time. Memory: one float per final target, plus the
    targets listed in report.md (capped per section).
    """
    paths = report_paths(report_dir, run.run_id)
    created = _make_directory(paths.directory)
    staged: list[tuple[Path, Path]] = []
    try:
        summary = build_summary(run, targets())
        staged.append(_stage(paths.summary_json, lambda out: out.write(summary_json(summary))))

        listings = Listings()
        staged.append(
            _stage(paths.targets_csv, lambda out: write_targets_csv(out, run, targets(), listings))
        )
        markdown = render_markdown(summary, listings)
        staged.append(_stage(paths.report_md, lambda out: out.write(markdown)))

        for temp, final in staged:
            try:
                os.replace(temp, final)
            except OSError as exc:
                raise _error(final, exc) from exc
    except BaseException:
        for temp, _ in staged:
            _discard(temp)
        if created:
            # Only removes it if empty: a half-renamed report stays for inspection.
            with contextlib.suppress(OSError):
                paths.directory.rmdir()
        raise
    return paths


def _make_directory(directory: Path) -> bool:
    """Create `directory` (and parents); True if this call created it."""
    existed = directory.is_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(directory, exc) from exc
    return not existed


def _stage(final: Path, write: Callable[[TextIO], object]) -> tuple[Path, Path]:
    """Write a temp file beside `final`, durably; return (temp, final)."""
    temp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        # Mode "x": exclusive create, and permissions follow the umask as any file.
        with open(temp, "x", encoding="utf-8", newline="") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        _discard(temp)
        raise _error(final, exc) from exc
    except BaseException:
        _discard(temp)
        raise
    return temp, final


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _error(path: Path, exc: OSError) -> ReportError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ReportError(f"cannot write report {path}: {reason}")
