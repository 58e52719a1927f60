"""Finding and reading the source files of the real datasets, with user-facing errors.

Every problem a user can cause here (no `data_dir`, missing files, a malformed row, a label out
of range) raises `common.UserError` naming the file (and row or item) and the fix.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common import UserError

LRA_RELEASE = (
    "the Long Range Arena release lra_release.gz from google-research/long-range-arena "
    "(https://storage.googleapis.com/long-range-arena/lra_release.gz; unpack with "
    "`tar -xzf lra_release.gz`)"
)
IMDB_PAGE = (
    "the Large Movie Review Dataset aclImdb_v1.tar.gz from "
    "https://ai.stanford.edu/~amaas/data/sentiment/ (unpack with `tar -xzf aclImdb_v1.tar.gz`)"
)
CIFAR_PAGE = (
    "CIFAR-10 python version cifar-10-python.tar.gz from the Toronto CIFAR page "
    "https://www.cs.toronto.edu/~kriz/cifar.html (unpack with `tar -xzf cifar-10-python.tar.gz`)"
)


def data_root(task: str, data_dir: str | None, layout: str, published: str) -> Path:
    """`data_dir` as a Path; a `UserError` naming the layout and the source when it is unset."""
    if data_dir is None:
        raise UserError(
            f"task {task!r} reads a downloaded dataset but task.data_dir is not set; set "
            f"task.data_dir to the directory laid out as {layout}; get the data from {published}"
        )
    return Path(data_dir).expanduser()


def require_files(
    task: str, root: Path, relpaths: Sequence[str], layout: str, published: str
) -> list[Path]:
    """`root / p` for every p in `relpaths`; a `UserError` listing the missing ones otherwise."""
    paths = [root / rel for rel in relpaths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(
            f"task {task!r}: data not found under task.data_dir={root}; expected the layout "
            f"{layout}; missing file(s): {', '.join(missing)}; get the data from {published} "
            f"and point task.data_dir at that directory"
        )
    return paths


def read_tsv(path: Path, n_columns: int, header: Sequence[str] | None) -> list[list[str]]:
    """The rows of a tab-separated file, each split into exactly `n_columns` fields.

    header: the expected first row (checked and dropped), or None when the file has none.
    Lines end at "\n" only and fields are split at tabs only (the LRA files quote nothing; the
    documents may hold form feeds and other characters that `str.splitlines` would split at).
    A row with another number of fields is a `UserError` naming the file and its 1-based line
    number; so are a file that is not UTF-8 and a file without data rows.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte {exc.start}); the file is corrupt, re-extract it"
        ) from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines[-1] == "":
        lines.pop()
    start = 0
    if header is not None:
        if not lines or lines[0].split("\t") != list(header):
            found = lines[0].split("\t") if lines else "an empty file"
            raise UserError(
                f"{path}: line 1 should be the header {list(header)} (tab-separated) but is "
                f"{found}; is this the right file?"
            )
        start = 1
    rows = []
    for number, line in enumerate(lines[start:], start=start + 1):
        fields = line.split("\t")
        if len(fields) != n_columns:
            raise UserError(
                f"{path}: line {number} has {len(fields)} tab-separated column(s), expected "
                f"{n_columns}; the file is malformed (re-extract it from the release)"
            )
        rows.append(fields)
    if not rows:
        raise UserError(f"{path}: the file holds no data rows; re-extract it from the release")
    return rows


def parse_label(path: Path, text: str, n_classes: int, line: int) -> int:
    """An integer label from a text field such as "3" or "1.0", in [0, n_classes).

    A non-integer or out-of-range value is a `UserError` naming `path` and its `line` number.
    """
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not (np.isfinite(number) and number.is_integer() and 0 <= number < n_classes):
        raise UserError(
            f"{path}: line {line} has label {text!r}, expected an integer in [0, {n_classes}); "
            "the file is malformed"
        )
    return int(number)


def parse_labels(path: Path, values: Sequence[str], n_classes: int, first_line: int) -> np.ndarray:
    """`parse_label` of every value -> (n,) int64; values[i] is on line first_line + i."""
    labels = [parse_label(path, text, n_classes, first_line + i) for i, text in enumerate(values)]
    return np.array(labels, dtype=np.int64)


def check_labels(source: str, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """`labels` as int64, or a `UserError` naming `source` and the first item out of range."""
    labels = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if bad.size:
        raise UserError(
            f"{source}: item {bad[0]} has label {labels[bad[0]]}, expected an integer in "
            f"[0, {n_classes}); the file is malformed"
        )
    return labels


def list_folder_files(
    task: str, root: Path, folders: Sequence[str], pattern: str, layout: str, published: str
) -> dict[str, list[Path]]:
    """folder -> its files matching `pattern`, sorted by name; a `UserError` if any is absent.

    A folder that is missing or holds no matching file is reported with the layout expected.
    """
    found = {folder: sorted((root / folder).glob(pattern)) for folder in folders}
    missing = [f"{root / folder}/{pattern}" for folder, files in found.items() if not files]
    if missing:
        raise UserError(
            f"task {task!r}: data not found under task.data_dir={root}; expected the layout "
            f"{layout}; found no file(s) {', '.join(missing)}; get the data from {published} "
            f"and point task.data_dir at that directory"
        )
    return found
