"""A seeded fuzzer of the real-data loaders: damage a fixture (lra_fixtures.py), build the task.

Each case copies a valid fixture in its published layout, applies one mutation of a category

    truncate   cut a file at a random byte
    corrupt    overwrite / insert random bytes, or make the file something else (empty, binary,
               a folder, a broken symlink, a file where a folder belongs)
    mislabel   a label that is NaN, inf, negative, out of range, fractional, text or missing
    misshape   a row with too few or too many fields, an array of the wrong shape or dtype, an
               image of the wrong size or a decompression bomb, a path outside the dataset

and builds the task. The outcome is one of

    error      a `UserError` whose message is one line and names the damaged file
    loaded     the task built (the damage was harmless, e.g. a changed byte inside a review)
    unclear    a `UserError` that does not name the file or spans several lines
    traceback  any other exception

and, in every case, the cache holds no temporary folder, and a complete entry only if the task
built (`cache_state`). `run_cases` tallies outcomes per (task, category).
"""

import pickle
import random
import shutil
import struct
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lra_fixtures as fx
import numpy as np
from PIL import Image

import tasks
from common import UserError

CATEGORIES = ("truncate", "corrupt", "mislabel", "misshape")
LOADERS = ("listops", "retrieval", "text", "image", "pathfinder")
BAD_LABELS = ("nan", "NaN", "inf", "-1", "10", "2.5", "x", "", "1e400", "-0.5", "٣")


@dataclass
class Case:
    """One mutation applied: `file` is the path the error message must name."""

    category: str
    what: str
    file: Path


Mutation = Callable[[random.Random, Path], Case]


# --- generic byte-level damage --------------------------------------------------------------


def truncate(rng: random.Random, path: Path) -> Case:
    data = path.read_bytes()
    cut = rng.randrange(0, max(len(data), 1))
    path.write_bytes(data[:cut])
    return Case("truncate", f"cut at byte {cut} of {len(data)}", path)


def corrupt_bytes(rng: random.Random, path: Path) -> Case:
    data = bytearray(path.read_bytes())
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(0, max(len(data), 1))
        values = [0x00, 0x09, 0x0A, 0xFF, 0xC3, rng.randrange(256)]
        noise = bytes(rng.choice(values) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.5:
            data[at : at + len(noise)] = noise
        else:
            data[at:at] = noise
    path.write_bytes(bytes(data))
    return Case("corrupt", "random bytes written", path)


def make_other_thing(rng: random.Random, path: Path) -> Case:
    """The file replaced by an empty file, binary garbage, a folder or a broken symlink."""
    kind = rng.choice(["empty", "garbage", "folder", "broken symlink"])
    path.unlink()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))))
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(path.parent / "no-such-file")
    return Case("corrupt", f"replaced by {kind}", path)


# --- tab-separated files (ListOps, AAN) -----------------------------------------------------


def _tsv_lines(path: Path) -> tuple[list[str], int]:
    lines = path.read_text().split("\n")[:-1]
    return lines, int(lines[0] == fx.LISTOPS_HEADER)


def tsv_mislabel(label_column: int) -> Mutation:
    def mutate(rng: random.Random, path: Path) -> Case:
        lines, first = _tsv_lines(path)
        at = rng.randrange(first, len(lines))
        fields = lines[at].split("\t")
        fields[label_column] = rng.choice(BAD_LABELS)
        lines[at] = "\t".join(fields)
        path.write_text("\n".join(lines) + "\n")
        return Case("mislabel", f"line {at + 1} label {fields[label_column]!r}", path)

    return mutate


def tsv_misshape(rng: random.Random, path: Path) -> Case:
    lines, first = _tsv_lines(path)
    at = rng.randrange(first, len(lines))
    fields = lines[at].split("\t")
    if rng.random() < 0.5:
        fields = fields[: rng.randrange(0, len(fields))]
    else:
        fields += ["extra"] * rng.randint(1, 3)
    lines[at] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")
    return Case("misshape", f"line {at + 1} with {len(fields)} field(s)", path)


# --- CIFAR batches ---------------------------------------------------------------------------


