"""The real-dataset tasks end to end, from fixtures in the published layouts (lra_fixtures.py).

Expected values are computed independently of the loaders: PIL for grayscale and PNG decoding,
`torch.utils.data.random_split` for the splits, the fixture's own rows for tokens and labels.
"""

import io
import logging
import pickle
import re
import shutil
import struct
from pathlib import Path
from typing import ClassVar

import data_fuzz as df
import lra_fixtures as fx
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torch.utils.data import DataLoader, random_split

import tasks
from common import UserError
from tasks.vocab import LISTOPS_TOKENS, listops_tokens

# name -> (input kind, d_input, d_output, seq_len, dual, pool_start, x shape of one item)
EXPECTED = {
    "listops": ("tokens", 17, 10, 2048, False, 0, (2048,)),
    "text": ("tokens", 258, 2, 4096, False, 0, (4096,)),
    "retrieval": ("tokens", 258, 2, 4000, True, 0, (2, 4000)),
    "image": ("real", 1, 10, 1024, False, 0, (1024, 1)),
    "scifar": ("real", 3, 10, 1024, False, 0, (1024, 3)),
    "scifar_noise": ("real", 3, 10, 2048, False, 1024, (2048, 3)),
    "pathfinder": ("real", 1, 2, 1024, False, 0, (1024, 1)),
    "pathx": ("real", 1, 2, 16384, False, 0, (16384, 1)),
}
CIFAR_TRAIN = 5 * fx.CIFAR_TRAIN_PER_BATCH


def build(name: str, tmp_path: Path, **overrides) -> tasks.TaskData:
    """Write the fixture of task `name` under tmp_path and build the task from it."""
    root = fx.WRITERS[name](tmp_path / "data")
    return tasks.build(name, data_dir=str(root), cache_dir=str(tmp_path / "cache"), **overrides)


def fixture_dir(name: str, tmp_path: Path) -> Path:
    return fx.WRITERS[name](tmp_path / "data")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_task_builds_with_declared_shapes_dtypes_and_labels(name, tmp_path):
    data = build(name, tmp_path)
    kind, d_input, d_output, seq_len, dual, pool_start, x_shape = EXPECTED[name]
    info = data.info
    assert (info.name, info.input_kind, info.d_input, info.d_output) == (
        name,
        kind,
        d_input,
        d_output,
    )
    assert (info.seq_len, info.dual, info.pooling, info.pool_start) == (
        seq_len,
        dual,
        "mean",
        pool_start,
    )
    assert info.pad_id == (0 if kind == "tokens" else None)
    for split in (data.train, data.val, data.test):
        assert len(split) > 0
        x, y = next(iter(DataLoader(split, batch_size=len(split))))
        assert x.shape == (len(split), *x_shape)
        assert x.dtype == (torch.int64 if kind == "tokens" else torch.float32)
        assert y.shape == (len(split),) and y.dtype == torch.int64
        assert int(y.min()) >= 0 and int(y.max()) < d_output
        if kind == "tokens":
            assert int(x.min()) >= 0 and int(x.max()) < d_input
        else:
            assert torch.isfinite(x).all()


# --- ListOps -------------------------------------------------------------------------------


def test_listops_tokenizer_follows_the_reference():
    assert listops_tokens("( ( ( [MAX 2 ) 9 ) ] )") == ["[MAX", "2", "9", "X"]
    assert listops_tokens("( [SM ( [MIN 0 ] ) ] )") == ["[SM", "[MIN", "0", "X", "X"]
    assert LISTOPS_TOKENS[:2] == ("<pad>", "<eos>")
    assert set(LISTOPS_TOKENS[2:]) == {*"0123456789", "[MAX", "[MIN", "[MED", "[SM", "X"}


def test_listops_items_are_the_file_rows_with_eos_and_padding(tmp_path):
    data = build("listops", tmp_path)
    for split, dataset in (("train", data.train), ("val", data.val), ("test", data.test)):
        rows = fx.LISTOPS_ROWS[split]
        assert len(dataset) == len(rows)
        for (expression, label), (x, y) in zip(rows, dataset, strict=True):
            expected = listops_tokens(fx.listops_source(expression))
            n = len(expected)
            assert [LISTOPS_TOKENS[i] for i in x[:n]] == expected
            assert LISTOPS_TOKENS[int(x[n])] == "<eos>"
            assert (x[n + 1 :] == 0).all()
            assert int(y) == label


def test_listops_truncates_to_seq_len_keeping_room_for_eos(tmp_path):
    data = build("listops", tmp_path, seq_len=4)
    x, _ = data.train[1]  # [MIN 4 [MAX 1 7 ] 3 ]
    assert [LISTOPS_TOKENS[i] for i in x] == ["[MIN", "4", "[MAX", "<eos>"]
    x, _ = build("listops", tmp_path, seq_len=4, append_eos=False).train[1]
    assert [LISTOPS_TOKENS[i] for i in x] == ["[MIN", "4", "[MAX", "1"]


