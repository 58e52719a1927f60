"""Finding and reading the source files of the real datasets, with user-facing errors.

Every problem a user can cause here (no `data_dir`, missing or unreadable files, a malformed or
truncated row, a label that is not an integer in range, a broken symlink, a file where a folder
belongs, a path in a data file that leads outside the dataset folder) raises `common.UserError`
naming the file (and line or item), what was expected and the fix, on one line.

`task.data_dir` may name the dataset's own folder or a folder holding it (`dataset_folder`); the
folder used is named in one log line.
"""

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common import UserError

log = logging.getLogger(__name__)

LRA_RELEASE = (
    "the Long Range Arena release lra_release.gz from google-research/long-range-arena "
    "(https://storage.googleapis.com/long-range-arena/lra_release.gz; unpack with "
    "`tar -xzf lra_release.gz`)"
)
RELEASE = "lra_release"  # lra_release.gz unpacks to lra_release/lra_release/<dataset folder>
IMDB_PAGE = (
    "the Large Movie Review Dataset aclImdb_v1.tar.gz from "
    "https://ai.stanford.edu/~amaas/data/sentiment/ (unpack with `tar -xzf aclImdb_v1.tar.gz`)"
)
CIFAR_PAGE = (
    "CIFAR-10 python version cifar-10-python.tar.gz from the Toronto CIFAR page "
    "https://www.cs.toronto.edu/~kriz/cifar.html (unpack with `tar -xzf cifar-10-python.tar.gz`)"
)


def data_root(task: str, data_dir: str | None, layout: str, published: str) -> Path:
    """`data_dir` as a Path; a `UserError` naming the layout and the source when it is unset,
    or when it names nothing or a file."""
    if data_dir is None:
        raise UserError(
            f"task {task!r} reads a downloaded dataset but task.data_dir is not set; set "
            f"task.data_dir to the directory laid out as {layout}; get the data from {published}"
        )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise UserError(
            f"task {task!r}: task.data_dir={root} {problem}; point it at the folder laid out "
            f"as {layout} (or its parent); get the data from {published}"
        )
    return root


def dataset_folder(
    task: str,
    data_dir: str | None,
    folder: str,
    markers: Sequence[str],
    layout: str,
    published: str,
    release: str | None = None,
) -> Path:
    """The dataset's own folder, given `task.data_dir` as that folder or as a folder holding it.

    folder: the dataset folder's published name (`cifar-10-batches-py`, `listops-1000`, ...).
    markers: paths relative to the dataset folder, one of which exists in it (its files).
    release: the archive's top folder (the LRA release unpacks to
        `lra_release/lra_release/<folder>`): then `data_dir` may also be either `lra_release/`.
    Candidates, in order: data_dir itself, data_dir/folder, data_dir/release/folder,
    data_dir/release/release/folder; the first holding a marker is used and named in one log
    line. With none, the first that is a folder (so a missing-file error lists the files
    under the folder the user meant), else data_dir.
    """
    root = data_root(task, data_dir, layout, published)
    nests = [folder] + ([f"{release}/{folder}", f"{release}/{release}/{folder}"] if release else [])
    candidates = [(root, "the dataset folder itself")]
    candidates += [(root / nest, f"the folder holding {nest}/") for nest in nests]
    for path, role in candidates:
        if any((path / marker).exists() for marker in markers):
            log.info("task %r: reading %s (task.data_dir is %s)", task, path, role)
            return path
    return next((path for path, _ in candidates[1:] if path.is_dir()), root)


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
    number; so are a file that is not UTF-8, a file without data rows, and a last row without
    its line break (a truncated file: its last field may be cut short).
    """
    text = read_text(path)
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines[-1] == "":
        lines.pop()
    else:  # the release's files end with a line break
        raise UserError(
            f"{path}: line {len(lines)} (the last) has no line break at its end, so the file "
            "looks truncated; re-extract it from the release"
        )
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

    A non-integer or out-of-range value, or one written in other than ASCII digits (Python's
    `float` would read "٣" as 3), is a `UserError` naming `path` and its `line` number.
    """
    try:
        number = float(text) if text.isascii() else float("nan")
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


