"""LRA Text: byte-level IMDB sentiment, 2 classes, length 4096.

Layout (`task.data_dir` points at the unpacked `aclImdb/` or the folder holding it):

    aclImdb/train/pos/*.txt  aclImdb/train/neg/*.txt  aclImdb/test/pos/*.txt  aclImdb/test/neg/*.txt

(`train/unsup/` is not read). Labels: neg 0, pos 1. Each review's raw bytes are encoded as
`tasks.vocab.encode_bytes` (LRA's byte-level setting), truncated to seq_len - 1 bytes and
<eos>-terminated as the S4 reference; a batch is padded to its longest review (`pad_to: batch`,
the reference) or to seq_len. The release has no validation set: with `val_fraction: 0` (the
S4 reference's IMDB `val_split: 0.0`, after the LRA paper) the model trains on all of train and
the test split doubles as validation; a fraction > 0 carves one from train by the S4 rule
(`tasks.arrays.carve_validation`, seed in the config).
"""

import numpy as np

from tasks.arrays import ArrayDataset, carve_validation, token_collate
from tasks.base import TASKS, TaskData, TaskInfo
from tasks.cache import load_or_build
from tasks.files import IMDB_PAGE, dataset_folder, list_folder_files, read_bytes
from tasks.vocab import BYTE_VOCAB_SIZE, PAD_ID, encode_bytes

N_CLASSES = 2
LABEL_FOLDERS = {"neg": 0, "pos": 1}
FOLDER = "aclImdb"
LAYOUT = "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"


@TASKS.register("text")
def text(
    data_dir: str | None = None,
    cache_dir: str | None = None,
    seq_len: int = 4096,
    append_eos: bool = True,
    val_fraction: float = 0.0,
    seed: int = 42,
    pad_to: str = "batch",
) -> TaskData:
    """Byte-level IMDB from `data_dir` (see the module docstring).

    Items: x (seq_len,) int64 byte ids (pad 0, eos 1, byte b -> b + 2), y int64 scalar in {0, 1}.
    """
    collate = token_collate(pad_to, PAD_ID)
    root = dataset_folder("text", data_dir, FOLDER, ["train", "test"], LAYOUT, IMDB_PAGE)
    folders = [f"{split}/{label}" for split in ("train", "test") for label in LABEL_FOLDERS]
    files = list_folder_files("text", root, folders, "*.txt", LAYOUT, IMDB_PAGE)

    def build() -> dict[str, np.ndarray]:
        arrays = {}
        for split in ("train", "test"):
            paths = [p for label in LABEL_FOLDERS for p in files[f"{split}/{label}"]]
            labels = [y for label, y in LABEL_FOLDERS.items() for _ in files[f"{split}/{label}"]]
            reviews = [read_bytes(path) for path in paths]
            arrays[f"{split}_x"] = encode_bytes(reviews, seq_len, append_eos)
            arrays[f"{split}_y"] = np.array(labels, dtype=np.int64)
        return arrays

    sources = [path for paths in files.values() for path in paths]
    config = {"seq_len": seq_len, "append_eos": append_eos}
    arrays = load_or_build("text", config, sources, build, cache_dir)
    train_index, val_index = carve_validation(len(arrays["train_y"]), val_fraction, seed)
    x, y = arrays["train_x"], arrays["train_y"]
    test = ArrayDataset(arrays["test_x"], arrays["test_y"], collate=collate)
    info = TaskInfo(
        name="text",
        input_kind="tokens",
        d_input=BYTE_VOCAB_SIZE,
        d_output=N_CLASSES,
        seq_len=seq_len,
        pooling="mean",
        pad_id=PAD_ID,
    )
    return TaskData(
        train=ArrayDataset(x, y, train_index, collate=collate),
        val=ArrayDataset(x, y, val_index, collate=collate) if len(val_index) else test,
        test=test,
        info=info,
    )