# --- Text and Retrieval ---------------------------------------------------------------------


def test_text_is_byte_level_with_labels_from_folders_and_a_carved_validation(tmp_path):
    data = build("text", tmp_path, val_fraction=0.1)
    # the loader's row order: the neg folder, then pos, each sorted by file name
    by_folder = {lab: sorted(n for s, f, n, _ in fx.IMDB_REVIEWS if s == "train" and f == lab)
                 for lab in ("neg", "pos")}  # fmt: skip
    texts = {(f, n): t.encode() for s, f, n, t in fx.IMDB_REVIEWS if s == "train"}
    rows = [(texts[(f, n)], int(f == "pos")) for f in ("neg", "pos") for n in by_folder[f]]
    expected_train, expected_val = random_split(
        range(len(rows)), [int(len(rows) * 0.9), len(rows) - int(len(rows) * 0.9)],
        generator=torch.Generator().manual_seed(42),
    )  # fmt: skip
    assert len(data.train) == len(expected_train) and len(data.val) == len(expected_val)
    for dataset, index in ((data.train, expected_train), (data.val, expected_val)):
        for (x, y), row in zip(dataset, index, strict=True):
            text, label = rows[row]
            assert bytes((x[: len(text)] - 2).tolist()) == text
            assert int(x[len(text)]) == 1 and (x[len(text) + 1 :] == 0).all()
            assert int(y) == label
    assert len(data.test) == 2


def test_text_by_default_trains_on_all_of_train_and_validates_on_test(tmp_path):
    """The reference's IMDB `val_split: 0.0`: no carve, the test split doubles as validation."""
    data = build("text", tmp_path)
    n_train = sum(1 for s, *_ in fx.IMDB_REVIEWS if s == "train")
    assert len(data.train) == n_train and sorted(data.train.index) == list(range(n_train))
    assert data.val is data.test and len(data.test) == 2


def loader_batches(dataset, batch_size):
    return list(DataLoader(dataset, batch_size=batch_size, collate_fn=dataset.collate))


@pytest.mark.parametrize("name", ["listops", "text", "retrieval"])
def test_pad_to_batch_pads_each_batch_to_its_longest_sequence(name, tmp_path):
    """pad_to batch (the reference's pad_sequence): a batch ends at the last step some item
    uses, and each item is its seq_len row cut there; pad_to seq_len keeps the full rows."""
    data = build(name, tmp_path)
    full = build(name, tmp_path, pad_to="seq_len")
    seq_len = full.info.seq_len
    for (x, _), (x_full, _) in zip(
        loader_batches(data.train, 2), loader_batches(full.train, 2), strict=True
    ):
        assert x_full.shape[-1] == seq_len
        length = x.shape[-1]
        longest = max(int((row != 0).sum(-1).max()) for row in x_full)  # non-pad tokens
        assert length == longest < seq_len
        assert torch.equal(x, x_full[..., :length]) and (x_full[..., length:] == 0).all()
    with pytest.raises(UserError, match=r"task\.pad_to"):
        build(name, tmp_path, pad_to="longest")


def test_retrieval_holds_both_documents_truncated_per_document(tmp_path):
    data = build("retrieval", tmp_path, seq_len=64)
    for split, dataset in (("train", data.train), ("val", data.val), ("test", data.test)):
        rows = fx.AAN_ROWS["eval" if split == "val" else split]
        assert len(dataset) == len(rows)
        for row, (x, y) in zip(rows, dataset, strict=True):
            assert x.shape == (2, 64) and int(y) == int(float(row[0]))
            for doc, text in enumerate(row[3:]):
                body = text.encode()[:63]
                assert bytes((x[doc, : len(body)] - 2).tolist()) == body
                assert int(x[doc, len(body)]) == 1


# --- CIFAR ----------------------------------------------------------------------------------


def cifar_images(folder: Path, name: str) -> tuple[np.ndarray, list[int]]:
    with open(folder / name, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    return batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), batch[b"labels"]


def test_image_is_pil_grayscale_normalized_like_the_s4_loader(tmp_path):
    data = build("image", tmp_path)
    images, labels = cifar_images(fixture_dir("image", tmp_path), "test_batch")
    for i, (x, y) in enumerate(data.test):
        gray = np.asarray(Image.fromarray(images[i]).convert("L"), dtype=np.float64).reshape(-1)
        expected = (gray / 255.0 - 122.6 / 255.0) / (61.0 / 255.0)
        np.testing.assert_allclose(x[:, 0].numpy(), expected, rtol=0, atol=1e-5)
        assert int(y) == labels[i]


