"""A small table model and its four renderings: Markdown, LaTeX (booktabs), CSV and terminal;
`write_table` writes the first three next to each other (the report's and the studies' tables).

Tables are built once (`harness.report.tables`) and rendered by the functions here, so every
format shows the same numbers. A `Stat` cell is `mean ± std (n)`; `bold` marks the best entry of
its column and `few_seeds` a cell with fewer seeds than asked (rendered with a dagger).

Numbers keep significant digits, never fixed decimals (`stat_text`, the one formatting rule of
every text rendering): the mean gets `Table.digits` significant digits (default
`DEFAULT_DIGITS`), printed at a precision fine enough to show the first significant digit of the
std too; the std and a difference of means are printed at the same decimal place. The CSV keeps
the full values.
"""

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

DAGGER = "†"
DEFAULT_DIGITS = 3
"""Significant digits of a mean in the text renderings (`--digits`)."""


@dataclass(frozen=True)
class Stat:
    """Mean ± sample std over `n` seeds (n None for published numbers, std NaN if unknown)."""

    mean: float
    std: float = math.nan
    n: int | None = None
    bold: bool = False
    few_seeds: bool = False
    places: int | None = None  # fixed decimal places (published numbers, as the papers print)


@dataclass(frozen=True)
class Num:
    """A single number: a difference of means printed at the decimal place of the `like` cell
    (signed), or, without `like`, a number with the table's significant digits (a p-value)."""

    value: float
    like: Stat | None = None


Cell = Stat | Num | str | None


@dataclass(frozen=True)
class Row:
    """One table row: its label cells (one per index column) and its value cells."""

    labels: tuple[str, ...]
    cells: tuple[Cell, ...]
    published: bool = False


@dataclass
class Table:
    """A titled table with index columns, value columns, a caption and notes printed below."""

    name: str
    title: str
    index: list[str]
    columns: list[str]
    rows: list[Row]
    caption: str
    notes: list[str] = field(default_factory=list)
    digits: int = DEFAULT_DIGITS


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _places(value: float, digits: int) -> int:
    """Decimal places that show `digits` significant digits of `value` (never negative)."""
    if not _finite(value) or value == 0:
        return digits - 1
    return max(0, digits - 1 - math.floor(math.log10(abs(value))))


def stat_places(cell: Stat, digits: int) -> int:
    """The decimal place of a cell: `digits` significant digits of the mean, finer when the std's
    first significant digit lies further right; a cell's fixed `places` win."""
    if cell.places is not None:
        return cell.places
    places = _places(cell.mean, digits)
    if _finite(cell.std) and cell.std > 0:
        places = max(places, _places(cell.std, 1))
    return places


def stat_text(cell: Stat, digits: int, pm: str = " ± ") -> str:
    """`mean ± std` (or `mean` without a std) at `stat_places`: 0.15771 ± 0.00147 -> 0.158 ±
    0.001, 57.0 ± 2.83 -> 57.0 ± 2.8 (3 digits)."""
    places = stat_places(cell, digits)
    text = f"{cell.mean:.{places}f}"
    return text + (f"{pm}{cell.std:.{places}f}" if _finite(cell.std) else "")


def num_text(cell: Num, digits: int) -> str:
    """A difference at its `like` cell's decimal place (signed), else `digits` significant
    digits; a dash for a missing number."""
    if not _finite(cell.value):
        return "–"
    if cell.like is not None:
        return f"{cell.value:+.{stat_places(cell.like, digits)}f}"
    return f"{cell.value:.{digits}g}"


def cell_text(cell: Cell, digits: int, pm: str = " ± ", bold: Callable[[str], str] = str) -> str:
    """A cell as text; Stat cells get their seed count, bold and dagger marks."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, Num):
        return num_text(cell, digits)
    if not math.isfinite(cell.mean):
        return "–"
    text = stat_text(cell, digits, pm)
    text = bold(text) if cell.bold else text
    if cell.n is not None:
        text += f" ({cell.n})"
    return text + (DAGGER if cell.few_seeds else "")


def published_label(label: str) -> str:
    return f"{label} (published)"


def to_markdown(table: Table) -> str:
    """GitHub Markdown: a heading, the caption, the table (best in bold), notes as a list."""
    header = [*table.index, *table.columns]
    lines = [f"### {table.title}", "", table.caption, ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * len(table.index) + ["---:"] * len(table.columns)) + "|")
    for row in table.rows:
        labels = list(row.labels)
        if row.published:
            labels[0] = f"*{published_label(labels[0])}*"
        cells = [cell_text(c, table.digits, bold=lambda s: f"**{s}**") for c in row.cells]
        lines.append("| " + " | ".join([*labels, *cells]) + " |")
    lines.append("")
    lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines).rstrip() + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#"}
_LATEX_ESCAPES |= {"_": r"\_", "{": r"\{", "}": r"\}", "~": r"\~{}", "^": r"\^{}"}


_LATEX_SYMBOLS = {DAGGER: r"$^\dagger$", "±": r"$\pm$", "–": "--", "Δ": r"$\Delta$"}
"""The non-ASCII symbols the tables use, as LaTeX that pdflatex accepts without extra packages."""


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text and spell out `_LATEX_SYMBOLS`."""
    out = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    for symbol, command in _LATEX_SYMBOLS.items():
        out = out.replace(symbol, command)
    return out


