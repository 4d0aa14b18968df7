"""Charts as inline SVG: what report.html and ``zoo compare`` draw their curves with.

matplotlib draws them (axes, ticks, grid, legend) on a :class:`matplotlib.figure.Figure` of its
own, never through pyplot: no global figure, no display needed, and charts can be drawn from any
thread (matplotlib's settings are set for each chart only, one chart at a time). Text stays text
(``svg.fonttype: none``): a page stays small, searchable and copyable, and matplotlib's SVG writer
escapes every label, so a series named ``<b>&"`` shows as itself in an HTML page. The same input
gives the same bytes (no date; the ids of clip paths and markers hashed from the input, so two
charts on one page do not share them). matplotlib is imported on the first chart, not with the
zoo: the command line starts faster (the import takes about half a second).
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections.abc import Mapping, Sequence

WIDTH_INCHES, HEIGHT_INCHES = 6.4, 2.8  # about 610 x 270 CSS pixels
LEGEND_ROW_INCHES = 0.22  # the figure grows by this much per legend entry, so the axes keep their height
RAW_ALPHA = 0.3  # the raw line under a smoothed one
LINE_STYLES = ("-", "--", ":", "-.")
MODULES = ("matplotlib.figure", "matplotlib.ticker", "matplotlib.backends.backend_svg")
"""What the first chart imports (about 0.7 s of a CPU): a trainer imports them beside its set-up."""

# rc_context sets matplotlib's process-wide rcParams and puts them back on leaving: two threads in it
# at once would put them back under each other's feet (a chart drawn with the default random salt).
_SETTINGS_LOCK = threading.Lock()


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str = "step",
               ylabel: str = "", smoothing: float = 0.0, palette: Sequence[str] = ()) -> str:
    """An SVG element (``<svg ...>...</svg>``, no XML prolog) to paste into HTML: one line per
    series, ``name -> [(x, y), ...]``, on shared axes, with a legend below them when there is more
    than one series. ``smoothing`` in [0, 1) draws TensorBoard's debiased exponential moving
    average over the raw line, shown faint. Points that are not finite numbers (None, nan, inf: a
    diverged loss) are left out; a series of one point shows as a marker. ``palette`` names every
    series of a set of charts in one order: a series drawn in several of them keeps its colour where
    others are missing (default: the order of ``series``)."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), not {smoothing!r}")
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves = {str(name): _finite_points(points) for name, points in series.items()}
    salt = hashlib.sha256(repr((title, xlabel, ylabel, smoothing, list(curves.items()))).encode()).hexdigest()
    settings = {
        "svg.fonttype": "none",  # text as <text>, not glyph paths
        "svg.hashsalt": salt[:16],  # ids fixed by the input: the same bytes every time, distinct across charts
        "text.parse_math": False,  # a name with two $ is a name, not TeX
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],  # matplotlib ships the first
        "font.size": 9,
    }
    with _SETTINGS_LOCK, matplotlib.rc_context(settings):
        legend = len(curves) > 1
        height = HEIGHT_INCHES + (LEGEND_ROW_INCHES * len(curves) if legend else 0)
        figure = Figure(figsize=(WIDTH_INCHES, height), layout="constrained")
        axes = figure.add_subplot()
        handles = []
        places = {name: place for place, name in enumerate(dict.fromkeys([*map(str, palette), *curves]))}
        for name, (xs, ys) in curves.items():
            index = places[name]
            colour, dashes = f"C{index % 10}", LINE_STYLES[index // 10 % len(LINE_STYLES)]  # 10 colours, then dashed
            if smoothing and len(ys) > 1:
                axes.plot(xs, ys, color=colour, linestyle=dashes, alpha=RAW_ALPHA, linewidth=1)
                ys = smoothed(ys, smoothing)
            (line,) = axes.plot(xs, ys, color=colour, linestyle=dashes, linewidth=1.5,
                                marker="o" if len(ys) == 1 else None)
            handles.append(line)
        if not any(ys for _, ys in curves.values()):
            axes.text(0.5, 0.5, "no finite values", transform=axes.transAxes, ha="center", va="center")
        axes.set_title(title)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True, linewidth=0.5, alpha=0.5)
        if all(x.is_integer() for xs, _ in curves.values() for x in xs):  # steps: no tick at step 2.5
            axes.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        if legend:  # handles and labels given: a name starting with "_" is not hidden as matplotlib would
            figure.legend(handles, list(curves), loc="outside lower left", frameon=False)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    markup = buffer.getvalue()
    return markup[markup.index("<svg"):].strip()


def smoothed(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so that the first values
    are not pulled towards zero (where the average starts)."""
    average, out = 0.0, []
    for count, value in enumerate(values, 1):
        average = average * weight + (1 - weight) * value
        out.append(average / (1 - weight**count))
    return out


def _finite_points(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for x, y in points:
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):  # None: a figure that was not measured
            continue
        if math.isfinite(x) and math.isfinite(y):
            xs.append(x)
            ys.append(y)
    return xs, ys