def test_scifar_is_rgb_row_major_per_channel_normalized(tmp_path):
    data = build("scifar", tmp_path)
    images, labels = cifar_images(fixture_dir("scifar", tmp_path), "test_batch")
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.247, 0.243, 0.261])
    for i, (x, y) in enumerate(data.test):
        expected = (images[i].reshape(1024, 3) / 255.0 - mean) / std
        np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-5)
        assert int(y) == labels[i]


def test_cifar_validation_is_carved_from_train_by_the_s4_rule(tmp_path):
    data = build("scifar", tmp_path, val_fraction=0.25, seed=7)
    train_len = int(CIFAR_TRAIN * 0.75)
    expected = random_split(
        range(CIFAR_TRAIN), [train_len, CIFAR_TRAIN - train_len],
        generator=torch.Generator().manual_seed(7),
    )  # fmt: skip
    assert list(data.train.index) == list(expected[0])
    assert list(data.val.index) == list(expected[1])
    assert len(data.test) == fx.CIFAR_TEST


def test_noise_padding_keeps_the_image_and_appends_uniform_noise(tmp_path):
    noisy = build("scifar_noise", tmp_path, noise_len=300)
    hope_stats = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
    plain = build("scifar", tmp_path, **hope_stats)
    assert noisy.info.seq_len == 1324 and noisy.info.pool_start == 1024
    assert noisy.info.pooling == "mean"
    pads = []
    for padded_split, plain_split in ((noisy.train, plain.train), (noisy.test, plain.test)):
        for (x, y), (x0, y0) in zip(padded_split, plain_split, strict=True):
            assert x.shape == (1324, 3)
            torch.testing.assert_close(x[:1024], x0, rtol=0, atol=0)
            assert int(y) == int(y0)
            pads.append(x[1024:].numpy().reshape(-1))
    pads = np.concatenate(pads)
    assert pads.min() >= 0.0 and pads.max() < 1.0
    assert stats.kstest(pads, "uniform").pvalue > 1e-3
    assert not torch.equal(noisy.train[0][0][1024:], noisy.train[1][0][1024:])
    assert not torch.equal(noisy.train[0][0][1024:], noisy.test[0][0][1024:])


def test_noise_is_fixed_per_item_and_seed(tmp_path):
    first = build("scifar_noise", tmp_path, noise_len=16)
    again = build("scifar_noise", tmp_path, noise_len=16)
    torch.testing.assert_close(first.val[0][0], again.val[0][0], rtol=0, atol=0)
    # reading an item again gives the same noise (the HOPE script draws fresh noise per read)
    torch.testing.assert_close(first.val[0][0], first.val[0][0], rtol=0, atol=0)
    other = build("scifar_noise", tmp_path, noise_len=16, seed=3, val_fraction=0.5)
    reseeded = build("scifar", tmp_path, seed=3, val_fraction=0.5, mean=[0.4914, 0.4822, 0.4465],
                     std=[0.2023, 0.1994, 0.2010])  # fmt: skip
    torch.testing.assert_close(other.val[0][0][:1024], reseeded.val[0][0])  # the seed splits too
    assert not torch.equal(other.test[0][0][1024:], first.test[0][0][1024:])


def test_noise_placed_before_pools_over_the_image(tmp_path):
    noisy = build("scifar_noise", tmp_path, noise_len=50, placement="before")
    plain = build("scifar", tmp_path, mean=[0.4914, 0.4822, 0.4465], std=[0.2023, 0.1994, 0.2010])
    assert noisy.info.pool_start == 50 and noisy.info.seq_len == 1074
    x, _ = noisy.test[2]
    torch.testing.assert_close(x[50:], plain.test[2][0], rtol=0, atol=0)
    assert x[:50].min() >= 0 and x[:50].max() < 1


@pytest.mark.parametrize(
    ("overrides", "key"),
    [({"noise_len": -1}, "task.noise_len"), ({"placement": "middle"}, "task.placement")],
)
def test_noise_options_are_checked(tmp_path, overrides, key):
    with pytest.raises(UserError, match=key):
        build("scifar_noise", tmp_path, **overrides)


# --- Pathfinder -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "resolution"), [("pathfinder", 32), ("pathx", 128)])
def test_pathfinder_pixels_labels_and_split(name, resolution, tmp_path):
    data = build(name, tmp_path)
    images = fixture_dir(name, tmp_path) / "curv_contour_length_14" / "imgs" / "0"
    n = 10
    expected = random_split(range(n), [n - 2, 1, 1], generator=torch.Generator().manual_seed(42))
    for dataset, index in zip((data.train, data.val, data.test), expected, strict=True):
        assert list(dataset.index) == list(index)
        for (x, y), item in zip(dataset, index, strict=True):
            pixels = np.asarray(Image.open(images / f"sample_{item}.png"), dtype=np.float64)
            expected_x = pixels.reshape(-1, 1) / 255.0  # [0, 1]: the reference's LRA runs
            np.testing.assert_allclose(x.numpy(), expected_x, rtol=0, atol=1e-6)
            assert int(y) == item % 2
    centered = build(name, tmp_path, mean=[0.5], std=[0.5])
    x, _ = centered.train[0]
    pixels = np.asarray(Image.open(images / f"sample_{centered.train.index[0]}.png"), np.float64)
    np.testing.assert_allclose(x.numpy(), (pixels.reshape(-1, 1) / 255.0 - 0.5) / 0.5, atol=1e-6)


