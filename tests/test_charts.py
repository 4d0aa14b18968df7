"""line_chart: SVG that inlines in HTML, with axes, ticks and legends; the same bytes for the same input."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import pytest

from pix2pix_zoo.charts import line_chart, smoothed

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "</svg><script>alert('x')</script> & \"quoted\" <!-- $a$ $b$ _hidden"
NOISY = [(step, 1 + 0.5 * math.sin(step) + step / 100) for step in range(0, 101)]


def texts(svg: str) -> list[str]:
    return ["".join(element.itertext()) for element in ET.fromstring(svg).iter(f"{SVG}text")]


def data_paths(svg: str, colour: str = "#1f77b4") -> list[str]:
    """The drawn lines of one series colour (the first series is matplotlib's C0), as path data."""
    return [element.get("d") for element in ET.fromstring(svg).iter(f"{SVG}path")
            if element.get("clip-path") and f"stroke: {colour}" in element.get("style", "")]


def test_a_chart_is_an_svg_element_with_title_ticks_and_legend():
    svg = line_chart({"run a": NOISY, "_run b": [(x, y * 2) for x, y in NOISY]}, title="g_gan over steps",
                     ylabel="loss")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<!--" not in svg
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    shown = texts(svg)
    assert {"g_gan over steps", "step", "loss", "run a", "_run b"} <= set(shown)  # "_": not hidden
    assert {"0", "20", "40", "60", "80", "100"} <= set(shown)  # x ticks: integers for steps
    assert len(data_paths(svg)) == 1 and len(data_paths(svg, "#ff7f0e")) == 1  # one line per series


def test_one_series_has_no_legend_and_one_point_still_shows():
    svg = line_chart({"only": NOISY}, title="d")
    assert "only" not in texts(svg)
    single = line_chart({"once": [(500, 0.25)]}, title="one point")
    markers = [e for e in ET.fromstring(single).iter(f"{SVG}use") if "fill: #1f77b4" in e.get("style", "")]
    assert len(markers) == 1
    assert "500" in texts(single)


def test_the_same_input_gives_the_same_bytes_also_from_threads():
    first = line_chart({"a": NOISY, "b": NOISY[::2]}, title="t", smoothing=0.6)
    assert line_chart({"a": NOISY, "b": NOISY[::2]}, title="t", smoothing=0.6) == first
    with ThreadPoolExecutor(4) as pool:
        drawn = list(pool.map(lambda _: line_chart({"a": NOISY, "b": NOISY[::2]}, title="t", smoothing=0.6), range(4)))
    assert drawn == [first] * 4
    ids = {e.get("id") for e in ET.fromstring(first).iter() if e.get("id")} - {None}
    other = {e.get("id") for e in ET.fromstring(line_chart({"a": NOISY}, title="u")).iter() if e.get("id")}
    referenced = re.compile(r"[pm][0-9a-f]{10}")  # clip paths and markers, which the drawing refers to by id
    assert {i for i in ids if referenced.fullmatch(i)} and not {i for i in ids & other if referenced.fullmatch(i)}


def test_smoothing_draws_the_average_over_the_raw_line():
    raw = line_chart({"g": NOISY}, title="g")
    smooth = line_chart({"g": NOISY}, title="g", smoothing=0.6)
    (raw_line,) = data_paths(raw)
    lines = data_paths(smooth)
    assert len(lines) == 2 and raw_line in lines  # the raw points stay, faint
    assert [line for line in lines if line != raw_line]  # and another line is drawn over them
    assert "stroke-opacity: 0.3" in [e.get("style") for e in ET.fromstring(smooth).iter(f"{SVG}path")
                                     if e.get("d") == raw_line][0]


def test_smoothing_is_tensorboards_debiased_moving_average():
    assert smoothed([4.0, 4.0, 4.0], 0.6) == pytest.approx([4.0, 4.0, 4.0])  # no pull towards 0 at the start
    assert smoothed([0.0, 10.0], 0.5) == pytest.approx([0.0, (0.5 * 0.5 * 0 + 0.5 * 10) / 0.75])
    with pytest.raises(ValueError, match="smoothing"):
        line_chart({"a": NOISY}, title="t", smoothing=1.0)


def test_points_that_are_not_finite_are_left_out():
    clean = line_chart({"loss": [(0, 1.0), (3, 2.0), (4, 1.5)]}, title="loss")
    holes = line_chart({"loss": [(0, 1.0), (1, float("nan")), (2, float("inf")), (3, 2.0), (4, 1.5), (5, None),
                                 (float("nan"), 3.0)]}, title="loss")
    assert data_paths(holes) == data_paths(clean)
    nothing = line_chart({"diverged": [(1, float("nan")), (2, float("-inf"))]}, title="loss")
    assert "no finite values" in texts(nothing)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.data: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)

    def handle_data(self, data) -> None:
        self.data.append(data)


def test_a_hostile_series_name_stays_text_in_html():
    svg = line_chart({HOSTILE: NOISY, "plain": NOISY}, title=HOSTILE)
    assert texts(svg).count(HOSTILE) == 2  # the title and the legend, as written
    page = Tags()
    page.feed(f"<html><body><p>before</p>{svg}<p>after</p></body></html>")
    assert "script" not in page.tags and page.tags[-1] == "p"
    assert page.data.count(HOSTILE) == 2


def test_a_series_keeps_its_colour_across_charts_where_others_are_missing():
    points = [(1, 1.0), (2, 2.0)]
    both = line_chart({"l1": points, "l1cgan": points}, title="g", palette=["l1", "l1cgan"])
    alone = line_chart({"l1cgan": points}, title="d", palette=["l1", "l1cgan"])
    unpaletted = line_chart({"l1cgan": points}, title="d")
    second_colour, first_colour = "#ff7f0e", "#1f77b4"  # matplotlib's C1 and C0
    assert second_colour in both and second_colour in alone and first_colour not in alone
    assert first_colour in unpaletted