def _latex_cell(cell: Cell, digits: int) -> str:
    if cell is None:
        return ""
    if not isinstance(cell, Stat):
        return latex_escape(cell_text(cell, digits))
    if not math.isfinite(cell.mean):
        return "--"
    body = stat_text(cell, digits, r" \pm ")
    text = rf"$\mathbf{{{body}}}$" if cell.bold else f"${body}$"
    if cell.n is not None:
        text += rf"\,{{\scriptsize ({cell.n})}}"
    return text + (r"$^\dagger$" if cell.few_seeds else "")


def to_latex(table: Table) -> str:
    """A booktabs `table` float: caption (metric and seeds), label, rules, bold best, notes."""
    spec = "l" * len(table.index) + "c" * len(table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.name}}}",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in [*table.index, *table.columns]) + r" \\",
        r"\midrule",
    ]
    previous_published = False
    for i, row in enumerate(table.rows):
        if row.published and not previous_published and i > 0:
            lines.append(r"\midrule")
        previous_published = row.published
        labels = [latex_escape(x) for x in row.labels]
        if row.published:
            labels[0] = rf"\textit{{{latex_escape(published_label(row.labels[0]))}}}"
        lines.append(
            " & ".join([*labels, *(_latex_cell(c, table.digits) for c in row.cells)]) + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines += [r"\par\smallskip\footnotesize"]
        lines += [latex_escape(note) + r"\par" for note in table.notes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_frame(table: Table) -> pd.DataFrame:
    """Machine-readable wide frame, one row per table row.

    A column holding `Stat` cells becomes `<col>_mean`, `<col>_std`, `<col>_n`, `<col>_best`,
    `<col>_few_seeds`; a `Num` column its value; a text column its text; empty cells are NaN.
    """
    stat_cols = {j for row in table.rows for j, c in enumerate(row.cells) if isinstance(c, Stat)}
    empty = Stat(math.nan)
    records = []
    for row in table.rows:
        record: dict[str, object] = dict(zip(table.index, row.labels, strict=True))
        record["published"] = row.published
        for j, (name, cell) in enumerate(zip(table.columns, row.cells, strict=True)):
            if j in stat_cols:
                stat = cell if isinstance(cell, Stat) else empty
                record |= {
                    f"{name}_mean": stat.mean,
                    f"{name}_std": stat.std,
                    f"{name}_n": stat.n,
                    f"{name}_best": stat.bold,
                    f"{name}_few_seeds": stat.few_seeds,
                }
            else:
                record[name] = cell.value if isinstance(cell, Num) else cell
        records.append(record)
    columns = [*table.index, "published"]
    for j, name in enumerate(table.columns):
        stat_fields = ("mean", "std", "n", "best", "few_seeds")
        columns += [f"{name}_{f}" for f in stat_fields] if j in stat_cols else [name]
    frame = pd.DataFrame.from_records(records, columns=columns)
    for j in stat_cols:
        frame[f"{table.columns[j]}_n"] = frame[f"{table.columns[j]}_n"].astype("Int64")
    return frame


def to_csv(table: Table) -> str:
    """`to_frame` as CSV text."""
    buffer = io.StringIO()
    to_frame(table).to_csv(buffer, index=False)
    return buffer.getvalue()


def write_table(table: Table, out: Path, excluded: Table | None = None) -> list[Path]:
    """`<out>/<name>.md`, `.tex`, `.csv`; the excluded runs follow in the Markdown, and as LaTeX
    comments under the table so they travel with it."""
    out.mkdir(parents=True, exist_ok=True)
    md, tex = to_markdown(table), to_latex(table)
    if excluded is not None and excluded.rows:
        md += "\n" + to_markdown(excluded)
        tex += "".join(f"% excluded: {', '.join(r.labels)}\n" for r in excluded.rows)
    paths = [out / f"{table.name}.{ext}" for ext in ("md", "tex", "csv")]
    for path, text in zip(paths, (md, tex, to_csv(table)), strict=True):
        path.write_text(text)
    return paths


def to_terminal(table: Table) -> str:
    """Aligned plain text for a terminal: best cells wrapped in `*`, notes below."""
    header = [*table.index, *table.columns]
    body = []
    for row in table.rows:
        labels = list(row.labels)
        if row.published:
            labels[0] = published_label(labels[0])
        cells = (cell_text(c, table.digits, bold=lambda s: f"*{s}*") for c in row.cells)
        body.append([*labels, *cells])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    n_index = len(table.index)

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i < n_index else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(header))
    out = [table.title, table.caption, rule, line(header), rule, *map(line, body), rule]
    out += [f"  {note}" for note in table.notes]
    return "\n".join(out) + "\n"


RENDERERS: dict[str, Callable[[Table], str]] = {
    "md": to_markdown,
    "latex": to_latex,
    "csv": to_csv,
    "term": to_terminal,
}
"""`--format` name -> renderer."""
