"""LRA Retrieval: do two ACL Anthology papers cite each other? Byte level, two inputs, 2 classes.

Layout (`task.data_dir` points at `tsv_data/` of the LRA release, or at a folder holding it: the
release's `lra_release/`, or the folder it was unpacked in, holding `lra_release/lra_release/`):

    tsv_data/new_aan_pairs.train.tsv   new_aan_pairs.eval.tsv   new_aan_pairs.test.tsv

tab-separated, no header, 5 columns as the S4 reference reads them: label (written as a float,
"1.0"), paper id 1, paper id 2, text 1, text 2. The ids are not used. Each text's UTF-8 bytes
are encoded as `tasks.vocab.encode_bytes`, truncated to seq_len - 1 and <eos>-terminated; a
batch pads both documents to the longest document in it (`pad_to: batch`, the reference) or
to seq_len.
The release's eval file is the validation split.
"""

import numpy as np

from tasks.arrays import ArrayDataset, token_collate
from tasks.base import TASKS, TaskData, TaskInfo
from tasks.cache import load_or_build
from tasks.files import LRA_RELEASE, RELEASE, dataset_folder, parse_labels, read_tsv, require_files
from tasks.vocab import BYTE_VOCAB_SIZE, PAD_ID, encode_bytes

N_CLASSES = 2
N_COLUMNS = 5  # label, id1, id2, text1, text2
SPLIT_FILES = {
    "train": "new_aan_pairs.train.tsv",
    "val": "new_aan_pairs.eval.tsv",
    "test": "new_aan_pairs.test.tsv",
}
FOLDER = "tsv_data"
LAYOUT = (
    "tsv_data/new_aan_pairs.{train,eval,test}.tsv "
    "(tab-separated, no header: label, id1, id2, text1, text2)"
)


@TASKS.register("retrieval")
def retrieval(
    data_dir: str | None = None,
    cache_dir: str | None = None,
    seq_len: int = 4000,
    append_eos: bool = True,
    pad_to: str = "batch",
) -> TaskData:
    """LRA AAN Retrieval from `data_dir` (see the module docstring).

    Items: x (2, seq_len) int64 byte ids of the two documents (pad 0, eos 1, byte b -> b + 2),
    y int64 scalar in {0, 1}.
    """
    collate = token_collate(pad_to, PAD_ID)
    files = list(SPLIT_FILES.values())
    root = dataset_folder("retrieval", data_dir, FOLDER, files, LAYOUT, LRA_RELEASE, RELEASE)
    paths = require_files("retrieval", root, files, LAYOUT, LRA_RELEASE)

    def build() -> dict[str, np.ndarray]:
        arrays = {}
        for split, path in zip(SPLIT_FILES, paths, strict=True):
            rows = read_tsv(path, n_columns=N_COLUMNS, header=None)
            first = encode_bytes([r[3].encode() for r in rows], seq_len, append_eos)
            second = encode_bytes([r[4].encode() for r in rows], seq_len, append_eos)
            arrays[f"{split}_x"] = np.stack([first, second], axis=1)  # (n, 2, seq_len)
            arrays[f"{split}_y"] = parse_labels(path, [r[0] for r in rows], N_CLASSES, 1)
        return arrays

    config = {"seq_len": seq_len, "append_eos": append_eos}
    arrays = load_or_build("retrieval", config, paths, build, cache_dir)
    splits = {
        s: ArrayDataset(arrays[f"{s}_x"], arrays[f"{s}_y"], collate=collate) for s in SPLIT_FILES
    }
    info = TaskInfo(
        name="retrieval",
        input_kind="tokens",
        d_input=BYTE_VOCAB_SIZE,
        d_output=N_CLASSES,
        seq_len=seq_len,
        dual=True,
        pooling="mean",
        pad_id=PAD_ID,
    )
    return TaskData(**splits, info=info)
