"""Pathfinder-style images generated offline in the LRA release layout, read by `pathfinder`.

An image (resolution R x R, black background) holds two long dashed contours of
`contour_length` dashes, `n_distractors` short ones of `distractor_length` dashes, and two
markers (filled discs of radius `marker_radius`). Positive (label 1): the markers sit on both
ends of the first long contour. Negative (label 0): one marker sits on an end of each long
contour. Both classes thus show the same kinds of objects; only the connection differs.

A contour is a curve traced in unit steps from a random point and heading; its heading turns by
U(-max_turn, max_turn) degrees at the start of every dash. Steps alternate between `dash_length`
drawn samples and `gap_length` skipped ones; a drawn sample lights the pixel floor(position).
Dashes are drawn at `dash_intensity`, markers at `marker_intensity` (over the dash pixels).

Connectivity, the rule the labels obey (and the tests check): binarize (pixel > 0), dilate
with a 3x3 square `link_radius = max(1, ceil(gap_length / 2))` times, label the 8-connected
components; the image is positive iff both markers lie in one component. It holds because
- consecutive samples are one unit apart, so lit pixels of a dash are 8-connected, and the last
  pixel of a dash and the first of the next are at most gap_length + 1 <= 2 link_radius + 1
  apart (Chebyshev distance), which the dilation bridges;
- the pixels of different contours (a long contour's end discs included) are kept at least
  `clearance = 2 link_radius + 2` apart (by rejection), which the dilation cannot bridge;
- each marker disc is centred on a lit end pixel of its contour.
Markers are at least `min_marker_distance` pixels apart (Euclidean, centre to centre).

Layout written (what `tasks.pathfinder.load_pathfinder` reads): pathfinder<R>/
curv_contour_length_14/imgs/<k>/sample_<i>.png (k = i // 1000) and metadata/<k>.npy text lines
`imgs/<k> sample_<i>.png <i> <label>`. Labels are exactly balanced (n even) and shuffled.
LRA's pathfinder32 used 14 dashes of 2 pixels with 1-pixel gaps, marker radius 1.5, 20 // 4
distractors of 14 // 3 dashes; at 128 pixels (Path-X) marker radius 3, dash margins 2-3 pixels.
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from common import UserError
from tasks.arrays import split_lengths
from tasks.base import TASKS, TaskData
from tasks.generated import generated_release
from tasks.pathfinder import DIFFICULTIES, load_pathfinder

log = logging.getLogger(__name__)

DIFFICULTY = DIFFICULTIES[-1]  # the folder the `pathfinder` loader reads by default
IMAGES_PER_FOLDER = 1000  # imgs/<k>/ holds images k * 1000 .. k * 1000 + 999, as the release


@dataclass(frozen=True)
class Geometry:
    """What an image looks like; lengths in pixels (see the module docstring)."""

    resolution: int
    contour_length: int
    distractor_length: int
    n_distractors: int
    dash_length: int
    gap_length: int
    max_turn: float
    marker_radius: float
    min_marker_distance: float
    dash_intensity: int
    marker_intensity: int

    @property
    def link_radius(self) -> int:
        """Dilations (3x3) that join the dashes of one contour."""
        return max(1, math.ceil(self.gap_length / 2))

    @property
    def clearance(self) -> int:
        """Least Chebyshev distance between pixels of different contours."""
        return 2 * self.link_radius + 2

    @property
    def border(self) -> int:
        """Pixels kept free at the image border, so that marker discs fit."""
        return math.ceil(self.marker_radius)


def disc_offsets(radius: float) -> np.ndarray:
    """(k, 2) integer offsets (dy, dx) with dy^2 + dx^2 <= radius^2: a filled disc."""
    r = math.ceil(radius)
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]  # (2r + 1, 2r + 1) each
    inside = dy**2 + dx**2 <= radius**2
    return np.stack([dy[inside], dx[inside]], axis=1)


def trace_contours(
    rng: np.random.Generator, g: Geometry, n_dashes: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """`count` random contours: lit pixels (count, k, 2) (row, col) in drawing order, and a mask
    (count,) of those that stay inside the frame (`border` pixels from the edge).

    Position p_0 is uniform in the frame; p_(j+1) = p_j + (sin h, cos h) with h the heading of
    dash j // (dash_length + gap_length); position j is lit when j mod (dash_length +
    gap_length) < dash_length. Rows 0 and k - 1 are the contour's two ends (both lit).
    """
    low, high = g.border, g.resolution - g.border  # allowed pixel rows / cols: [low, high)
    start = rng.uniform(low, high, size=(count, 1, 2))  # (count, 1, 2) continuous (row, col)
    turns = np.radians(rng.uniform(-g.max_turn, g.max_turn, size=(count, n_dashes - 1)))
    first = rng.uniform(0.0, 2.0 * np.pi, size=(count, 1))  # (count, 1)
    headings = first + np.concatenate([np.zeros((count, 1)), np.cumsum(turns, axis=1)], axis=1)
    period = g.dash_length + g.gap_length
    step_heading = np.repeat(headings, period, axis=1)[:, :-1]  # (count, n_steps - 1)
    steps = np.stack([np.sin(step_heading), np.cos(step_heading)], axis=-1)  # (count, n - 1, 2)
    walk = np.concatenate([np.zeros((count, 1, 2)), np.cumsum(steps, axis=1)], axis=1)
    positions = start + walk  # (count, n_steps, 2)
    lit = positions[:, np.arange(positions.shape[1]) % period < g.dash_length]  # (count, k, 2)
    pixels = np.floor(lit).astype(np.int64)
    inside = (pixels.min(axis=(1, 2)) >= low) & (pixels.max(axis=(1, 2)) < high)  # (count,)
    return pixels, inside


def contour_body(pixels: np.ndarray, disc: np.ndarray, with_ends: bool) -> np.ndarray:
    """The pixels a contour occupies: its lit pixels (..., k, 2), plus discs at both ends."""
    if not with_ends:
        return pixels
    ends = [pixels[..., end, None, :] + disc for end in (0, -1)]  # each (..., |disc|, 2)
    return np.concatenate([pixels, *ends], axis=-2)


def place_contour(
    rng: np.random.Generator, g: Geometry, n_dashes: int, forbidden: np.ndarray, with_ends: bool
) -> np.ndarray | None:
    """A contour none of whose pixels (and end discs, if `with_ends`) is `forbidden`; or None.

    Draws `resolution` candidates at once and keeps the first that fits (rejection).
    """
    pixels, inside = trace_contours(rng, g, n_dashes, g.resolution)  # (count, k, 2), (count,)
    body = contour_body(pixels, disc_offsets(g.marker_radius), with_ends)  # (count, k', 2)
    body = np.clip(body, 0, g.resolution - 1)  # indexable; candidates outside fail `inside`
    fits = inside & ~forbidden[body[..., 0], body[..., 1]].any(axis=1)  # (count,)
    return pixels[np.argmax(fits)] if fits.any() else None


def marker_pair(
    rng: np.random.Generator, g: Geometry, first: np.ndarray, second: np.ndarray, connected: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Marker centres: both ends of `first` (connected), or one end of each long contour."""
    if connected:
        pairs = [(first[0], first[-1])]
    else:
        pairs = [(a, b) for a in (first[0], first[-1]) for b in (second[0], second[-1])]
    far = [p for p in pairs if np.hypot(*(p[0] - p[1]).astype(float)) >= g.min_marker_distance]
    return far[int(rng.integers(len(far)))] if far else None


