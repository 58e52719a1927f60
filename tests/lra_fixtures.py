"""Tiny copies of the real datasets in their exact published layouts, written by the tests.

Each `write_*(root)` creates the dataset's top folder under `root` and returns it: the
directory to pass as `task.data_dir`. The contents are small, deterministic and valid; tests
that need malformed data edit the written files.
"""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

# (expression as nested lists, its value): the labels are computed by hand.
LISTOPS_ROWS = {
    "train": [
        (["MAX", 2, 9], 9),
        (["MIN", 4, ["MAX", 1, 7], 3], 3),
        (["SM", 5, 6], 1),
        (["MED", 1, 8, 3], 3),
        (["MAX", ["SM", 9, 9, 1], ["MIN", 0, 5]], 9),
        (["MIN", 6, 7, 8, 2], 2),
    ],
    "val": [(["SM", ["MAX", 3, 4], 4], 8), (["MED", 5, 2, 9, 7, 1], 5)],
    "test": [(["MIN", ["MED", 6, 6, 0], 7], 6), (["MAX", 0, 0], 0)],
}
LISTOPS_HEADER = "Source\tTarget"


def listops_source(expression) -> str:
    """An expression in the LRA ListOps file format: `[MAX 2 9 ]` as `( ( ( [MAX 2 ) 9 ) ] )`.

    The LRA generator prints its tree binarized: (op, a1, ..., an) is ((([OP a1) a2) ... ) ]).
    """
    if isinstance(expression, int):
        return str(expression)
    op, *args = expression
    text = f"[{op}"
    for arg in args:
        text = f"( {text} {listops_source(arg)} )"
    return f"( {text} ] )"


def write_listops(root: Path) -> Path:
    """listops-1000/basic_{train,val,test}.tsv with `LISTOPS_ROWS`; returns listops-1000/."""
    folder = Path(root) / "listops-1000"
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in LISTOPS_ROWS.items():
        lines = [LISTOPS_HEADER] + [f"{listops_source(e)}\t{label}" for e, label in rows]
        (folder / f"basic_{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


# Reviews: (split, label folder, file name, text). Non-ASCII text checks byte-level encoding.
IMDB_REVIEWS = [
    ("train", "pos", "0_9.txt", "A delightful film.<br /><br />Loved it."),
    ("train", "pos", "1_8.txt", "Great acting, great story — bravo!"),
    ("train", "pos", "2_10.txt", "Best movie of the year."),
    ("train", "neg", "0_2.txt", "Dull and far too long."),
    ("train", "neg", "1_1.txt", "Naïve script; I left early."),
    ("train", "neg", "2_3.txt", "Not worth the ticket."),
    ("train", "neg", "3_4.txt", "Meh."),
    ("test", "pos", "0_7.txt", "Charming and warm."),
    ("test", "neg", "0_1.txt", "Terrible. " * 30),
]


def write_imdb(root: Path) -> Path:
    """aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt (UTF-8) from `IMDB_REVIEWS`."""
    folder = Path(root) / "aclImdb"
    for split, label, name, text in IMDB_REVIEWS:
        path = folder / split / label / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    (folder / "train" / "unsup").mkdir(exist_ok=True)  # present in the release, not read
    (folder / "train" / "unsup" / "0_0.txt").write_text("unlabelled review")
    return folder


# AAN rows: label, two paper ids, two documents (no header, tab-separated, labels as floats).
# A form feed and a line separator inside a document must not split its row.
AAN_ROWS = {
    "train": [
        ("1.0", "P01-1001", "P02-2002", "Parsing with grammars.", "We parse — fast."),
        ("0.0", "P03-3003", "P04-4004", "Speech recognition.", "Machine translation " * 20),
        ("1.0", "P05-5005", "P06-6006", "Tagging.", "Part-of-speech\x0ctagging\u2028(page 2)."),
    ],
    "eval": [("0.0", "E01-1001", "E02-2002", "Dialogue.", "Summaries.")],
    "test": [
        ("1.0", "T01-1001", "T02-2002", "Word sense.", "Senses of words."),
        ("0.0", "T03-3003", "T04-4004", "Morphology.", "Semantics."),
    ],
}


def write_aan(root: Path) -> Path:
    """tsv_data/new_aan_pairs.{train,eval,test}.tsv from `AAN_ROWS`; returns tsv_data/."""
    folder = Path(root) / "tsv_data"
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in AAN_ROWS.items():
        lines = ["\t".join(row) for row in rows]
        (folder / f"new_aan_pairs.{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


CIFAR_TRAIN_PER_BATCH = 4
CIFAR_TEST = 6


def cifar_batch(n: int, seed: int) -> dict:
    """One CIFAR-10 python batch: b"data" (n, 3072) uint8 channel-major rows, b"labels"."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"fixture batch {seed}".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def write_cifar(root: Path) -> Path:
    """cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} as python pickles."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)]
    for seed, name in enumerate(names, start=1):
        with open(folder / name, "wb") as f:
            pickle.dump(cifar_batch(CIFAR_TRAIN_PER_BATCH, seed), f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(cifar_batch(CIFAR_TEST, 0), f)
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f)
    return folder


def write_pathfinder(
    root: Path, resolution: int, n: int = 10, difficulty: str = "curv_contour_length_14"
) -> Path:
    """pathfinder<res>/<difficulty>/{imgs/0/sample_<i>.png, metadata/0.npy}; random images.

    Metadata lines are `imgs/0 sample_<i>.png <i> <label>` with alternating labels.
    Returns the pathfinder<res>/ folder.
    """
    folder = Path(root) / f"pathfinder{resolution}"
    images = folder / difficulty / "imgs" / "0"
    metadata = folder / difficulty / "metadata"
    images.mkdir(parents=True, exist_ok=True)
    metadata.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(resolution)
    lines = []
    for i in range(n):
        pixels = rng.integers(0, 256, (resolution, resolution), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"sample_{i}.png")
        lines.append(f"imgs/0 sample_{i}.png {i} {i % 2}")
    (metadata / "0.npy").write_text("\n".join(lines) + "\n")
    return folder


# real-data task -> writer of its fixture (returns the directory to pass as data_dir)
WRITERS = {
    "listops": write_listops,
    "text": write_imdb,
    "retrieval": write_aan,
    "image": write_cifar,
    "scifar": write_cifar,
    "scifar_noise": write_cifar,
    "pathfinder": lambda root: write_pathfinder(root, 32),
    "pathx": lambda root: write_pathfinder(root, 128),
}
