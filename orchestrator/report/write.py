"""Writing a run's report folder: summary.json, targets.csv, retry.csv, report.md, report.html.

Each file is staged as a temp file next to its final name and renamed into
place only once all four are written, so a failure (read-only folder, full
disk, a state store error mid-stream) leaves the previous report, or nothing,
never half a file. OS errors become `ReportError` naming the path.

The report folder may be shared: temp files are created exclusively, under names
nobody can guess, never through a link (`nofollow`), and the run's own folder is
refused if it is a symbolic link. Files get `mode` (0600 unless the operator gave
--report-mode), the run's folder the matching folder mode (0700).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from orchestrator.errors import ReportError
from orchestrator.model import InvocationInfo, RunInfo, Target
from orchestrator.nofollow import PRIVATE_FILE, create_beside, folder_mode, make_dir
from orchestrator.report.history import build_history
from orchestrator.report.html import ROW_SEPARATOR, TargetRows, html_head, html_tail
from orchestrator.report.render import (
    Listings,
    csv_extra_columns,
    csv_header,
    csv_row,
    render_markdown,
    summary_json,
)
from orchestrator.report.retry_csv import RETRY_CSV, RetryInventory, is_deferral
from orchestrator.report.summary import Summary, build_summary, safe_options
from orchestrator.report.timeline import EventLike, Timeline, build_timeline
from orchestrator.spreadsheet import CsvWriter

SUMMARY_JSON = "summary.json"
TARGETS_CSV = "targets.csv"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"

# Intervals of the timeline chart.
TIMELINE_BINS = 120


@dataclass(frozen=True, slots=True)
class ReportPaths:
    directory: Path
    summary_json: Path
    targets_csv: Path
    report_md: Path
    report_html: Path
    retry_csv: Path | None = None  # failed, deferred and in-doubt targets, as an inventory

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file written, in the order they are listed to the operator."""
        written = (self.summary_json, self.targets_csv, self.report_md, self.report_html)
        return written + ((self.retry_csv,) if self.retry_csv is not None else ())


class TargetSink(Protocol):
    """Something that sees every target while targets.csv is written."""

    def offer(self, target: Target) -> None: ...


class ReportSource(Protocol):
    """What a report reads from a state file (`StateStore` is one)."""

    def run_info(self) -> RunInfo: ...
    def iter_targets(self, batch: int = ...) -> Iterable[Target]: ...
    def events_iter(self, batch: int = ...) -> Iterable[EventLike]: ...
    def samples_iter(self, name: str, batch: int = ...) -> Iterable[tuple[str, int]]: ...
    def invocations(self) -> list[InvocationInfo]: ...


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
        report_html=directory / REPORT_HTML,
        retry_csv=directory / RETRY_CSV,
    )


def write_targets_csv(
    out: TextIO,
    run: RunInfo,
    targets: Iterable[Target],
    listings: TargetSink | None = None,
    *,
    html: tuple[TextIO, TargetRows] | None = None,
) -> None:
    """Stream one CSV row per target to `out`, offering each target to `listings`
    and, with `html`, writing its row of report.html in the same pass.

    `out` must be opened with newline="" so the csv module controls line endings.
    """
    for _ in _written(out, run, targets, listings, html):
        pass


def _written(
    out: TextIO,
    run: RunInfo,
    targets: Iterable[Target],
    listings: TargetSink | None,
    html: tuple[TextIO, TargetRows] | None,
) -> Iterator[Target]:
    """`write_targets_csv` as a pass-through: each target is written, then handed on
    (to the summary), so that a report reads the state file once."""
    extra_keys = [key for _, key in csv_extra_columns(run.extra_columns)]
    writer = CsvWriter(out)
    writer.writerow(csv_header(run.extra_columns))
    separator = ""
    for target in targets:
        writer.writerow(csv_row(target, extra_keys))
        if listings is not None:
            listings.offer(target)
        if html is not None:
            html_out, rows = html
            html_out.write(separator + rows.row(target))
            separator = ROW_SEPARATOR
        yield target


def write_campaign_report(
    report_dir: Path,
    source: ReportSource,
    *,
    group_by: str | None = None,
    rollout: Mapping[str, Any] | None = None,
    mode: int = PRIVATE_FILE,
) -> ReportPaths:
    """The whole report of a state file: every target, every invocation, every event."""
    return write_report(
        report_dir,
        source.run_info(),
        source.iter_targets,
        events=source.events_iter,
        throttled=list(source.samples_iter("throttled")),
        invocations=source.invocations(),
        group_by=group_by,
        rollout=rollout,
        mode=mode,
    )