def _load_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _dump_batch(path: Path, batch: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(batch, f)


def cifar_mislabel(rng: random.Random, path: Path) -> Case:
    batch = _load_batch(path)
    bad = rng.choice(["3", b"3", "cat", -1, 10, 2.5, float("nan"), None, [1], 1e30, 10**400, True])
    choice = rng.choice(["one", "all-strings", "not-a-list"])
    if choice == "one":
        batch[b"labels"][rng.randrange(len(batch[b"labels"]))] = bad
    elif choice == "all-strings":
        batch[b"labels"] = [str(v) for v in batch[b"labels"]]
    else:
        batch[b"labels"] = bad
    _dump_batch(path, batch)
    return Case("mislabel", f"labels: {choice} {bad!r}", path)


def cifar_misshape(rng: random.Random, path: Path) -> Case:
    batch = _load_batch(path)
    n = len(batch[b"labels"])
    kinds = ["columns", "dtype", "extra label", "zero images", "list data", "no data key"]
    kind = rng.choice([*kinds, "not dict", "3d"])
    if kind == "columns":
        batch[b"data"] = np.zeros((n, rng.choice([0, 1, 3071, 3073])), np.uint8)
    elif kind == "dtype":
        batch[b"data"] = batch[b"data"].astype(rng.choice([np.float64, np.int64, np.bool_]))
    elif kind == "extra label":
        batch[b"labels"].append(1)
    elif kind == "zero images":
        batch[b"data"], batch[b"labels"] = np.zeros((0, 3072), np.uint8), []
    elif kind == "list data":
        batch[b"data"] = [[1, 2]] * n
    elif kind == "no data key":
        del batch[b"data"]
    elif kind == "not dict":
        batch = [batch[b"data"], batch[b"labels"]]
    else:
        batch[b"data"] = batch[b"data"].reshape(n, 3, 1024)
    _dump_batch(path, batch)
    return Case("misshape", kind, path)


# --- Pathfinder ------------------------------------------------------------------------------


def _metadata(root: Path) -> Path:
    return root / "curv_contour_length_14" / "metadata" / "0.npy"


def _image(rng: random.Random, root: Path) -> Path:
    return root / "curv_contour_length_14" / "imgs" / "0" / f"sample_{rng.randrange(10)}.png"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height 8-bit grayscale, and an empty IEND."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def pathfinder_mislabel(rng: random.Random, root: Path) -> Case:
    meta = _metadata(root)
    lines = meta.read_text().splitlines()
    at = rng.randrange(len(lines))
    fields = lines[at].split()
    fields[3] = rng.choice([label for label in BAD_LABELS if label] + ["2"])
    lines[at] = " ".join(fields)
    meta.write_text("\n".join(lines) + "\n")
    return Case("mislabel", f"line {at + 1} label {fields[3]!r}", meta)


def pathfinder_misshape(rng: random.Random, root: Path) -> Case:
    kind = rng.choice(["fields", "size", "bomb", "outside", "absolute", "rgb", "nul"])
    meta = _metadata(root)
    if kind in ("size", "bomb", "rgb"):
        image = _image(rng, root)
        if kind == "size":
            side = rng.choice([1, 16, 31, 33, 64])
            Image.fromarray(np.zeros((side, side), np.uint8)).save(image)
        elif kind == "rgb":  # converted to grayscale as the reference: harmless
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
        else:
            image.write_bytes(png_header_only(rng.choice([20000, 60000]), 20000))
        return Case("misshape", kind, image)
    lines = meta.read_text().splitlines()
    at = rng.randrange(len(lines))
    fields = lines[at].split()
    if kind == "fields":
        fields = fields[: rng.randrange(0, 4)]
    elif kind == "nul":
        fields[1] = fields[1].replace("_", "\x00")
    else:
        outside = root.parent.parent / "outside.png"
        Image.fromarray(np.full((32, 32), 7, np.uint8)).save(outside)
        # root/<difficulty>/<folder>/<file> must climb 3 levels to leave the dataset
        folder = "../../.." if kind == "outside" else str(outside.parent)
        fields[:2] = [folder, outside.name]
    lines[at] = " ".join(fields)
    meta.write_text("\n".join(lines) + "\n")
    return Case("misshape", kind, meta)


def pathfinder_file(mutate: Mutation, pick: str) -> Mutation:
    def apply(rng: random.Random, root: Path) -> Case:
        return mutate(rng, _metadata(root) if pick == "meta" else _image(rng, root))

    return apply


# --- IMDB ------------------------------------------------------------------------------------


def _review(rng: random.Random, root: Path) -> Path:
    return rng.choice(sorted(root.glob("t*/[np]*/*.txt")))  # the folders read (not unsup/)


def text_misshape(rng: random.Random, root: Path) -> Case:
    """A label folder replaced by a file, or a review by a folder or a broken symlink."""
    kind = rng.choice(["folder is a file", "review is a folder", "broken symlink", "empty folder"])
    if kind in ("folder is a file", "empty folder"):
        folder = root / rng.choice(["train", "test"]) / rng.choice(["pos", "neg"])
        shutil.rmtree(folder)
        if kind == "folder is a file":
            folder.write_text("not a folder")
        else:
            folder.mkdir()
        return Case("misshape", kind, folder)
    review = _review(rng, root)
    review.unlink()
    if kind == "review is a folder":
        review.mkdir()
    else:
        review.symlink_to(root / "gone.txt")
    return Case("misshape", kind, review)


def text_file(mutate: Mutation) -> Mutation:
    def apply(rng: random.Random, root: Path) -> Case:
        return mutate(rng, _review(rng, root))

    return apply


def text_mislabel(rng: random.Random, root: Path) -> Case:
    """A review in a label folder the release does not have (ignored: harmless)."""
    folder = root / "train" / rng.choice(["neutral", "Pos", "3"])
    folder.mkdir()
    (folder / "0_5.txt").write_text("Average.")
    return Case("mislabel", "extra label folder", folder)


# --- the per-task tables ---------------------------------------------------------------------


def _tsv_file(name: str, mutate: Mutation) -> Mutation:
    files = {
        "listops": [f"basic_{s}.tsv" for s in ("train", "val", "test")],
        "retrieval": [f"new_aan_pairs.{s}.tsv" for s in ("train", "eval", "test")],
    }[name]

    def apply(rng: random.Random, root: Path) -> Case:
        return mutate(rng, root / rng.choice(files))

    return apply


def _cifar_file(mutate: Mutation) -> Mutation:
    def apply(rng: random.Random, root: Path) -> Case:
        return mutate(
            rng, root / rng.choice([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"])
        )

    return apply


MUTATIONS: dict[str, dict[str, list[Mutation]]] = {
    "listops": {
        "truncate": [_tsv_file("listops", truncate)],
        "corrupt": [_tsv_file("listops", corrupt_bytes), _tsv_file("listops", make_other_thing)],
        "mislabel": [_tsv_file("listops", tsv_mislabel(1))],
        "misshape": [_tsv_file("listops", tsv_misshape)],
    },
    "retrieval": {
        "truncate": [_tsv_file("retrieval", truncate)],
        "corrupt": [
            _tsv_file("retrieval", corrupt_bytes),
            _tsv_file("retrieval", make_other_thing),
        ],
        "mislabel": [_tsv_file("retrieval", tsv_mislabel(0))],
        "misshape": [_tsv_file("retrieval", tsv_misshape)],
    },
    "text": {
        "truncate": [text_file(truncate)],
        "corrupt": [text_file(corrupt_bytes), text_file(make_other_thing)],
        "mislabel": [text_mislabel],
        "misshape": [text_misshape],
    },
    "image": {
        "truncate": [_cifar_file(truncate)],
        "corrupt": [_cifar_file(corrupt_bytes), _cifar_file(make_other_thing)],
        "mislabel": [_cifar_file(cifar_mislabel)],
        "misshape": [_cifar_file(cifar_misshape)],
    },
    "pathfinder": {
        "truncate": [pathfinder_file(truncate, "meta"), pathfinder_file(truncate, "image")],
        "corrupt": [
            pathfinder_file(corrupt_bytes, "meta"),
            pathfinder_file(corrupt_bytes, "image"),
            pathfinder_file(make_other_thing, "meta"),
            pathfinder_file(make_other_thing, "image"),
        ],
        "mislabel": [pathfinder_mislabel],
        "misshape": [pathfinder_misshape],
    },
}


def cache_state(cache: Path) -> str:
    """'none', 'complete' (entries each with meta.json) or 'partial' (a temporary or torn one)."""
    if not cache.exists():
        return "none"
    entries = list(cache.iterdir())
    if any(e.name.startswith(".") or not (e / "meta.json").is_file() for e in entries):
        return "partial"
    return "complete" if entries else "none"


@dataclass
class Outcome:
    case: Case
    kind: str  # error / loaded / unclear / traceback
    message: str
    cache: str


def run_case(name: str, category: str, seed: int, template: Path, workdir: Path) -> Outcome:
    """Copy the fixture `template` of task `name`, apply a mutation of `category`, build."""
    rng = random.Random(f"{name}/{category}/{seed}")
    shutil.rmtree(workdir, ignore_errors=True)
    root = workdir / "data" / template.name
    shutil.copytree(template, root, symlinks=True)
    case = rng.choice(MUTATIONS[name][category])(rng, root)
    cache = workdir / "cache"
    try:
        tasks.build(name, data_dir=str(root), cache_dir=str(cache))
    except UserError as error:
        message = str(error)
        named = str(case.file) in message and "\n" not in message
        kind = "error" if named else "unclear"
    except Exception as error:  # what the fuzzer counts
        kind, message = "traceback", f"{type(error).__name__}: {error}"
    else:
        kind, message = "loaded", ""
    return Outcome(case, kind, message, cache_state(cache))


def write_template(name: str, folder: Path) -> Path:
    """The valid fixture of task `name` under `folder` (written once, copied per case)."""
    return fx.WRITERS[name](folder / name)


def run_cases(names, n_per_category: int, workdir: Path, first_seed: int = 0):
    """(Counter of (task, category, kind), outcomes that failed the contract)."""
    counts: Counter = Counter()
    failures: list[tuple[str, Outcome]] = []
    for name in names:
        template = write_template(name, workdir / "templates")
        for category in CATEGORIES:
            for seed in range(first_seed, first_seed + n_per_category):
                outcome = run_case(name, category, seed, template, workdir / "case")
                counts[(name, category, outcome.kind)] += 1
                bad_cache = outcome.cache == "partial" or (
                    outcome.kind != "loaded" and outcome.cache != "none"
                )
                if outcome.kind in ("traceback", "unclear") or bad_cache:
                    failures.append((name, outcome))
    return counts, failures
