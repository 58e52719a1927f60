"""LRA Pathfinder and Path-X: are the two dots joined by a dashed path? Pixel sequences, 2 classes.

Layout (`task.data_dir` points at `pathfinder32/` or, for Path-X, `pathfinder128/`, or at a
folder holding it, such as the release's `lra_release/` or the folder it was unpacked in):

    pathfinder32/<difficulty>/imgs/<k>/sample_<i>.png     grayscale resolution x resolution
    pathfinder32/<difficulty>/metadata/<k>.npy            text, one line per image

with difficulty one of `DIFFICULTIES`. Each metadata line (despite the .npy suffix, plain text)
is whitespace-separated: field 0 the image folder (`imgs/<k>`), field 1 the file name,
field 3 the label (1: connected). Metadata files are read in the numeric order of their names.
An image path must resolve (symlinks followed) inside the pathfinder<R>/ folder.

Pixels p in [0, 255] become (p / 255 - mean) / std: mean 0, std 1 gives [0, 1], as the S4
reference's LRA runs (configs/dataset/pathfinder.yaml `center: False`, ToTensor alone); mean
0.5, std 0.5 gives the [-1, 1] of its loader's own default `center: True`. As the reference, the
image is read row-major into a (resolution**2, 1) sequence, and the one set is split into
train / val / test by one seeded permutation (`tasks.arrays.three_way_split`). The release's
one known-empty file (pathfinder32/curv_baseline/imgs/0/sample_172.png, excluded by the
reference too) is skipped with a warning; every other unreadable image is an error.
`load_pathfinder` is also the reader of the generated `pathfinder_gen` images.
"""

import logging
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from common import UserError
from tasks.arrays import ArrayDataset, Normalize, split_lengths, three_way_split
from tasks.base import TASKS, TaskData, TaskInfo
from tasks.cache import load_or_build
from tasks.files import LRA_RELEASE, RELEASE, dataset_folder, inside, parse_label, read_text

log = logging.getLogger(__name__)

N_CLASSES = 2
DIFFICULTIES = ("curv_baseline", "curv_contour_length_9", "curv_contour_length_14")
KNOWN_EMPTY = {(32, "curv_baseline/imgs/0/sample_172.png")}


def _layout(resolution: int, difficulty: str) -> str:
    return (
        f"pathfinder{resolution}/{difficulty}/imgs/<k>/sample_<i>.png with "
        f"pathfinder{resolution}/{difficulty}/metadata/<k>.npy (text lines "
        f"'imgs/<k> sample_<i>.png <n> <label>')"
    )


def _metadata_files(task: str, root: Path, resolution: int, difficulty: str) -> list[Path]:
    """The metadata files of `difficulty`, in the numeric order of their names."""
    folder = root / difficulty / "metadata"
    files = list(folder.glob("*.npy")) if folder.is_dir() else []
    if not files:
        raise UserError(
            f"task {task!r}: no metadata files {folder}/<k>.npy under task.data_dir={root}; "
            f"expected the layout {_layout(resolution, difficulty)}; get the data from "
            f"{LRA_RELEASE} and point task.data_dir at its pathfinder{resolution}/ directory"
        )
    bad = [p for p in files if not p.stem.isdigit()]
    if bad:
        raise UserError(f"{bad[0]}: metadata files must be named <k>.npy with k an integer")
    return sorted(files, key=lambda p: int(p.stem))


def _named(metadata: list[Path]) -> str:
    """The metadata file, or its folder's `<k>.npy` when there are several, for a message."""
    if len(metadata) == 1:
        return str(metadata[0])
    return f"{metadata[0].parent}/<k>.npy ({len(metadata)} files)"


def read_pathfinder_metadata(
    task: str, root: Path, resolution: int, difficulty: str
) -> tuple[list[Path], np.ndarray, list[Path]]:
    """(image paths, labels (n,) int64, metadata files) listed under `root/difficulty`."""
    metadata = _metadata_files(task, root, resolution, difficulty)
    images: list[Path] = []
    labels: list[int] = []
    missing: list[str] = []
    for meta in metadata:
        for number, line in enumerate(read_text(meta).splitlines(), start=1):
            row = line.split()
            if len(row) < 4:
                raise UserError(
                    f"{meta}: line {number} has {len(row)} field(s), expected at least 4 "
                    "('imgs/<k> <file> <n> <label>'); the file is malformed"
                )
            relative = f"{difficulty}/{row[0]}/{row[1]}"
            path = inside(root, relative, f"{meta}, line {number}")
            if (
                (resolution, relative) in KNOWN_EMPTY
                and path.is_file()
                and path.stat().st_size == 0
            ):
                log.warning("skipping %s: the release's known-empty image", path)
                continue
            if not path.is_file():
                missing.append(f"{path} (listed in {meta}, line {number})")
            images.append(path)
            labels.append(parse_label(meta, row[3], N_CLASSES, number))
    if not images:
        raise UserError(
            f"{_named(metadata)}: the metadata file(s) list no images; expected "
            f"lines 'imgs/<k> <file> <n> <label>', re-extract {difficulty}/ from {LRA_RELEASE}"
        )
    if missing:
        raise UserError(
            f"{missing[0]}: image missing ({len(missing)} of the {len(images)} listed images "
            f"are); re-extract {difficulty}/imgs/ from {LRA_RELEASE}"
        )
    return images, np.array(labels, dtype=np.int64), metadata