def test_pathfinder_difficulty_selects_the_folder(tmp_path):
    root = fx.write_pathfinder(tmp_path / "data", 32, n=20, difficulty="curv_baseline")
    data = tasks.build("pathfinder", data_dir=str(root), difficulty="curv_baseline",
                       cache_dir=str(tmp_path / "cache"))  # fmt: skip
    assert (len(data.train), len(data.val), len(data.test)) == (16, 2, 2)
    with pytest.raises(UserError, match=r"curv_contour_length_9/metadata"):
        tasks.build("pathfinder", data_dir=str(root), difficulty="curv_contour_length_9",
                    cache_dir=str(tmp_path / "cache"))  # fmt: skip
    with pytest.raises(UserError, match=r"task.difficulty='hard'"):
        tasks.build("pathfinder", data_dir=str(root), difficulty="hard")


# --- Errors a user can cause ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source"),
    [("listops", "lra_release.gz"), ("text", "ai.stanford.edu"), ("retrieval", "lra_release.gz"),
     ("image", "cs.toronto.edu/~kriz/cifar.html"), ("pathx", "lra_release.gz")],
)  # fmt: skip
def test_unset_data_dir_names_the_layout_and_the_source(name, source):
    with pytest.raises(UserError, match=r"task\.data_dir is not set") as error:
        tasks.build(name)
    assert source in str(error.value)