def try_image(rng: np.random.Generator, g: Geometry, connected: bool) -> np.ndarray | None:
    """One image (R, R) uint8 with the given label, or None when a contour could not be placed."""
    size = g.resolution
    forbidden = np.zeros((size, size), dtype=bool)  # pixels closer than clearance to a contour
    image = np.zeros((size, size), dtype=np.uint8)  # (R, R)
    disc = disc_offsets(g.marker_radius)
    long_contours = []
    lengths = [g.contour_length] * 2 + [g.distractor_length] * g.n_distractors
    for k, n_dashes in enumerate(lengths):
        pixels = place_contour(rng, g, n_dashes, forbidden, with_ends=k < 2)
        if pixels is None:
            return None
        body = contour_body(pixels, disc, with_ends=k < 2)
        mask = np.zeros_like(forbidden)
        mask[body[:, 0], body[:, 1]] = True
        forbidden |= ndimage.maximum_filter(mask, size=2 * g.clearance - 1)
        image[pixels[:, 0], pixels[:, 1]] = g.dash_intensity
        if k < 2:
            long_contours.append(pixels)
    markers = marker_pair(rng, g, *long_contours, connected)
    if markers is None:
        return None
    for centre in markers:
        dots = centre + disc  # (k, 2)
        image[dots[:, 0], dots[:, 1]] = g.marker_intensity
    return image


