"""The leaderboard as one self-contained static page: `python -m harness.report --html`.

`write_site(out, tables, figures, runs)` writes `<out>/index.html` from the same `Table` objects
the Markdown, LaTeX and CSV renderers get (`harness.report.format`), so the page shows the same
numbers: the leaderboard and ablation tables (published rows in italics, seed counts in
parentheses, best measured entry bold, † for too few seeds), the excluded runs with their reasons,
the run settings per task and model (epochs, width, layers, d_state, lr, batch), the figures
(PNG, embedded as data URIs), the commit the report was made at and the commits of the runs, and
the date. Nothing is loaded from elsewhere (no remote scripts, fonts or styles), so
the file works from `file://`, and it can be mailed as it is.

Every column sorts on a click of its header (inline script; numbers by value, text
alphabetically, empty cells last). The address can ask for a sort, `index.html#sort=<table
name>,<column index>,<asc|desc>`, which is how a link (or a headless browser) opens a sorted view.
"""

import base64
import html
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from common.atomic import write_text_atomically
from harness.provenance import git_commit
from harness.report.format import Cell, Num, Stat, Table, cell_text, published_label

PAGE_FILE = "index.html"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 90rem; padding: 0 1rem; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
.meta { color: #555; font-size: 0.9rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6rem 0 0.4rem; font-size: 0.92rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { border-bottom: 2px solid #333; cursor: pointer; user-select: none; text-align: left; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.published td { font-style: italic; color: #555; background: #f6f6f6; }
.caption { margin: 0; color: #333; }
ul.notes { font-size: 0.85rem; color: #555; }
figure { display: inline-block; margin: 0.5rem 1rem 1rem 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #555; }
"""

_SCRIPT = """
(function () {
  function key(row, col) {
    var cell = row.cells[col];
    return cell ? (cell.getAttribute("data-sort") || cell.textContent.trim()) : "";
  }
  function sortTable(table, col, dir) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.every(function (r) {
      var v = key(r, col); return v === "" || !isNaN(parseFloat(v));
    });
    rows.sort(function (a, b) {
      var x = key(a, col), y = key(b, col);
      if (x === "" || y === "") { return (x === "") - (y === ""); }  // empty cells last
      var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return dir === "asc" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) {
      var state = dir === "asc" ? "ascending" : "descending";
      heads[i].setAttribute("aria-sort", i === col ? state : "none");
    }
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) {
      (function (col) {
        heads[col].addEventListener("click", function () {
          var now = heads[col].getAttribute("aria-sort");
          sortTable(table, col, now === "descending" ? "asc" : "desc");
        });
      })(i);
    }
  });
  function fromAddress() {
    var match = /sort=([^,&]+),(\\d+),(asc|desc)/.exec(decodeURIComponent(location.hash));
    var table = match && document.getElementById("table-" + match[1]);
    if (table) { sortTable(table, parseInt(match[2], 10), match[3]); }
  }
  window.addEventListener("hashchange", fromAddress);
  fromAddress();
})();
"""


def _sort_key(cell: Cell) -> str:
    """What a cell sorts by: a Stat's mean, a Num's value, else its text ("" when empty)."""
    value = cell.mean if isinstance(cell, Stat) else cell.value if isinstance(cell, Num) else None
    if value is not None:
        return repr(float(value)) if math.isfinite(value) else ""
    return cell or ""


def _cell_html(cell: Cell, digits: int) -> str:
    """Text cells escaped; number cells (digits and ± – † only, `digits` significant) with the
    best one in bold."""
    if cell is None or isinstance(cell, str):
        return html.escape(cell or "")
    return cell_text(cell, digits, bold=lambda s: f"<strong>{s}</strong>")


def table_html(table: Table) -> str:
    """One table as a `<section>`: heading, caption, a sortable `<table>`, notes."""
    esc = html.escape
    head = "".join(f'<th aria-sort="none">{esc(h)}</th>' for h in [*table.index, *table.columns])
    body = []
    for row in table.rows:
        labels = list(row.labels)
        if row.published:
            labels[0] = published_label(labels[0])
        tds = [f'<td data-sort="{esc(label)}">{esc(label)}</td>' for label in labels]
        tds += [
            f'<td class="num" data-sort="{esc(_sort_key(c))}">{_cell_html(c, table.digits)}</td>'
            if isinstance(c, Stat | Num)
            else f'<td data-sort="{esc(_sort_key(c))}">{_cell_html(c, table.digits)}</td>'
            for c in row.cells
        ]
        row_class = ' class="published"' if row.published else ""
        body.append(f"<tr{row_class}>{''.join(tds)}</tr>")
    notes = "".join(f"<li>{esc(n)}</li>" for n in table.notes)
    grid = [
        f'<div class="scroll"><table class="sortable" id="table-{esc(table.name)}">',
        f"<thead><tr>{head}</tr></thead>",
        "<tbody>",
        *body,
        "</tbody></table></div>",
    ]
    return "\n".join(
        [
            f'<section id="{esc(table.name)}">',
            f"<h2>{esc(table.title)}</h2>",
            f'<p class="caption">{esc(table.caption)}</p>',
            *(grid if body else [f'<p class="empty" id="table-{esc(table.name)}">none</p>']),
            f'<ul class="notes">{notes}</ul>' if notes else "",
            "</section>",
        ]
    )


def _figure_html(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.stem.replace("_", " "))
    return (
        f'<figure id="figure-{html.escape(path.stem)}">'
        f'<img src="data:image/png;base64,{data}" alt="{name}"><figcaption>{name}</figcaption>'
        "</figure>"
    )


def _run_commits(runs: pd.DataFrame) -> str:
    """`abc1234 (5 runs), def5678 (1 run)` from the runs' `git_commit` tags."""
    column = "tags.git_commit"
    if column not in runs.columns:
        return "unknown"
    counts = Counter(str(c)[:12] for c in runs[column].dropna())
    return ", ".join(f"{c} ({n} run{'s' * (n != 1)})" for c, n in counts.most_common()) or "none"


RUN_SETTINGS = {
    "epochs": "params.trainer.max_epochs",
    "width": "params.backbone.d_model",
    "layers": "params.backbone.n_layers",
    "d_state": "params.model.layer.d_state",
    "lr": "params.optimizer.lr",
    "batch": "params.trainer.batch_size",
}
"""The settings the page lists per task and model: column heading -> the runs' MLflow param."""


def settings_html(runs: pd.DataFrame) -> str:
    """A `<section>` listing, per (task, model), its run count and the values of `RUN_SETTINGS`
    its runs used (several values joined by " / "; a setting no run logged is left empty)."""
    esc = html.escape
    keys = ["params.task.name", "params.model.name"]
    head = "".join(f"<th>{esc(h)}</th>" for h in ["task", "model", "runs", *RUN_SETTINGS])
    body = []
    if not runs.empty and all(k in runs.columns for k in keys):
        for (task, model), group in runs.groupby(keys, sort=True):
            values = [
                " / ".join(sorted({str(v) for v in group[column].dropna()}, key=_natural))
                if column in group.columns
                else ""
                for column in RUN_SETTINGS.values()
            ]
            cells = [task, model, str(len(group)), *values]
            body.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    table = (
        f'<div class="scroll"><table id="table-run_settings"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
        if body
        else '<p class="empty" id="table-run_settings">none</p>'
    )
    return "\n".join(
        [
            '<section id="run_settings">',
            "<h2>Run settings</h2>",
            '<p class="caption">What the runs of each task and model were trained with '
            "(every value used, when the runs differ).</p>",
            table,
            "</section>",
        ]
    )


def _natural(text: str) -> tuple[float, str]:
    """Numbers in numeric order, then other text."""
    try:
        return (float(text), "")
    except ValueError:
        return (math.inf, text)


def page_html(
    tables: list[Table], figures: list[Path], runs: pd.DataFrame, commit: str, date: datetime
) -> str:
    """The whole page; `figures`: PNG files to embed (other files are left out)."""
    pngs = [p for p in figures if p.suffix == ".png"]
    figure_part = (
        ['<section id="figures"><h2>Figures</h2>', *map(_figure_html, pngs), "</section>"]
        if pngs
        else []
    )
    meta = (
        f"Made {date:%Y-%m-%d %H:%M} UTC at commit {html.escape(commit[:12])}; "
        f"runs from commit(s) {html.escape(_run_commits(runs))}."
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>ssm-bench leaderboard</title>",
            f"<style>{_STYLE}</style></head><body>",
            "<h1>ssm-bench leaderboard</h1>",
            f'<p class="meta" id="meta">{meta}</p>',
            *(table_html(t) for t in tables),
            settings_html(runs),
            *figure_part,
            f"<script>{_SCRIPT}</script>",
            "</body></html>",
        ]
    )


def write_site(out: Path, tables: list[Table], figures: list[Path], runs: pd.DataFrame) -> Path:
    """`<out>/index.html` (see the module docstring); returns its path."""
    path = out / PAGE_FILE
    write_text_atomically(path, page_html(tables, figures, runs, git_commit(), datetime.now(UTC)))
    return path