@pytest.mark.parametrize(
    ("name", "remove", "layout", "source"),
    [
        ("listops", "basic_val.tsv", "basic_train.tsv", "lra_release.gz"),
        ("retrieval", "new_aan_pairs.eval.tsv", "new_aan_pairs.{train,eval,test}.tsv",
         "lra_release.gz"),
        ("scifar", "data_batch_3", "data_batch_5", "cs.toronto.edu/~kriz/cifar.html"),
        ("text", "test/neg", "aclImdb/{train,test}/{pos,neg}", "ai.stanford.edu"),
        ("pathfinder", "curv_contour_length_14/metadata", "metadata/<k>.npy", "lra_release.gz"),
    ],
)  # fmt: skip
def test_missing_files_are_named_with_layout_and_source(tmp_path, name, remove, layout, source):
    root = fixture_dir(name, tmp_path)
    target = root / remove
    if target.is_dir():
        for child in target.iterdir():
            child.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(UserError) as error:
        tasks.build(name, data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    message = str(error.value)
    assert str(target) in message and layout in message and source in message


def append_line(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


@pytest.mark.parametrize(
    ("name", "file", "line", "pattern"),
    [
        ("listops", "basic_test.tsv", "( [MAX 1 2 ] )\t2\textra", r"line 4 has 3 tab-separated"),
        ("listops", "basic_train.tsv", "( [MAX 1 2 ] )\t12", r"line 8 has label '12'"),
        ("listops", "basic_val.tsv", "( [MAX 1 2 ] )\tseven", r"line 4 has label 'seven'"),
        ("listops", "basic_val.tsv", "( [AVG 1 2 ] )\t1", r"line 4 has token '\[AVG'"),
        ("retrieval", "new_aan_pairs.test.tsv", "1.0\ta\tb\tonly one text", r"line 3 has 4"),
        ("retrieval", "new_aan_pairs.train.tsv", "2.0\ta\tb\tx\ty", r"line 4 has label '2.0'"),
    ],
)
def test_malformed_rows_are_named_by_file_and_line(tmp_path, name, file, line, pattern):
    root = fixture_dir(name, tmp_path)
    append_line(root / file, line)
    with pytest.raises(UserError, match=pattern) as error:
        tasks.build(name, data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    assert str(root / file) in str(error.value)


def test_listops_header_is_checked(tmp_path):
    root = fixture_dir("listops", tmp_path)
    path = root / "basic_train.tsv"
    path.write_text(path.read_text().replace("Source\tTarget", "Input\tOutput"))
    with pytest.raises(UserError, match=r"basic_train.tsv: line 1 should be the header"):
        tasks.build("listops", data_dir=str(root), cache_dir=str(tmp_path / "cache"))


def test_tsv_without_rows_or_not_utf8_is_named(tmp_path):
    root = fixture_dir("listops", tmp_path)
    (root / "basic_val.tsv").write_text("Source\tTarget\n")
    with pytest.raises(UserError, match=r"basic_val.tsv: the file holds no data rows"):
        tasks.build("listops", data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    (root / "basic_val.tsv").write_bytes(b"Source\tTarget\n( [MAX 1 \xff ] )\t1\n")
    with pytest.raises(UserError, match=r"basic_val.tsv: not UTF-8 text \(byte 23\)"):
        tasks.build("listops", data_dir=str(root), cache_dir=str(tmp_path / "cache"))


def test_truncated_cifar_pickle_is_named(tmp_path):
    root = fixture_dir("image", tmp_path)
    path = root / "data_batch_2"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"data_batch_2: not a CIFAR-10 batch .* truncated"):
        tasks.build("image", data_dir=str(root), cache_dir=str(tmp_path / "cache"))


class Payload:
    """Unpickling this object writes `marker`: what a malicious download would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "payload ran"))


def test_cifar_batch_carrying_a_pickle_payload_is_refused_not_run(tmp_path):
    root = fixture_dir("scifar", tmp_path)
    marker = tmp_path / "marker"
    batch = fx.cifar_batch(fx.CIFAR_TRAIN_PER_BATCH, 3)
    batch[b"filenames"] = Payload(marker)
    with open(root / "data_batch_3", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(UserError, match=r"data_batch_3: not a CIFAR-10 batch \(.*pathlib"):
        tasks.build("scifar", data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    assert not marker.exists()


def test_cifar_batch_with_garbage_after_the_pickle_header_is_named(tmp_path):
    root = fixture_dir("image", tmp_path)
    # A dict's opening, then opcodes that append to an int: no valid pickle continues this way.
    (root / "test_batch").write_bytes(b"\x80\x02}q\x01(U\x04dataK\x01(K\x02e.")
    with pytest.raises(UserError, match=r"test_batch: not a CIFAR-10 batch \(AttributeError"):
        tasks.build("image", data_dir=str(root), cache_dir=str(tmp_path / "cache"))


class Python2Pickler(pickle._Pickler):
    """Pickles as the release's Python 2 did: protocol 2, bytes as (SHORT_)BINSTRING."""

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch: ClassVar[dict] = {**pickle._Pickler.dispatch, bytes: save_bytes}


def test_cifar_batch_in_the_published_format_is_read(tmp_path):
    """The release was pickled by Python 2 with numpy 1, whose arrays name numpy.core."""
    root = fixture_dir("image", tmp_path)
    batch = fx.cifar_batch(fx.CIFAR_TEST, 0)
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(batch)
    text = buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in text and b"_codecs" not in text
    (root / "test_batch").write_bytes(text)
    data = tasks.build("image", data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    assert [int(y) for _, y in data.test] == batch[b"labels"]


def test_cifar_label_out_of_range_names_file_and_item(tmp_path):
    root = fixture_dir("scifar", tmp_path)
    batch = fx.cifar_batch(fx.CIFAR_TRAIN_PER_BATCH, 4)
    batch[b"labels"][2] = 10
    with open(root / "data_batch_4", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(UserError, match=r"data_batch_4: item 2 has label 10"):
        tasks.build("scifar", data_dir=str(root), cache_dir=str(tmp_path / "cache"))


def test_cifar_statistics_need_one_value_per_channel(tmp_path):
    with pytest.raises(UserError, match=r"task.mean and task.std .* need 3 value"):
        build("scifar", tmp_path, mean=[0.5], std=[0.5])


def test_unreadable_png_is_named(tmp_path):
    root = fixture_dir("pathfinder", tmp_path)
    path = root / "curv_contour_length_14" / "imgs" / "0" / "sample_3.png"
    path.write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match=r"sample_3.png: cannot decode the PNG"):
        tasks.build("pathfinder", data_dir=str(root), cache_dir=str(tmp_path / "cache"))


def test_pathfinder_metadata_naming_missing_images_is_one_error(tmp_path):
    root = fixture_dir("pathfinder", tmp_path)
    for name in ("sample_3.png", "sample_5.png"):
        (root / "curv_contour_length_14" / "imgs" / "0" / name).unlink()
    with pytest.raises(
        UserError,
        match=r"sample_3.png \(listed in .*0.npy, line 4\): image "
        r"missing \(2 of the \d+ listed images are\); re-extract",
    ):
        tasks.build("pathfinder", data_dir=str(root), cache_dir=str(tmp_path / "cache"))


def test_pathfinder_metadata_label_and_size_are_checked(tmp_path):
    root = fixture_dir("pathfinder", tmp_path)
    cache = str(tmp_path / "cache")
    with pytest.raises(UserError, match=r"sample_0.png: image is 32x32, expected 64x64"):
        tasks.build("pathfinder", data_dir=str(root), resolution=64, cache_dir=cache)
    append_line(root / "curv_contour_length_14" / "metadata" / "0.npy", "imgs/0 sample_0.png 0 2")
    with pytest.raises(UserError, match=r"0.npy: line 11 has label '2'"):
        tasks.build("pathfinder", data_dir=str(root), cache_dir=cache)


@pytest.mark.parametrize(("key", "value"), [("val_fraction", 1.0), ("test_fraction", -0.1)])
def test_split_fractions_are_checked(tmp_path, key, value):
    with pytest.raises(UserError, match=f"task.{key}={value}"):
        build("pathfinder", tmp_path, **{key: value})


def test_only_the_release_known_empty_image_is_skipped(tmp_path, caplog):
    root = fx.write_pathfinder(tmp_path / "data", 32, n=4, difficulty="curv_baseline")
    (root / "curv_baseline" / "imgs" / "0" / "sample_172.png").write_bytes(b"")
    append_line(root / "curv_baseline" / "metadata" / "0.npy", "imgs/0 sample_172.png 172 1")
    options = {"data_dir": str(root), "difficulty": "curv_baseline", "val_fraction": 0.25}
    data = tasks.build("pathfinder", **options, test_fraction=0.25, cache_dir=str(tmp_path / "c"))
    assert (len(data.train), len(data.val), len(data.test)) == (2, 1, 1)
    assert "sample_172.png" in caplog.text
    (root / "curv_baseline" / "imgs" / "0" / "sample_2.png").write_bytes(b"")
    with pytest.raises(UserError, match=r"sample_2.png: cannot decode the PNG"):
        tasks.build("pathfinder", **options, test_fraction=0.25, cache_dir=str(tmp_path / "c"))


# --- Damaged data: one line naming the file and the item (issue 23) -------------------------


def one_line_error(name: str, root: Path, tmp_path: Path, **options) -> str:
    """The `UserError` message of building task `name` from `root`; the cache stays empty."""
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as error:
        tasks.build(name, data_dir=str(root), cache_dir=str(cache), **options)
    message = str(error.value)
    assert "\n" not in message
    assert not cache.exists() or not list(cache.iterdir())  # no entry, no temporary folder
    return message


NOT_INT_LABELS = [["3", "1", "0", "2"], [1, None, 2, 3], [1, 2.5, 0, 0], [1, float("nan"), 0, 0],
                  [[1], 2, 3, 4], [1, 10**400, 0, 0], [True, 1, 0, 0], "0123", 7]  # fmt: skip


@pytest.mark.parametrize("labels", NOT_INT_LABELS)
def test_cifar_labels_that_are_not_integers_name_file_and_item(tmp_path, labels):
    root = fixture_dir("image", tmp_path)
    batch = fx.cifar_batch(fx.CIFAR_TRAIN_PER_BATCH, 2)
    batch[b"labels"] = labels
    with open(root / "data_batch_2", "wb") as f:
        pickle.dump(batch, f)
    message = one_line_error("image", root, tmp_path)
    assert str(root / "data_batch_2") in message
    assert "expected" in message and ("item" in message or "the labels are" in message)


def test_cifar_batch_without_images_is_named(tmp_path):
    """Issue 25: a training set of zero images trained 0 steps and finished with made-up numbers."""
    root = fixture_dir("scifar", tmp_path)
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(root / name, "wb") as f:
            pickle.dump({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, f)
    message = one_line_error("scifar", root, tmp_path)
    assert f"{root / 'data_batch_1'}: the batch holds no images" in message


def test_cifar_without_a_validation_fraction_is_refused(tmp_path):
    root = fixture_dir("image", tmp_path)
    assert "task.val_fraction=0 leaves" in one_line_error("image", root, tmp_path, val_fraction=0)


def test_pathfinder_decompression_bomb_is_refused_unread(tmp_path):
    root = fixture_dir("pathfinder", tmp_path)
    path = root / "curv_contour_length_14" / "imgs" / "0" / "sample_4.png"
    for width in (60000, 10000):  # PIL refuses the first at open; the second by its size
        path.write_bytes(df.png_header_only(width, 20000))
        message = one_line_error("pathfinder", root, tmp_path)
        assert str(path) in message


@pytest.mark.parametrize("damage", ["broken symlink", "review is a folder", "folder is a file"])
def test_imdb_folders_holding_the_wrong_thing_are_named(tmp_path, damage):
    root = fixture_dir("text", tmp_path)
    review = root / "train" / "neg" / "1_1.txt"
    if damage == "folder is a file":
        shutil.rmtree(root / "test" / "pos")
        (root / "test" / "pos").write_text("x")
        target = root / "test" / "pos"
    else:
        review.unlink()
        review.mkdir() if damage == "review is a folder" else review.symlink_to(root / "gone")
        target = review
    message = one_line_error("text", root, tmp_path)
    assert f"{target}: " in message and "layout" in message


@pytest.mark.parametrize(
    ("name", "file", "line", "pattern"),
    [
        ("retrieval", "new_aan_pairs.eval.tsv", "nan\ta\tb\tx\ty", r"line 2 has label 'nan'"),
        ("retrieval", "new_aan_pairs.eval.tsv", "-1.0\ta\tb\tx\ty", r"line 2 has label '-1.0'"),
        ("retrieval", "new_aan_pairs.eval.tsv", "1.0\ta", r"line 2 has 2 tab-separated"),
        ("listops", "basic_test.tsv", "( [MAX 1 2 ] )\tNaN", r"line 4 has label 'NaN'"),
        ("listops", "basic_test.tsv", "( [MAX 1 2 ] )\t\u0663", r"line 4 has label '\u0663'"),
    ],
)
def test_bad_labels_and_short_rows_name_file_and_line(tmp_path, name, file, line, pattern):
    root = fixture_dir(name, tmp_path)
    append_line(root / file, line)
    message = one_line_error(name, root, tmp_path)
    assert str(root / file) in message and re.search(pattern, message)


@pytest.mark.parametrize(("name", "file"), [("retrieval", "new_aan_pairs.train.tsv"),
                                            ("listops", "basic_val.tsv")])  # fmt: skip
def test_a_truncated_last_row_is_named(tmp_path, name, file):
    """A row cut inside its last field still has every column: the missing line end tells."""
    root = fixture_dir(name, tmp_path)
    path = root / file
    path.write_bytes(path.read_bytes()[:-4])
    message = one_line_error(name, root, tmp_path)
    assert f"{path}: line " in message and "looks truncated" in message


# --- Paths from data files stay inside the dataset (issue 25) -------------------------------


def pathfinder_line(root: Path, line: str) -> Path:
    meta = root / "curv_contour_length_14" / "metadata" / "0.npy"
    append_line(meta, line)
    return meta


def test_pathfinder_metadata_cannot_name_an_image_outside_the_dataset(tmp_path):
    root = fixture_dir("pathfinder", tmp_path)
    outside = root.parent.parent / "outside.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(outside)
    meta = pathfinder_line(root, "../../.. outside.png 10 1")
    message = one_line_error("pathfinder", root, tmp_path)
    assert f"{meta}, line 11: names 'curv_contour_length_14/../../../outside.png'" in message
    assert f"resolves to {outside}, outside the dataset folder" in message


@pytest.mark.parametrize("line", ["imgs/0 sample\x001.png 10 1", "loop sample_1.png 10 1"])
def test_pathfinder_metadata_naming_an_unusable_path_is_named(tmp_path, line):
    root = fixture_dir("pathfinder", tmp_path)
    loop = root / "curv_contour_length_14" / "loop"
    loop.symlink_to(loop)  # resolves to itself: a symlink loop
    meta = pathfinder_line(root, line)
    message = one_line_error("pathfinder", root, tmp_path)
    assert f"{meta}, line 11: names " in message


def test_pathfinder_image_symlinked_outside_the_dataset_is_refused(tmp_path):
    root = fixture_dir("pathfinder", tmp_path)
    outside = tmp_path / "elsewhere.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(outside)
    image = root / "curv_contour_length_14" / "imgs" / "0" / "sample_9.png"
    image.unlink()
    image.symlink_to(outside)
    message = one_line_error("pathfinder", root, tmp_path)
    assert f"{root / 'curv_contour_length_14' / 'metadata' / '0.npy'}, line 10" in message
    assert str(outside) in message
    # a symlink inside the dataset is fine
    image.unlink()
    image.symlink_to(image.parent / "sample_8.png")
    data = tasks.build("pathfinder", data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    assert len(data.train) + len(data.val) + len(data.test) == 10


# --- Empty splits (issue 25) ----------------------------------------------------------------


def test_pathfinder_fraction_leaving_a_split_empty_is_refused_before_decoding(
    tmp_path, monkeypatch
):
    root = fixture_dir("pathfinder", tmp_path)
    monkeypatch.setattr(tasks.pathfinder, "decode_images", fail_if_called)
    message = one_line_error("pathfinder", root, tmp_path, test_fraction=0.05)
    assert "task.test_fraction=0.05 of 10 item(s) gives an empty split" in message
    assert str(root / "curv_contour_length_14" / "metadata" / "0.npy") in message


def fail_if_called(*args, **kwargs):
    raise AssertionError("data was processed although the options were refused")


def test_every_task_refuses_a_split_without_items():
    from tasks.base import check_splits

    empty = torch.utils.data.TensorDataset(torch.zeros(0, 3))
    full = torch.utils.data.TensorDataset(torch.zeros(4, 3))
    info = tasks.TaskInfo(name="toy", input_kind="real", d_input=3, d_output=2, seq_len=1)
    check_splits("toy", tasks.TaskData(full, full, full, info))
    pattern = r"task 'toy': the val split holds no items \(train 4, val 0, test 4\), so it would"
    with pytest.raises(UserError, match=pattern):
        check_splits("toy", tasks.TaskData(full, empty, full, info))


@pytest.mark.parametrize(("name", "options", "key"), [
    ("digits_noise", {"val_fraction": 1e-4}, "task.val_fraction"),
    ("pathfinder_gen", {"n_images": 5}, "task.val_fraction"),
    ("text", {"val_fraction": 0.95}, "task.val_fraction"),
])  # fmt: skip
def test_fractions_leaving_a_split_empty_are_user_errors(tmp_path, monkeypatch, name, options, key):
    import tasks.pathfinder_gen

    monkeypatch.setattr(tasks.pathfinder_gen, "write_release", fail_if_called)
    if name == "text":
        options = {**options, "data_dir": str(fixture_dir("text", tmp_path))}
    if name != "digits_noise":
        options = {**options, "cache_dir": str(tmp_path / "cache")}
    with pytest.raises(UserError, match=key):
        tasks.build(name, **options)


# --- task.cache_dir and the cache (issue 23) ------------------------------------------------


def test_cache_dir_naming_a_file_is_one_error_before_parsing(tmp_path, monkeypatch):
    root = fixture_dir("listops", tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(tasks.listops, "load_listops_split", fail_if_called)
    for cache in (blocker, blocker / "below"):
        with pytest.raises(UserError, match=rf"task.cache_dir={cache}: {blocker} is a file"):
            tasks.build("listops", data_dir=str(root), cache_dir=str(cache))
    monkeypatch.setenv("SSM_BENCH_CACHE", str(blocker))
    with pytest.raises(UserError, match=rf"\$SSM_BENCH_CACHE={blocker}: {blocker} is a file"):
        tasks.build("listops", data_dir=str(root))
    with pytest.raises(UserError, match=r"task.cache_dir=.*is a file"):
        tasks.build("listops_gen", cache_dir=str(blocker))


def test_a_damaged_cache_entry_is_rebuilt(tmp_path, caplog):
    options = {"data_dir": str(fixture_dir("listops", tmp_path)), "cache_dir": tmp_path / "c"}
    data = tasks.build("listops", **options)
    expected = [(x.tolist(), int(y)) for x, y in data.train]
    (entry,) = (tmp_path / "c").iterdir()
    (entry / "train_x.npy").unlink()  # a new file: the one `data` maps stays intact
    (entry / "train_x.npy").write_bytes(b"\x93NUMPY garbage")
    again = tasks.build("listops", **options)
    assert "is damaged" in caplog.text
    assert [(x.tolist(), int(y)) for x, y in again.train] == expected


# --- task.data_dir: the dataset folder or a folder holding it (issue 24) --------------------

RELEASE_TASKS = {"listops": "listops-1000", "retrieval": "tsv_data", "pathfinder": "pathfinder32"}


@pytest.mark.parametrize("name", ["listops", "text", "retrieval", "image", "pathfinder"])
def test_data_dir_may_be_the_dataset_folder_or_its_parent(name, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tasks.files")
    folder = fixture_dir(name, tmp_path)
    cache = str(tmp_path / "cache")
    direct = tasks.build(name, data_dir=str(folder), cache_dir=cache)
    assert f"reading {folder} (task.data_dir is the dataset folder itself)" in caplog.text
    parent = tasks.build(name, data_dir=str(folder.parent), cache_dir=cache)
    assert f"reading {folder} (task.data_dir is the folder holding {folder.name}/)" in caplog.text
    assert [int(y) for _, y in parent.test] == [int(y) for _, y in direct.test]
    if name in RELEASE_TASKS:  # lra_release.gz unpacks to lra_release/lra_release/<folder>
        release = tmp_path / "unpacked" / "lra_release"
        (release / "lra_release").mkdir(parents=True)
        folder.rename(release / "lra_release" / folder.name)
        for data_dir in (release, release.parent):
            data = tasks.build(name, data_dir=str(data_dir), cache_dir=cache)
            assert [int(y) for _, y in data.test] == [int(y) for _, y in direct.test]
        assert f"holding lra_release/lra_release/{folder.name}/)" in caplog.text


@pytest.mark.parametrize("problem", ["does not exist", "is not a folder"])
def test_data_dir_that_is_no_folder_is_named(tmp_path, problem):
    path = tmp_path / "data"
    if problem == "is not a folder":
        path.write_text("x")
    with pytest.raises(UserError, match=rf"task.data_dir={path} {problem}; .*cifar-10-batches-py"):
        tasks.build("image", data_dir=str(path))
