"""report.html: the held-out figures as a table, a chart per logged figure, grids with their columns
named and their step; self-contained, and nothing from the run can break the page."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image
from test_trainer import tiny_config

from pix2pix_zoo.engine.report import write_report
from pix2pix_zoo.engine.trainer import Trainer

HOSTILE = "</table><script>alert('x')</script> & \"q\" <!--"


class Page(HTMLParser):
    """The tags, the tables (rows of cell texts) and the text of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table_with(self, first_cell: str) -> dict[str, list[str]]:
        """The table whose header row starts with ``first_cell``, as {row's first cell: the rest}."""
        (table,) = [t for t in self.tables if t and t[0] and t[0][0] == first_cell]
        return {row[0]: row[1:] for row in table}


def test_report_of_a_real_run_shows_its_figures_as_a_table_and_named_grids(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(max_steps=3, log_every=1, sample_every=3, data_options={"size": 32, "count": 6}), run,
            progress=False).fit()
    text = (run / "report.html").read_text()
    evaluation = json.loads((run / "eval.json").read_text())
    page = Page(text)
    figures = page.table_with("candidate")
    metrics = figures.pop("candidate")
    assert metrics == ["l1", "psnr", "ssim"]
    assert set(figures) == {f"{name} (test)" for name in ("translator", "input unchanged", "mean training target")}
    for candidate, cells in figures.items():
        expected = evaluation[candidate.removesuffix(" (test)")]
        assert cells == [f"{expected[metric]:.4g}" for metric in metrics], candidate
    translator_row = next(line for line in text.split("<tr>") if line.startswith("<th>translator (test)"))
    assert f"title='{evaluation['translator']['psnr']!r}'" in translator_row  # the full value, on hover
    body = text[text.index("<body>"):]
    assert '{"' not in body and '"l1":' not in body  # no JSON text in place of the table
    settings = page.table_with("spec")
    assert settings["step"] == ["3"] and settings["data"] == ["synthfacades"]
    assert [t for t in page.text if t in ("input", "output", "target")] == ["input", "output", "target"]
    assert "step 3" in page.text  # the grid's caption
    assert {"d: discriminator loss", "g_l1: generator's l1 term", "lr: learning rate"} <= set(page.text)
    assert "script" not in page.tags and "data:image/png;base64," in text and "<svg" in text
    assert "http://" not in body.replace("http://www.w3.org/", "")  # nothing outside the page


def test_everything_from_the_run_is_escaped_and_grids_are_named(tmp_path):
    (tmp_path / "samples").mkdir()
    Image.new("RGB", (3 * 16, 2 * 16)).save(tmp_path / "samples" / "step-000000040.png")
    Image.new("RGB", (3 * 16, 2 * 16)).save(tmp_path / "samples" / "step-000000000.png")
    records = [{"step": s, "epoch": 1, "d": 0.5 + 0.1 * (s % 3), f"g_{HOSTILE}": 1.0 / s, "lr": 2e-4}
               for s in range(1, 13)]
    records[4]["d"] = float("nan")  # a diverged window: json writes NaN, the chart leaves it out
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = {"spec": HOSTILE, HOSTILE: "note",
               f"{HOSTILE} (test)": {"l1": 0.25, HOSTILE: 3}, "other (test)": {"l1": 1}}
    text = write_report(tmp_path, HOSTILE, summary).read_text()
    page = Page(text)
    assert "script" not in page.tags and "<script" not in text and "<!--" not in text
    assert HOSTILE in page.text  # shown as written: the title, the settings, the table
    figures = page.table_with("candidate")
    assert figures["candidate"] == ["l1", HOSTILE]
    assert figures[f"{HOSTILE} (test)"] == ["0.25", "3"] and figures["other (test)"] == ["1", "\u2013"]
    assert page.table_with("spec")[HOSTILE] == ["note"]
    assert f"g_{HOSTILE}: generator's {HOSTILE} term (smoothed 0.6, raw faint)" in page.text
    assert "d: discriminator loss (smoothed 0.6, raw faint)" in page.text and "lr: learning rate" in page.text
    assert page.text.index("step 40") < page.text.index("step 0")  # newest first
    header = text[text.index("<div class='columns'>"):text.index("<img")]
    assert header.count("<span>") == 3  # one name per column of the grid, over its full width
    assert "width='384' height='256'" in text  # 16-pixel columns shown at 128 pixels, the names fit


def test_a_report_before_anything_is_logged(tmp_path: Path):
    text = write_report(tmp_path, "run", {"evaluation": "not evaluated"}).read_text()
    assert "no metrics yet" in text and "no samples yet" in text and "Held-out figures" not in text
