"""`python -m harness.report --html`: the static leaderboard page, read as HTML and in a real
headless browser (Debian's chromium, installed by `.ci/browser/setup.sh` from `make test`).

The page is made once from the synthetic store (tests/report_store.py): hope on listops has
seeds .55 and .59 (mean 57 %), s4d_lin on listops .50 .52 .54 (3 seeds), and hope's text seed 0
FAILED with `non-finite loss at step 37`.
"""

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_store import build_store

from harness.report import command as report
from harness.report.format import Table
from harness.report.html import PAGE_FILE, settings_html, table_html

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Tables(HTMLParser):
    """Collects every `<table id=...>`: per row, the cells' (data-sort, text) pairs; and every
    `src` / `href` attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}
        self.links: list[str] = []
        self.images: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.links += [a[k] for k in ("src", "href") if a.get(k)]
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[self._table].append([])
        elif tag == "td" and self._in_body:
            self._cell = [a.get("data-sort", "")]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.tables[self._table][-1].append((self._cell[0], "".join(self._cell[1:]).strip()))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False


def parse(text: str) -> Tables:
    parser = Tables()
    parser.feed(text)
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The page of the synthetic store, with its figures (leaderboard, learning curves, ...)."""
    root = tmp_path_factory.mktemp("html")
    uri = build_store(root)
    out = root / "out"
    args = ["--tracking-uri", uri, "--out", str(out), "--html", "--bench-dir", str(root / "none")]
    group_by = "model,task,task.noise_len"  # one experiment per cell (the store holds two lengths)
    assert report.main([*args, "--group-by", group_by, "--seeds", "3"]) == 0
    return out / "site" / PAGE_FILE


def _column(rows: list[list[tuple[str, str]]], index: int) -> list[str]:
    return [row[index][0] for row in rows]


def test_page_holds_tables_figures_and_provenance(site: Path) -> None:
    text = site.read_text()
    page = parse(text)
    assert {
        "table-leaderboard",
        "table-ablation_model_task_task-noise_len",
        "table-excluded_runs",
    } <= set(page.tables)
    board = page.tables["table-leaderboard"]
    models = [row[0][1] for row in board]
    assert {"hope", "s4_legs", "s4d_inv", "s4d_lin"} <= set(models)
    assert any("(published)" in m for m in models), "published rows are on the page"
    listops = dict(zip(models, (row[1] for row in board), strict=True))  # column 1: listops
    assert float(listops["hope"][0]) == pytest.approx(57.0)
    assert "(2)" in listops["hope"][1] and "(3)" in listops["s4d_lin"][1], "seed counts shown"
    excluded = page.tables["table-excluded_runs"]
    assert any("non-finite loss at step 37" in cell for row in excluded for _, cell in row)
    # Self-contained: the figures are embedded PNGs, nothing is fetched from elsewhere.
    assert len(page.images) >= 2 and all(
        s.startswith("data:image/png;base64,") for s in page.images
    )
    assert not [link for link in page.links if not link.startswith("data:")]
    assert not re.search(r"https?://", text)
    assert re.search(r"at commit ([0-9a-f]{12}|unknown)", text)
    assert re.search(r"Made \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)


def _chromium(user_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["chromium", *BROWSER_FLAGS, f"--user-data-dir={user_dir}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium is not installed (.ci/browser/setup.sh installs it; needs root, apt-get)",
)
def test_page_renders_and_sorts_in_a_headless_browser(site: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    done = _chromium(
        tmp_path / "profile1", "--window-size=1280,4000", f"--screenshot={shot}", site.as_uri()
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert rgb.std() > 10, "the screenshot is blank"
    dark = (rgb.mean(axis=2) < 100).mean()
    assert dark > 0.002, "no text on the screenshot"
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    assert (saturation > 80).mean() > 0.001, "no coloured pixels: the figures did not render"

    # The address asks for the leaderboard sorted by its listops column (index 1), descending;
    # the page's script does it, so the dumped DOM holds the rows in that order.
    static_rows = parse(site.read_text()).tables["table-leaderboard"]
    done = _chromium(
        tmp_path / "profile2", "--dump-dom", site.as_uri() + "#sort=leaderboard,1,desc"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = parse(done.stdout)
    rows = dom.tables["table-leaderboard"]
    assert len(rows) == len(static_rows)
    values = [float(v) for v in _column(rows, 1) if v]
    assert values == sorted(values, reverse=True) and len(values) >= 4
    assert _column(rows, 1)[-1] == "" or all(_column(rows, 1)), "empty cells sort last"
    assert _column(rows, 0) != _column(static_rows, 0), "the script reordered the rows"
    assert 'aria-sort="descending"' in done.stdout


def test_an_empty_table_says_none() -> None:
    empty = Table("excluded_runs", "Excluded runs", ["run"], ["reason"], [], "runs left out")
    text = table_html(empty)
    assert "<table" not in text and "<th" not in text
    assert '<p class="empty" id="table-excluded_runs">none</p>' in text


def test_run_settings_list_each_task_and_models_runs_and_what_they_used(site: Path) -> None:
    rows = parse(site.read_text()).tables["table-run_settings"]
    by_cell = {(row[0][1], row[1][1]): [text for _, text in row[2:]] for row in rows}
    runs, epochs, *_ = by_cell[("adding", "s4_legs")]
    assert (runs, epochs) == ("2", "6")
    assert by_cell[("adding", "s4d_legs")][:2] == ["1", "2"]
    assert by_cell[("listops", "s4d_lin")][:2] == ["3", ""], "a setting no run logged is empty"
    assert by_cell[("listops", "hope")][0] == "2", "a killed attempt resubmitted is one run"


def test_run_settings_of_no_runs_say_none() -> None:
    text = settings_html(pd.DataFrame())
    assert "<table" not in text and '<p class="empty" id="table-run_settings">none</p>' in text
