"""LRA ListOps: nested MAX/MIN/MED/SM expressions over digits, 10 classes, length 2048.

Layout (`task.data_dir` points at `listops-1000/` of the LRA release, or at a folder holding it:
the release's `lra_release/`, or the folder it was unpacked in, holding `lra_release/lra_release/`):

    listops-1000/basic_train.tsv   basic_val.tsv   basic_test.tsv

each a tab-separated file with the header `Source<TAB>Target`: an expression such as
`( ( [MAX 2 9 ] ) 4 ]` and its value 0-9. Tokens as the S4 reference (see `tasks.vocab`); a
batch is padded to its longest expression (`pad_to: batch`, the reference) or to seq_len.
`load_listops` is also the reader of the generated `listops_gen` files.
"""

from pathlib import Path

import numpy as np

from tasks.arrays import ArrayDataset, token_collate
from tasks.base import TASKS, TaskData, TaskInfo
from tasks.cache import load_or_build
from tasks.files import LRA_RELEASE, RELEASE, dataset_folder, parse_labels, read_tsv, require_files
from tasks.vocab import LISTOPS_TOKENS, PAD_ID, encode_listops

N_CLASSES = 10
HEADER = ("Source", "Target")
SPLIT_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
FOLDER = "listops-1000"
LAYOUT = (
    "listops-1000/{basic_train.tsv, basic_val.tsv, basic_test.tsv} "
    "(tab-separated, header Source<TAB>Target)"
)


def load_listops_split(path: Path, seq_len: int, append_eos: bool) -> tuple[np.ndarray, np.ndarray]:
    """One ListOps TSV file -> (tokens (n, seq_len) uint8, labels (n,) int64)."""
    rows = read_tsv(path, n_columns=2, header=HEADER)
    tokens = encode_listops([r[0] for r in rows], seq_len, append_eos, path, first_line=2)
    labels = parse_labels(path, [r[1] for r in rows], N_CLASSES, first_line=2)
    return tokens, labels


def load_listops(
    data_dir: str | Path | None,
    *,
    name: str = "listops",
    seq_len: int = 2048,
    append_eos: bool = True,
    cache_dir: str | None = None,
    pad_to: str = "batch",
) -> TaskData:
    """The three ListOps splits read from `data_dir` in the release layout (cached).

    name: the task name used in messages, in the cache entry and in `TaskInfo`.
    pad_to: "batch" (each batch padded to its longest row) or "seq_len".
    Items: x (seq_len,) int64 token ids padded with 0, y int64 scalar in [0, 10).
    """
    collate = token_collate(pad_to, PAD_ID)
    files = list(SPLIT_FILES.values())
    root = dataset_folder(name, data_dir, FOLDER, files, LAYOUT, LRA_RELEASE, RELEASE)
    paths = require_files(name, root, files, LAYOUT, LRA_RELEASE)

    def build() -> dict[str, np.ndarray]:
        arrays = {}
        for split, path in zip(SPLIT_FILES, paths, strict=True):
            arrays[f"{split}_x"], arrays[f"{split}_y"] = load_listops_split(
                path, seq_len, append_eos
            )
        return arrays

    config = {"seq_len": seq_len, "append_eos": append_eos}
    arrays = load_or_build(name, config, paths, build, cache_dir)
    splits = {
        s: ArrayDataset(arrays[f"{s}_x"], arrays[f"{s}_y"], collate=collate) for s in SPLIT_FILES
    }
    info = TaskInfo(
        name=name,
        input_kind="tokens",
        d_input=len(LISTOPS_TOKENS),
        d_output=N_CLASSES,
        seq_len=seq_len,
        pooling="mean",
        pad_id=PAD_ID,
    )
    return TaskData(**splits, info=info)


@TASKS.register("listops")
def listops(
    data_dir: str | None = None,
    cache_dir: str | None = None,
    seq_len: int = 2048,
    append_eos: bool = True,
    pad_to: str = "batch",
) -> TaskData:
    """LRA ListOps from the release files under `data_dir` (see the module docstring)."""
    return load_listops(
        data_dir, seq_len=seq_len, append_eos=append_eos, cache_dir=cache_dir, pad_to=pad_to
    )
