"""Inline SVG charts drawn from the report's own data: status bar, timeline, histogram.

Pure functions returning markup; every label goes through `esc`. No `xmlns`
(inline SVG in HTML needs none), so the page holds no URL at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from orchestrator.report.history import History
from orchestrator.report.timeline import Bin, epoch_iso
from orchestrator.report.times import parse_timestamp
from orchestrator.visible import visible

STATE_COLOURS: Mapping[str, str] = {
    "succeeded": "#2e9d5b",
    "failed": "#d64545",
    "in_doubt": "#e2a72e",
    "running": "#3b82c4",
    "submitted": "#7aa8d8",
    "submitting": "#a6c4e4",
    "pending": "#b8bcc2",
}
SUBMITTED_COLOUR = "#3b82c4"
THROTTLE_COLOUR = "#b44ad1"
IN_FLIGHT_COLOUR = "#222"


def esc(value: object) -> str:
    """Text for markup: control and bidi characters as visible escapes (as the terminal
    and report.md show them), then HTML-escaped."""
    return escape(visible("" if value is None else str(value)), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def status_bar(counts: Mapping[str, int], total: int) -> str:
    """One horizontal bar split by state (states with no target left out)."""
    if total <= 0:
        return '<svg class="bar" viewBox="0 0 1000 28" role="img"><title>no targets</title></svg>'
    parts: list[str] = []
    x = 0.0
    for state, n in counts.items():
        if not n:
            continue
        width = 1000 * n / total
        colour = STATE_COLOURS.get(state, "#888")
        parts.append(
            f'<rect x="{_num(x)}" y="0" width="{_num(width)}" height="28" fill="{colour}">'
            f"<title>{esc(state)}: {n} ({100 * n / total:.1f} %)</title></rect>"
        )
        x += width
    return (
        '<svg class="bar" viewBox="0 0 1000 28" preserveAspectRatio="none" role="img">'
        + "".join(parts)
        + "</svg>"
    )


def timeline_chart(bins: Sequence[Bin], history: History | None) -> str:
    """Submitted and finished per interval (bars), in flight (line), throttling (ticks),
    each invocation's start and end (vertical lines)."""
    if not bins:
        return '<p class="muted">No events recorded: nothing was sent yet.</p>'
    w, h, left, right, top, bottom = 1000, 280, 50, 50, 24, 44
    plot_w, plot_h = w - left - right, h - top - bottom
    t0, t1 = bins[0].start, bins[-1].end
    span = max(t1 - t0, 1e-9)

    def x_of(epoch: float) -> float:
        return left + plot_w * (min(max(epoch, t0), t1) - t0) / span

    # Two scales: targets per interval (bars, left) and in flight (line, right), so
    # a high in-flight plateau does not flatten the bars.
    peak = max(max(b.submitted, b.succeeded + b.failed) for b in bins) or 1
    y_scale = plot_h / peak
    peak_in_flight = max(b.in_flight for b in bins) or 1
    line_scale = plot_h / peak_in_flight
    bar_w = plot_w / len(bins)
    out: list[str] = [
        f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="timeline">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{w - right}" y2="{top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" class="tick">{peak}</text>',
        f'<text x="{w - right + 4}" y="{top + 4}" class="tick">{peak_in_flight}</text>',
        f'<text x="{w - right + 4}" y="{top + 16}" class="tick">in flight</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>',
    ]
    for i, b in enumerate(bins):
        x = left + i * bar_w
        label = f"{epoch_iso(b.start)} to {epoch_iso(b.end)}"
        if b.submitted:
            height = b.submitted * y_scale
            out.append(
                f'<rect x="{_num(x)}" y="{_num(top + plot_h - height)}" '
                f'width="{_num(bar_w * 0.45)}" height="{_num(height)}" fill="{SUBMITTED_COLOUR}">'
                f"<title>{label}: {b.submitted} submitted</title></rect>"
            )
        base: float = top + plot_h
        for n, colour, what in (
            (b.succeeded, STATE_COLOURS["succeeded"], "succeeded"),
            (b.failed, STATE_COLOURS["failed"], "failed"),
        ):
            if n:
                height = n * y_scale
                base -= height
                out.append(
                    f'<rect x="{_num(x + bar_w * 0.5)}" y="{_num(base)}" '
                    f'width="{_num(bar_w * 0.45)}" height="{_num(height)}" fill="{colour}">'
                    f"<title>{label}: {n} {what}</title></rect>"
                )
        if b.throttled:
            out.append(
                f'<rect x="{_num(x)}" y="{top - 10}" width="{_num(max(bar_w, 2))}" height="6" '
                f'fill="{THROTTLE_COLOUR}"><title>{label}: {b.throttled} throttled</title></rect>'
            )
    points = " ".join(
        f"{_num(left + (i + 0.5) * bar_w)},{_num(top + plot_h - b.in_flight * line_scale)}"
        for i, b in enumerate(bins)
    )
    out.append(
        f'<polyline points="{points}" fill="none" stroke="{IN_FLIGHT_COLOUR}" '
        'stroke-width="1.5"><title>in flight</title></polyline>'
    )
    outside: list[str] = []
    crowded: list[str] = []
    labels = _LabelRows(rows=LABEL_ROWS)
    slack = max(bar_w / plot_w * span, 1.0)
    for inv in history.invocations if history else ():
        for stamp, word, dash in (
            (inv.started_at, "start", ""),
            (inv.ended_at, inv.outcome, ' stroke-dasharray="4 3"'),
        ):
            moment = parse_timestamp(stamp)
            if moment is None:
                continue
            if not t0 - slack <= moment.timestamp() <= t1 + slack:
                # Before the first or after the last event (a re-run with nothing
                # to do): named below the chart rather than piled on its edge.
                outside.append(f"#{inv.number} {word} {stamp}")
                continue
            x = x_of(moment.timestamp())
            text = f"#{inv.number} {word}"
            out.append(
                f'<line x1="{_num(x)}" y1="{top}" x2="{_num(x)}" y2="{top + plot_h}" '
                f'stroke="#555"{dash}><title>{esc(text)} {esc(stamp)}</title></line>'
            )
            end_anchored = x > w * 0.85
            row = labels.place(x, len(text), end_anchored=end_anchored)
            if row is None:
                # No row has room: listed below the chart, never drawn over another.
                crowded.append(f"{text} {stamp}")
                continue
            anchor = ' text-anchor="end"' if end_anchored else ""
            shift = -2 if end_anchored else 2
            out.append(
                f'<text x="{_num(x + shift)}" y="{top + plot_h + 12 * (row + 1)}"'
                f' class="tick"{anchor}>{esc(text)}</text>'
            )
    out.append(
        f'<text x="{left}" y="{h - 2}" class="tick">{epoch_iso(t0)}</text>'
        f'<text x="{w - right}" y="{h - 2}" text-anchor="end" class="tick">{epoch_iso(t1)}</text>'
        "</svg>"
    )
    if outside:
        out.append(
            '<p class="small muted">Outside the chart (no events then): '
            + "; ".join(esc(text) for text in outside)
            + "</p>"
        )
    if crowded:
        out.append(
            '<p class="small muted">Lines too close together to label: '
            + "; ".join(esc(text) for text in crowded)
            + "</p>"
        )
    return "".join(out)


# Rows of invocation labels under the timeline, and the width of one character of
# them in the chart's units (its `tick` text at 1,000 units across).
LABEL_ROWS = 2
LABEL_CHAR = 6.5
LABEL_GAP = 6.0


class _LabelRows:
    """Where each label goes: the first row in which it overlaps none before it."""

    def __init__(self, rows: int) -> None:
        self._taken: list[list[tuple[float, float]]] = [[] for _ in range(rows)]

    def place(self, x: float, chars: int, *, end_anchored: bool) -> int | None:
        width = chars * LABEL_CHAR
        span = (x - width - LABEL_GAP, x) if end_anchored else (x, x + width + LABEL_GAP)
        for number, taken in enumerate(self._taken):
            if all(span[1] <= a or b <= span[0] for a, b in taken):
                taken.append(span)
                return number
        return None


def histogram_chart(histogram: Sequence[tuple[float, float, int]]) -> str:
    if not histogram:
        return '<p class="muted">No finished target has a duration yet.</p>'
    w, h, left, bottom, top = 1000, 200, 50, 24, 10
    plot_w, plot_h = w - left - 10, h - top - bottom
    peak = max(n for _, _, n in histogram) or 1
    bar_w = plot_w / len(histogram)
    out = [
        f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="durations">',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="tick">{peak}</text>',
    ]
    for i, (low, high, n) in enumerate(histogram):
        height = plot_h * n / peak
        last = i == len(histogram) - 1
        label = f"{_num(low)}–{_num(high)} s" + (" and above" if last else "")
        out.append(
            f'<rect x="{_num(left + i * bar_w + 1)}" y="{_num(top + plot_h - height)}" '
            f'width="{_num(bar_w - 2)}" height="{_num(height)}" fill="#3b82c4">'
            f"<title>{label}: {n}</title></rect>"
        )
    first, last_bar = histogram[0], histogram[-1]
    out.append(
        f'<text x="{left}" y="{h - 6}" class="tick">{_num(first[0])} s</text>'
        f'<text x="{w - 10}" y="{h - 6}" text-anchor="end" class="tick">'
        f"{_num(last_bar[1])} s+</text></svg>"
    )
    return "".join(out)