def decode_images(paths: list[Path], resolution: int) -> np.ndarray:
    """Grayscale PNGs -> (n, resolution**2, 1) uint8, row-major pixel sequences."""
    out = np.empty((len(paths), resolution * resolution, 1), dtype=np.uint8)  # (n, L, 1)
    for i, path in enumerate(tqdm(paths, desc="decoding images", unit="img", leave=False)):
        pixels = _decode(path, resolution)
        out[i, :, 0] = pixels.reshape(-1)
    return out


def _decode(path: Path, resolution: int) -> np.ndarray:
    """One PNG -> (resolution, resolution) uint8 grayscale; a `UserError` naming `path` if it
    is missing, undecodable, of another size (checked before its pixels are decoded, so a
    decompression bomb is refused unread) or anything else PIL refuses."""
    try:
        with Image.open(path) as image:
            if image.size != (resolution, resolution):
                raise UserError(
                    f"{path}: image is {image.size[0]}x{image.size[1]}, expected "
                    f"{resolution}x{resolution}; is task.resolution={resolution} right?"
                )
            return np.asarray(image.convert("L"))  # (H, W)
    except FileNotFoundError:
        raise UserError(
            f"{path}: image listed in the metadata is missing; re-extract the release"
        ) from None
    except UserError:
        raise
    except Exception as exc:  # a damaged file makes PIL raise almost any type
        reason = " ".join(str(exc).split())[:200]  # one line
        raise UserError(
            f"{path}: cannot decode the PNG ({type(exc).__name__}: {reason}); the file is "
            "corrupt, re-extract it"
        ) from None


def load_pathfinder(
    data_dir: str | Path | None,
    *,
    name: str,
    resolution: int,
    difficulty: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    cache_dir: str | None,
) -> TaskData:
    """Pathfinder at `resolution` from `data_dir` in the release layout (decoded images cached).

    Items: x (resolution**2, 1) float32 normalized pixels, y int64 scalar in {0, 1}.
    """
    if difficulty not in DIFFICULTIES:
        raise UserError(f"task.difficulty={difficulty!r} is not one of {list(DIFFICULTIES)}")
    layout = _layout(resolution, difficulty)
    folder = f"pathfinder{resolution}"
    root = dataset_folder(name, data_dir, folder, DIFFICULTIES, layout, LRA_RELEASE, RELEASE)
    images, labels, metadata = read_pathfinder_metadata(name, root, resolution, difficulty)
    listed_in = f"{_named(metadata)} (listing {len(images)} images)"
    split_lengths(len(images), val_fraction, test_fraction, listed_in)  # before decoding
    config = {"resolution": resolution, "difficulty": difficulty}

    def build() -> dict[str, np.ndarray]:
        return {"x": decode_images(images, resolution), "y": labels}

    arrays = load_or_build(name, config, [*metadata, *images], build, cache_dir)
    index = three_way_split(len(arrays["y"]), val_fraction, test_fraction, seed)
    normalize = Normalize(list(mean), list(std))
    train, val, test = (ArrayDataset(arrays["x"], arrays["y"], i, normalize) for i in index)
    info = TaskInfo(
        name=name,
        input_kind="real",
        d_input=1,
        d_output=N_CLASSES,
        seq_len=resolution * resolution,
        pooling="mean",
    )
    return TaskData(train=train, val=val, test=test, info=info)


def _register_release(name: str, resolution: int, summary: str) -> None:
    """Register task `name`: the release's images at `resolution` (the two LRA tasks differ in
    that default alone), read by `load_pathfinder`."""

    def recipe(
        data_dir: str | None = None,
        cache_dir: str | None = None,
        resolution: int = resolution,
        difficulty: str = "curv_contour_length_14",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 42,
        mean: tuple[float, ...] = (0.0,),
        std: tuple[float, ...] = (1.0,),
    ) -> TaskData:
        options = {k: v for k, v in locals().items() if k != "name"}  # the arguments
        return load_pathfinder(name=name, **options)

    recipe.__name__ = recipe.__qualname__ = name
    recipe.__doc__ = summary
    TASKS.register(name)(recipe)


_register_release(
    "pathfinder", 32, "LRA Pathfinder (32 x 32, sequences of 1024 pixels) from pathfinder32/."
)
_register_release(
    "pathx", 128, "LRA Path-X (128 x 128, sequences of 16384 pixels) from pathfinder128/."
)