def draw_image(
    rng: np.random.Generator, g: Geometry, connected: bool, max_tries: int
) -> np.ndarray:
    """An image with the given label; a `UserError` if `max_tries` attempts all fail."""
    for _ in range(max_tries):
        image = try_image(rng, g, connected)
        if image is not None:
            return image
    raise UserError(
        f"pathfinder_gen: could not fit {2 + g.n_distractors} contours into {g.resolution}x"
        f"{g.resolution} pixels in {max_tries} attempts; lower task.contour_length, "
        "task.distractor_length or task.n_distractors, or raise task.resolution"
    )


def write_release(root: Path, g: Geometry, n_images: int, seed: int, max_tries: int) -> np.ndarray:
    """Write `root/pathfinder<R>/curv_contour_length_14/{imgs,metadata}`; return the labels (n,)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_images) % 2)  # (n,) exactly balanced for even n
    base = root / f"pathfinder{g.resolution}" / DIFFICULTY
    lines: dict[int, list[str]] = {}
    for i, label in enumerate(tqdm(labels, desc="generating Pathfinder", unit="img", leave=False)):
        folder = i // IMAGES_PER_FOLDER
        image = draw_image(rng, g, bool(label), max_tries)
        (base / "imgs" / str(folder)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(base / "imgs" / str(folder) / f"sample_{i}.png")
        lines.setdefault(folder, []).append(f"imgs/{folder} sample_{i}.png {i} {label}")
    (base / "metadata").mkdir(parents=True, exist_ok=True)
    for folder, rows in lines.items():
        (base / "metadata" / f"{folder}.npy").write_text("\n".join(rows) + "\n")
    return labels


@TASKS.register("pathfinder_gen")
def pathfinder_gen(
    cache_dir: str | None = None,
    seed: int = 0,
    n_images: int = 2000,
    resolution: int = 32,
    contour_length: int = 8,
    distractor_length: int = 3,
    n_distractors: int = 3,
    dash_length: int = 2,
    gap_length: int = 1,
    max_turn: float = 30.0,
    marker_radius: float = 1.5,
    min_marker_distance: float = 7.0,
    dash_intensity: int = 200,
    marker_intensity: int = 255,
    max_tries: int = 1000,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
) -> TaskData:
    """Generated Pathfinder (module docstring), read back by the `pathfinder` loader.

    seed: the generator and the train/val/test permutation. Items as `pathfinder`:
    x (resolution**2, 1) float32 normalized pixels, y int64 in {0, 1}.
    """
    if n_images < 2:
        raise UserError(f"task.n_images={n_images}; give at least 2 (one per label)")
    split_lengths(n_images, val_fraction, test_fraction)  # no empty split, before generating
    if not 0 < dash_intensity < marker_intensity <= 255:
        raise UserError(
            f"task.dash_intensity={dash_intensity}, task.marker_intensity={marker_intensity}: "
            "need 0 < dash_intensity < marker_intensity <= 255 (markers are told apart by it)"
        )
    if min(contour_length, distractor_length, dash_length) < 1 or gap_length < 0:
        raise UserError(
            "task.contour_length, task.distractor_length and task.dash_length must be >= 1 "
            "and task.gap_length >= 0"
        )
    geometry = Geometry(
        resolution=resolution,
        contour_length=contour_length,
        distractor_length=distractor_length,
        n_distractors=n_distractors,
        dash_length=dash_length,
        gap_length=gap_length,
        max_turn=max_turn,
        marker_radius=marker_radius,
        min_marker_distance=min_marker_distance,
        dash_intensity=dash_intensity,
        marker_intensity=marker_intensity,
    )
    config = {**vars(geometry), "seed": seed, "n_images": n_images}

    def write(root: Path) -> None:
        labels = write_release(root, geometry, n_images, seed, max_tries)
        log.info("pathfinder_gen: %d images, %d connected", len(labels), int(labels.sum()))

    root = generated_release("pathfinder_gen", config, write, cache_dir)
    return load_pathfinder(
        root / f"pathfinder{resolution}",
        name="pathfinder_gen",
        resolution=resolution,
        difficulty=DIFFICULTY,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        mean=mean,
        std=std,
        cache_dir=cache_dir,
    )