def labels_array(source: Path, values: object, n_classes: int) -> np.ndarray:
    """Integer labels in [0, n_classes) -> (n,) int64; a `UserError` naming `source` and the
    first bad item otherwise (a string, a fraction, NaN, a nested list, a value out of range).

    values: a list, tuple or 1-d array of numbers (a CIFAR batch holds a list of ints).
    """
    flat = isinstance(values, list | tuple) or (isinstance(values, np.ndarray) and values.ndim == 1)
    if not flat:
        raise UserError(
            f"{source}: the labels are {type(values).__name__} {_short(values)}, expected a "
            f"list of integers in [0, {n_classes}); the file is malformed"
        )
    for item, value in enumerate(values):
        if isinstance(value, bool | np.bool_):
            ok = False
        elif isinstance(value, int | np.integer):  # any size: no float conversion
            ok = 0 <= value < n_classes
        elif isinstance(value, float | np.floating):
            ok = math.isfinite(value) and float(value).is_integer() and 0 <= value < n_classes
        else:
            ok = False
        if not ok:
            raise UserError(
                f"{source}: item {item} has label {_short(value)}, expected an integer in "
                f"[0, {n_classes}); the file is malformed"
            )
    return np.array([int(v) for v in values], dtype=np.int64)


def _short(value: object) -> str:
    """`repr(value)` on one line, cut to 40 characters."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."


def read_bytes(path: Path) -> bytes:
    """The bytes of a data file; an unreadable one (a folder, a broken symlink, no permission)
    is a `UserError` naming it."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(
            f"{path}: cannot read the file ({exc.strerror or exc}); expected a readable file of "
            "the dataset, re-extract it"
        ) from None


def read_text(path: Path) -> str:
    """`read_bytes` decoded as UTF-8; a file that is not UTF-8 is a `UserError` naming it."""
    try:
        return read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte {exc.start}); the file is corrupt, re-extract it"
        ) from None


def inside(root: Path, relative: str, listed_in: str) -> Path:
    """`root / relative` if it resolves (symlinks followed) inside `root`, else a `UserError`.

    relative: a path read from a data file; listed_in: that file and line, for the message.
    A data file may only name files of its own dataset folder, never `../..` or an absolute path.
    """
    path = root / relative
    base = root.resolve()
    try:
        target = path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte; a loop (3.11: RuntimeError)
        raise UserError(f"{listed_in}: names {relative!r}, not a usable path ({exc})") from None
    if target != base and base not in target.parents:
        raise UserError(
            f"{listed_in}: names {relative!r}, which resolves to {target}, outside the dataset "
            f"folder {base}; a data file may only name files inside it (re-extract the release)"
        )
    return path


def list_folder_files(
    task: str, root: Path, folders: Sequence[str], pattern: str, layout: str, published: str
) -> dict[str, list[Path]]:
    """folder -> its files matching `pattern`, sorted by name; a `UserError` if any is absent.

    A folder that is missing, a file, or holds no matching file is reported with the layout
    expected; so is a match that is not a readable regular file (a folder, a broken symlink).
    """
    for folder in folders:
        if (root / folder).exists() and not (root / folder).is_dir():
            raise UserError(
                f"{root / folder}: a file where the folder {folder}/ belongs; expected the "
                f"layout {layout}; re-extract the data from {published}"
            )
    found = {folder: sorted((root / folder).glob(pattern)) for folder in folders}
    missing = [f"{root / folder}/{pattern}" for folder, files in found.items() if not files]
    if missing:
        raise UserError(
            f"task {task!r}: data not found under task.data_dir={root}; expected the layout "
            f"{layout}; found no file(s) {', '.join(missing)}; get the data from {published} "
            f"and point task.data_dir at that directory"
        )
    for path in (p for files in found.values() for p in files):
        if not path.is_file():
            what = "a broken symlink" if path.is_symlink() and not path.exists() else "not a file"
            raise UserError(
                f"{path}: {what}, where the layout {layout} has a file; remove it or "
                f"re-extract the data from {published}"
            )
    return found
