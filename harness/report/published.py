"""Published reference numbers: `results/published_results.csv` as a typed DataFrame.

The CSV (columns paper, table, model, task, metric, value, notes) copies what the S4, S4D, HTTYH,
Liquid-S4 and HOPE papers report; `results/README.md` names the sources. Only test accuracies on
tasks this harness runs are read; their task names are mapped to the registry's names
(`ListOps` -> `listops`, ..., `sCIFAR` -> `scifar`) and the published model names that correspond
to a registered model are mapped too (`S4D-Lin` -> `s4d_lin`), so a leaderboard can put a
published row under the model it belongs to.
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd

from common import UserError
from harness.layout import PROJECT_ROOT

DEFAULT_PUBLISHED_CSV = PROJECT_ROOT / "results" / "published_results.csv"

TASK_NAMES = {
    "ListOps": "listops",
    "Text": "text",
    "Retrieval": "retrieval",
    "Image": "image",
    "Pathfinder": "pathfinder",
    "Path-X": "pathx",
    "sCIFAR": "scifar",
}
"""Published task label -> registered task name (the papers' `Avg` is recomputed, not read)."""

MODEL_NAMES = {
    "S4-LegS": "s4_legs",
    "S4-FouT": "s4_fout",
    "S4D-LegS": "s4d_legs",
    "S4D-Inv": "s4d_inv",
    "S4D-Lin": "s4d_lin",
    "HOPE-SSM": "hope",
}
"""Published model label -> registered model name, for the models that are the same recipe."""

REQUIRED_COLUMNS = ("paper", "table", "model", "task", "metric", "value", "notes")
_SD = re.compile(r"\bsd (\d+(?:\.\d+)?)")
_SOURCE = re.compile(r"\b([PS])\[([A-Z](?:\]\+\[[A-Z])*)\]")


def _source(paper: str, table: str, notes: str) -> str:
    """`S4D 2206.11893, LRA table (no. unseen)` plus the source letters, e.g. `; S[B]+[C]`."""
    match = _SOURCE.search(notes)
    letters = f"; {match.group(0)}" if match else ""
    return f"{paper}, {table}{letters}"


def load_published(path: Path | str | None = None) -> pd.DataFrame:
    """Published test accuracies (percent) on the harness's tasks.

    Returns one row per (paper, model, task) with columns `paper`, `model` (published label),
    `registered` (the registered model name or None), `task` (registered task name), `mean`
    (float, NaN where the paper reports a failure `x`), `std` (the paper's `sd`, NaN if none),
    `source` (paper, table and source letters).
    """
    path = Path(path) if path is not None else DEFAULT_PUBLISHED_CSV
    if not path.is_file():
        raise UserError(
            f"published results file {path} does not exist; copy "
            "../shared/reference/published_results.csv there or pass --published none"
        )
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise UserError(f"published results file {path} lacks the columns {missing}")
    rows = raw[(raw["metric"] == "test acc") & raw["task"].isin(TASK_NAMES)]
    values = pd.to_numeric(rows["value"], errors="coerce")
    failed = rows["value"].str.strip().isin(["x", "-"])
    rows, values = rows[values.notna() | failed], values[values.notna() | failed]
    sd = rows["notes"].map(lambda s: float(m.group(1)) if (m := _SD.search(s)) else np.nan)
    out = pd.DataFrame(
        {
            "paper": rows["paper"],
            "model": rows["model"],
            "registered": rows["model"].map(MODEL_NAMES),
            "task": rows["task"].map(TASK_NAMES),
            "mean": values.astype(float),
            "std": sd.astype(float),
            "source": [
                _source(p, t, n)
                for p, t, n in zip(rows["paper"], rows["table"], rows["notes"], strict=True)
            ],
        }
    )
    return out.drop_duplicates(subset=["paper", "model", "task"]).reset_index(drop=True)
