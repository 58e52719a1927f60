"""The offline tasks: generated ListOps and Pathfinder, noise-padded digits, the memory tasks.

Every expected value is recomputed here independently of the generators: a small ListOps parser
and evaluator, connected components of the drawn image (scipy.ndimage), block repetition and
torch's `random_split` for digits, and direct index arithmetic for the memory tasks.
"""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage, stats
from sklearn.datasets import load_digits
from torch.utils.data import random_split

import tasks
from common import UserError
from harness.bench import data as bench_data
from tasks import listops_gen as lg
from tasks.digits import upscale
from tasks.generated import generated_release

# ---------------------------------------------------------------------------------------------
# generated release directories


def test_generated_release_writes_once_per_config(tmp_path):
    calls = []

    def write(root: Path) -> None:
        calls.append(root)
        (root / "data.txt").write_text("generated")

    first = generated_release("demo", {"seed": 1}, write, str(tmp_path))
    again = generated_release("demo", {"seed": 1}, write, str(tmp_path))
    other = generated_release("demo", {"seed": 2}, write, str(tmp_path))
    assert first == again != other and len(calls) == 2
    assert (first / "data.txt").read_text() == "generated"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other.name])


def test_generated_release_leaves_nothing_behind_when_writing_fails(tmp_path):
    def write(root: Path) -> None:
        (root / "partial.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        generated_release("demo", {"seed": 1}, write, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# ListOps


def evaluate_listops(source: str) -> tuple[int, int, int, list[int]]:
    """Parse and evaluate one LRA Source string with a stack, independently of the generator.

    Returns (value, tokens without parentheses, deepest operator nesting, argument counts).
    Asserts the text is well formed: balanced parentheses, every operator closed by "]".
    """
    frames: list[tuple[str, list[int]]] = []
    result, n_tokens, deepest, arg_counts, open_parens = None, 0, 0, [], 0
    for token in source.split():
        if token == "(":
            open_parens += 1
            continue
        if token == ")":
            open_parens -= 1
            assert open_parens >= 0, source
            continue
        n_tokens += 1
        if token.startswith("["):
            frames.append((token, []))
            deepest = max(deepest, len(frames))
            continue
        if token == "]":
            op, args = frames.pop()
            arg_counts.append(len(args))
            ordered = sorted(args)
            mid = len(ordered) // 2
            value = {
                "[MAX": ordered[-1],
                "[MIN": ordered[0],
                "[MED": ordered[mid]
                if len(ordered) % 2
                else (ordered[mid - 1] + ordered[mid]) // 2,
                "[SM": sum(ordered) % 10,
            }[op]
        else:
            value = int(token)
            assert 0 <= value <= 9
        if frames:
            frames[-1][1].append(value)
        else:
            assert result is None, f"two top-level expressions in {source}"
            result = value
    assert open_parens == 0 and not frames and result is not None, source
    return result, n_tokens, deepest, arg_counts


def test_evaluator_on_hand_computed_expressions():
    assert evaluate_listops("( ( ( [MAX 2 ) 9 ) ] )")[0] == 9
    assert evaluate_listops("( ( ( ( ( [MED 1 ) 8 ) 3 ) 4 ) ] )")[0] == 3  # (3 + 4) // 2
    assert evaluate_listops("( ( ( ( [SM 9 ) 9 ) 5 ) ] )")[0] == 3
    nested = "( ( ( [MIN ( ( ( [MAX 1 ) 7 ) ] ) ) 3 ) ] )"
    assert evaluate_listops(nested) == (3, 7, 2, [2, 2])


def test_generated_expressions_follow_the_lra_rules():
    rng = np.random.default_rng(1)
    expressions = lg.generate_expressions(
        rng, 150, min_length=20, max_length=120, max_depth=4, max_args=5, operator_p=0.25
    )
    assert len({e.source for e in expressions}) == 150
    operators = set()
    for e in expressions:
        value, n_tokens, deepest, arg_counts = evaluate_listops(e.source)
        assert value == e.value
        assert 20 < n_tokens < 120 and n_tokens == e.length
        assert deepest <= 3  # operators only above max_depth = 4
        assert all(2 <= n <= 5 for n in arg_counts)
        operators |= {t for t in e.source.split() if t.startswith("[")}
    assert operators == {"[MAX", "[MIN", "[MED", "[SM"}


def test_expression_statistics_match_the_expressions():
    expressions = [lg.Expression("x", 3, 10), lg.Expression("y", 3, 20), lg.Expression("z", 7, 60)]
    summary = lg.expression_statistics(expressions)
    assert summary["label_fraction"][3] == pytest.approx(2 / 3)
    assert summary["label_fraction"][7] == pytest.approx(1 / 3)
    assert sum(summary["label_fraction"].values()) == pytest.approx(1.0)
    assert (summary["length_min"], summary["length_mean"], summary["length_max"]) == (10, 30, 60)


def test_longest_expression_is_the_full_tree():
    assert lg.longest_expression(1, 10) == 1
    assert lg.longest_expression(2, 3) == 2 + 3  # one operator over 3 digits
    assert lg.longest_expression(3, 2) == 2 + 2 * (2 + 2)


LISTOPS_SMALL = {"n_train": 12, "n_val": 4, "n_test": 4, "min_length": 30, "max_length": 90}


def release_rows(cache: Path, task: str, pattern: str) -> dict[str, list[list[str]]]:
    """The rows of each generated `basic_<split>.tsv` (header dropped) under cache."""
    (root,) = cache.glob(f"{task}-release-*")
    rows = {}
    for split in ("train", "val", "test"):
        with open(root / pattern.format(split=split), newline="") as f:
            header, *rows[split] = list(csv.reader(f, delimiter="\t"))
        assert header == ["Source", "Target"]
    return rows


def test_listops_gen_files_evaluate_to_their_labels_and_load(tmp_path):
    data = tasks.build("listops_gen", cache_dir=str(tmp_path), seq_len=96, **LISTOPS_SMALL)
    rows = release_rows(tmp_path, "listops_gen", "basic_{split}.tsv")
    assert [len(rows[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    sources = [r[0] for split in rows.values() for r in split]
    assert len(set(sources)) == 20  # distinct, so the splits are disjoint
    for split, dataset in (("train", data.train), ("val", data.val), ("test", data.test)):
        for (source, target), (x, y) in zip(rows[split], dataset, strict=True):
            value, n_tokens, _, _ = evaluate_listops(source)
            assert value == int(target) == int(y)
            assert 30 < n_tokens < 90
            assert int((x != data.info.pad_id).sum()) == n_tokens + 1  # tokens and <eos>


def test_listops_gen_is_deterministic_by_seed(tmp_path):
    small = {**LISTOPS_SMALL, "min_length": 5, "max_length": 40}

    def sources(seed: int, where: str) -> list[str]:
        tasks.build("listops_gen", cache_dir=str(tmp_path / where), seed=seed, **small)
        rows = release_rows(tmp_path / where, "listops_gen", "basic_{split}.tsv")
        return [r[0] for r in rows["train"]]

    assert sources(3, "a") == sources(3, "b")
    assert sources(3, "a") != sources(4, "c")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seq_len": 100}, r"task.seq_len=100 would truncate.*>= 500"),
        ({"min_length": 499}, r"no expression has a length strictly between"),
        ({"max_depth": 2, "max_args": 3}, r"longest .* has 5 tokens"),
    ],
)
def test_listops_gen_rejects_impossible_options(overrides, message, tmp_path):
    with pytest.raises(UserError, match=message):
        tasks.build("listops_gen", cache_dir=str(tmp_path), **overrides)


# ---------------------------------------------------------------------------------------------
# Pathfinder


def dots_connected(image: np.ndarray, marker_intensity: int, link_radius: int) -> bool:
    """The stated rule: binarize, dilate (3x3) link_radius times, 8-connected components."""
    square = np.ones((3, 3), dtype=bool)
    joined = ndimage.binary_dilation(image > 0, structure=square, iterations=link_radius)
    components, _ = ndimage.label(joined, structure=square)
    marker_components = set(components[image == marker_intensity].tolist())
    assert 0 not in marker_components
    # every marker sits on a drawn contour: its component also holds dash pixels
    dashes = (image > 0) & (image != marker_intensity)
    assert all(dashes[components == c].any() for c in marker_components)
    return len(marker_components) == 1


def generated_images(cache: Path, resolution: int) -> list[tuple[np.ndarray, int]]:
    """(pixels, label) of every image listed in the generated metadata, read with PIL."""
    (root,) = cache.glob("pathfinder_gen-release-*")
    base = root / f"pathfinder{resolution}" / "curv_contour_length_14"
    items = []
    for meta in sorted((base / "metadata").glob("*.npy")):
        for line in meta.read_text().splitlines():
            folder, name, _, label = line.split()
            items.append((np.asarray(Image.open(base / folder / name)), int(label)))
    return items


PATHFINDER_SMALL = {"n_images": 60}


def test_pathfinder_gen_labels_match_connectivity_and_are_balanced(tmp_path):
    data = tasks.build("pathfinder_gen", cache_dir=str(tmp_path), **PATHFINDER_SMALL)
    items = generated_images(tmp_path, 32)
    labels = np.array([label for _, label in items])
    assert len(items) == 60 and labels.sum() == 30
    for image, label in items:
        assert image.shape == (32, 32) and image.dtype == np.uint8
        assert set(np.unique(image).tolist()) == {0, 200, 255}
        assert dots_connected(image, 255, link_radius=1) == bool(label)
        raw, _ = ndimage.label(image > 0, structure=np.ones((3, 3)))
        assert raw.max() > 2  # the contours are dashed: far more pieces than contours
    loaded = [int(y) for split in (data.train, data.val, data.test) for _, y in split]
    assert sorted(loaded) == sorted(labels.tolist())


def test_pathx_like_images_follow_the_same_rule(tmp_path):
    geometry = {
        "resolution": 128,
        "contour_length": 14,
        "distractor_length": 4,
        "n_distractors": 5,
        "dash_length": 5,
        "gap_length": 3,  # link radius 2
        "marker_radius": 3.0,
        "min_marker_distance": 20.0,
    }
    splits = {"val_fraction": 0.25, "test_fraction": 0.25}  # one image each of 6
    data = tasks.build("pathfinder_gen", cache_dir=str(tmp_path), n_images=6, **geometry, **splits)
    assert data.info.seq_len == 128 * 128
    for image, label in generated_images(tmp_path, 128):
        assert dots_connected(image, 255, link_radius=2) == bool(label)


def test_pathfinder_gen_is_deterministic_by_seed(tmp_path):
    def pixels(seed: int, where: str) -> np.ndarray:
        splits = {"val_fraction": 0.25, "test_fraction": 0.25}  # one image each of 4
        tasks.build(
            "pathfinder_gen", cache_dir=str(tmp_path / where), seed=seed, n_images=4, **splits
        )
        return np.stack([image for image, _ in generated_images(tmp_path / where, 32)])

    assert np.array_equal(pixels(5, "a"), pixels(5, "b"))
    assert not np.array_equal(pixels(5, "a"), pixels(6, "c"))


def test_pathfinder_gen_reports_contours_that_cannot_fit(tmp_path):
    with pytest.raises(UserError, match=r"could not fit 5 contours into 12x12.*task.resolution"):
        tasks.build("pathfinder_gen", cache_dir=str(tmp_path), resolution=12, n_images=3,
                    max_tries=2, val_fraction=0.34, test_fraction=0.34)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# digits_noise


def digit_splits(seed: int) -> list[list[int]]:
    """Train / val / test rows as torch's random_split makes them (the S4 split rule)."""
    n = 1797
    lengths = [n - 2 * int(0.1 * n), int(0.1 * n), int(0.1 * n)]
    parts = random_split(range(n), lengths, generator=torch.Generator().manual_seed(seed))
    return [list(part) for part in parts]


def test_digits_noise_image_part_is_the_unpadded_sequence():
    data = tasks.build("digits_noise", seed=2, noise_len=64)
    digits = load_digits()
    info = data.info
    assert (info.seq_len, info.pool_start, info.pooling, info.d_output) == (1088, 1024, "mean", 10)
    for dataset, rows in zip((data.train, data.val, data.test), digit_splits(2), strict=True):
        assert len(dataset) == len(rows)
        for i in (0, len(rows) - 1):
            x, y = dataset[i]
            large = np.kron(digits.images[rows[i]], np.ones((4, 4)))  # 8x8 -> 32x32 blocks
            expected = (large.reshape(-1) / 16.0 - 0.305) / 0.376
            assert x.shape == (1088, 1) and x.dtype == torch.float32
            np.testing.assert_allclose(x[:1024, 0].numpy(), expected, rtol=1e-6, atol=1e-6)
            assert int(y) == digits.target[rows[i]]


def test_digits_noise_pad_is_uniform_noise_of_the_configured_length():
    data = tasks.build("digits_noise", noise_len=300)
    pad = torch.cat([data.train[i][0][1024:, 0] for i in range(20)])  # (20 * 300,)
    assert pad.numel() == 20 * 300
    assert float(pad.min()) >= 0.0 and float(pad.max()) < 1.0
    assert stats.kstest(pad.numpy(), "uniform").pvalue > 1e-3
    assert not torch.equal(data.train[0][0][1024:], data.train[1][0][1024:])
    again = tasks.build("digits_noise", noise_len=300)
    assert torch.equal(again.train[3][0], data.train[3][0])


def test_digits_noise_placement_before_pools_over_the_image():
    data = tasks.build("digits_noise", noise_len=50, placement="before")
    plain = tasks.build("digits_noise", noise_len=50)
    assert (data.info.pool_start, data.info.seq_len) == (50, 1074)
    assert torch.equal(data.val[0][0][50:], plain.val[0][0][:1024])


def test_digits_noise_of_length_zero_is_the_plain_task_pooled_over_the_image():
    data = tasks.build("digits_noise", noise_len=0, image_size=8)
    padded = tasks.build("digits_noise", noise_len=5, image_size=8)
    assert (data.info.pool_start, data.info.seq_len, data.info.pooling) == (0, 64, "mean")
    assert torch.equal(data.test[2][0], padded.test[2][0][:64])
    with pytest.raises(UserError, match=r"task.noise_len=-1"):
        tasks.build("digits_noise", noise_len=-1)


def test_digits_upscale_repeats_pixels_into_blocks():
    images = load_digits().images[:3]  # (3, 8, 8)
    for factor in (1, 2, 3, 5):
        expected = np.stack([np.kron(image, np.ones((factor, factor))) for image in images])
        np.testing.assert_array_equal(upscale(images, 8 * factor), expected)


def test_digits_noise_rejects_bad_options():
    with pytest.raises(UserError, match=r"task.image_size=4"):
        tasks.build("digits_noise", image_size=4)
    with pytest.raises(UserError, match=r"task.placement='middle'"):
        tasks.build("digits_noise", placement="middle")


# ---------------------------------------------------------------------------------------------
# memory tasks

MEMORY_SMALL = {"n_train": 64, "n_val": 16, "n_test": 16}


def test_copying_targets_are_the_symbols_after_the_delimiter(tmp_path):
    data = tasks.build(
        "copying", cache_dir=str(tmp_path), n_tokens=5, n_symbols=6, blank_len=20, **MEMORY_SMALL
    )
    info = data.info
    assert (info.seq_len, info.pool_start, info.d_input, info.d_output) == (31, 26, 8, 6)
    assert info.pooling == "none"
    rng = np.random.default_rng(0)
    for i in rng.choice(64, size=10, replace=False):
        x, y = data.train[int(i)]
        assert x.dtype == torch.int64 and y.dtype == torch.int64
        assert y.shape == (info.seq_len - info.pool_start,)
        symbols = x[:5]
        assert bool(((symbols >= 1) & (symbols <= 6)).all())
        assert bool((x[5:25] == 0).all()) and int(x[25]) == 7 and bool((x[26:] == 0).all())
        assert torch.equal(y, symbols - 1)


def test_delay_target_is_the_input_lagged(tmp_path):
    data = tasks.build(
        "delay", cache_dir=str(tmp_path), seq_len=256, lag=40, dt=1 / 256, freq=64.0, **MEMORY_SMALL
    )
    assert (data.info.objective, data.info.pooling, data.info.pool_start) == (
        "regression",
        "none",
        0,
    )
    for i in (0, 17, 63):
        x, y = data.train[i]
        assert x.shape == (256, 1) and y.shape == (256, 1) and y.dtype == torch.float32
        assert float(x[0, 0]) == 0.0  # the signal starts at 0
        assert torch.equal(y[40:], x[:-40]) and bool((y[:40] == 0).all())


def test_delay_signal_is_band_limited_white_noise_of_the_given_rms(tmp_path):
    seq_len, dt, freq, rms = 512, 1 / 512, 100.0, 0.5
    data = tasks.build(
        "delay", cache_dir=str(tmp_path), seq_len=seq_len, lag=10, dt=dt, freq=freq, rms=rms,
        n_train=400, n_val=1, n_test=1,
    )  # fmt: skip
    x = data.train.tensors[0][..., 0].double().numpy()  # (400, L)
    spectrum = np.fft.rfft(x, axis=-1)  # (400, L/2 + 1)
    f = np.fft.rfftfreq(seq_len, d=dt)
    band = (f > 0) & (f <= freq)
    assert np.abs(spectrum[:, f > freq]).max() < 1e-6 * np.abs(spectrum[:, band]).max()
    # each in-band coefficient is complex Gaussian with E|X_k|^2 = rms^2 L^2 / (2 K)
    expected = rms**2 * seq_len**2 / (2 * band.sum())
    assert np.mean(np.abs(spectrum[:, band]) ** 2) == pytest.approx(expected, rel=0.05)


def test_adding_target_is_the_sum_of_the_marked_values(tmp_path):
    data = tasks.build("adding", cache_dir=str(tmp_path), seq_len=50, **MEMORY_SMALL)
    assert (data.info.d_input, data.info.d_output, data.info.pooling) == (2, 1, "last")
    for i in np.random.default_rng(1).choice(64, size=10, replace=False):
        x, y = data.train[int(i)]
        marked = torch.nonzero(x[:, 1]).flatten()
        assert x.shape == (50, 2) and y.shape == (1,)
        assert len(marked) == 2 and int(marked[0]) < 25 <= int(marked[1])
        assert set(x[:, 1].tolist()) == {0.0, 1.0}
        assert float(y[0]) == pytest.approx(float(x[marked, 0].sum()), abs=1e-6)


@pytest.mark.parametrize("name", ["copying", "delay", "adding"])
def test_memory_tasks_are_deterministic_by_seed(name, tmp_path):
    def train_x(seed: int, where: str) -> torch.Tensor:
        data = tasks.build(name, cache_dir=str(tmp_path / where), seed=seed, **MEMORY_SMALL)
        return data.train.tensors[0]

    first = train_x(0, "a")
    assert torch.equal(first, train_x(0, "b"))
    assert not torch.equal(first, train_x(1, "c"))
    data = tasks.build(name, cache_dir=str(tmp_path / "a"), seed=0, **MEMORY_SMALL)
    assert not torch.equal(data.train.tensors[0][:16], data.val.tensors[0])


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("delay", {"lag": 1024}, r"task.lag: 1024 must lie in \[1, seq_len=1024\)"),
        ("delay", {"freq": 600.0}, r"task.freq: 600.0 must lie in"),
        ("copying", {"n_train": 0}, r"task.n_train: 0 items"),
        ("adding", {"seq_len": 1}, r"task.seq_len: 1 steps"),
    ],
)
def test_memory_tasks_reject_bad_options(name, overrides, message, tmp_path):
    with pytest.raises(UserError, match=message):
        tasks.build(name, cache_dir=str(tmp_path), **overrides)


# ---------------------------------------------------------------------------------------------
# loader throughput benchmark


def test_bench_data_prints_a_throughput_row_per_worker_count(tmp_path, capsys):
    options = [f"cache_dir={tmp_path}", "n_train=16", "n_val=2", "n_test=2", "blank_len=5"]
    argv = [
        "--task",
        "copying",
        "--set",
        *options,
        "--batch-size",
        "4",
        "--batches",
        "3",
        "--repeats",
        "2",
    ]
    assert bench_data.main([*argv, "--workers", "0"]) == 0
    table = capsys.readouterr().out.splitlines()
    header, row = table[-2].split(), table[-1].split()
    assert header[-1] == "samples_per_s" and row[:4] == [
        "copying",
        "26",
        "4",
        "0",
    ]  # L = 2 * 10 + 5 + 1
    assert float(row[-1]) > 0


def test_bench_data_reports_user_errors(capsys):
    assert bench_data.main(["--task", "copying", "--set", "blank_len"]) == 2
    assert "must look like KEY=VALUE" in capsys.readouterr().err
    assert bench_data.main(["--task", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