def write_report(
    report_dir: Path,
    run: RunInfo,
    targets: Callable[[], Iterable[Target]],
    *,
    events: Callable[[], Iterable[EventLike]] | None = None,
    throttled: Sequence[tuple[str, int]] | None = None,
    invocations: Sequence[InvocationInfo] = (),
    group_by: str | None = None,
    rollout: Mapping[str, Any] | None = None,
    mode: int = PRIVATE_FILE,
) -> ReportPaths:
    """Write `<report_dir>/<run_id>/{summary.json,targets.csv,report.md,report.html}`,
    each file with permissions `mode`.

    `targets` is called once: one pass writes the CSV, retry.csv and the page's
    rows (to a scratch file, as the page's head needs the summary) and builds the
    summary; `events` is read once, for the timeline. Memory: a few thousand durations (the
    rest in a scratch file, see durations.py), the timeline's per-second counters,
    the --group-by counters, the ids of deferred targets, and the targets listed in
    report.md (capped per section); never the targets themselves.
    """
    paths = report_paths(report_dir, run.run_id)
    deferred: set[int] = set()

    def watched(source: Iterable[EventLike]) -> Iterable[EventLike]:
        # The one pass over the events also finds the deferred targets for retry.csv.
        for event in source:
            detail = getattr(event, "detail", "")
            if isinstance(detail, str) and is_deferral(event.to_state, detail):
                deferred.add(getattr(event, "target_id", -1))
            yield event

    timeline = (
        build_timeline(watched(events()), throttled or None) if events is not None else Timeline()
    )
    history = (
        build_history(invocations, timeline.last_activity, safe=safe_options)
        if invocations
        else None
    )
    created = _make_directory(paths.directory, folder_mode(mode))
    staged: list[tuple[Path, Path]] = []
    try:
        listings = Listings()
        rows = TargetRows.for_columns(run.extra_columns)
        retry: list[RetryInventory] = []
        summaries: list[Summary] = []
        # The page's rows go to a scratch file in the same pass: the page's head
        # needs the summary, which is known only once every target was seen.
        with _scratch(paths.report_html) as page_rows:

            def stream(outs: Sequence[TextIO]) -> None:
                csv_out, retry_out = outs
                retry.append(RetryInventory(retry_out, run.extra_columns, deferred))
                passing = _written(
                    csv_out, run, targets(), _Both(listings, retry[0]), (page_rows, rows)
                )
                summaries.append(
                    build_summary(run, passing, group_by=group_by, history=history, rollout=rollout)
                )

            assert paths.retry_csv is not None
            staged += _stage([paths.targets_csv, paths.retry_csv], stream, mode)
            summary = summaries[0]
            staged += _stage(
                [paths.summary_json], lambda outs: outs[0].write(summary_json(summary)), mode
            )
            head = html_head(
                summary,
                timeline.bins(TIMELINE_BINS),
                rows,
                listings=listings,
                retry_rows=retry[0].rows,
            )

            def page(outs: Sequence[TextIO]) -> None:
                outs[0].write(head)
                page_rows.seek(0)
                shutil.copyfileobj(page_rows, outs[0])
                outs[0].write(html_tail())

            staged += _stage([paths.report_html], page, mode)
        notes = retry[0].notes(run.created_at, run.options.get("user_data"))
        markdown = render_markdown(summary, listings, extra_columns=run.extra_columns, notes=notes)
        staged += _stage([paths.report_md], lambda outs: outs[0].write(markdown), mode)

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


class _Both:
    """Offers each target to report.md's listings and to retry.csv."""

    def __init__(self, listings: Listings, retry: RetryInventory) -> None:
        self._listings = listings
        self._retry = retry

    def offer(self, target: Target) -> None:
        self._listings.offer(target)
        self._retry.offer(target)


def _make_directory(directory: Path, mode: int) -> bool:
    """Create `directory` (and parents) with `mode`; True if this call created it.

    A symbolic link in its place is refused: the run's folder is named by the tool
    inside a folder others may write to, who could have pointed it anywhere."""
    try:
        return make_dir(directory, mode, link_ok=False)
    except OSError as exc:
        raise _error(directory, exc) from exc


def _stage(
    finals: Sequence[Path], write: Callable[[Sequence[TextIO]], object], mode: int
) -> list[tuple[Path, Path]]:
    """Write temp files beside `finals` (together: one pass may feed several), durably;
    return (temp, final) pairs."""
    temps: list[Path] = []
    current = finals[0]
    try:
        with contextlib.ExitStack() as stack:
            outs: list[TextIO] = []
            for final in finals:
                current = final
                temp, out = create_beside(final, mode)
                temps.append(temp)
                outs.append(stack.enter_context(out))
            current = finals[0]
            write(outs)
            for out, final in zip(outs, finals, strict=True):
                current = final
                out.flush()
                os.fsync(out.fileno())
    except OSError as exc:
        for temp in temps:
            _discard(temp)
        raise _error(current, exc) from exc
    except BaseException:
        for temp in temps:
            _discard(temp)
        raise
    return list(zip(temps, finals, strict=True))


@contextlib.contextmanager
def _scratch(beside: Path) -> Iterator[TextIO]:
    """An unnamed temp file in `beside`'s folder (not /tmp, which may be memory)."""
    try:
        # Handed to `with` below; the try only names the folder if it cannot be made.
        scratch = tempfile.TemporaryFile(  # noqa: SIM115
            "w+", encoding="utf-8", newline="", dir=beside.parent
        )
    except OSError as exc:
        raise _error(beside, exc) from exc
    with scratch:
        yield scratch


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _error(path: Path, exc: OSError) -> ReportError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ReportError(f"cannot write report {path}: {reason}")
