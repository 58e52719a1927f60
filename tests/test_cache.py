"""The processed-array cache: a hit skips processing, a source or config change rebuilds."""

import os
from pathlib import Path

import lra_fixtures as fx
import numpy as np
import pytest

import tasks
import tasks.listops
import tasks.pathfinder
import tasks.text
from tasks.cache import CACHE_ENV, cache_root, load_or_build


class CountingBuild:
    """A `build` callable that records its calls and returns arrays derived from a source file."""

    def __init__(self, source: Path):
        self.source, self.calls = source, 0

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        data = np.frombuffer(self.source.read_bytes(), dtype=np.uint8)
        return {"x": data.reshape(-1, 1), "y": np.arange(len(data), dtype=np.int64)}


def make_source(tmp_path: Path, content: bytes = b"abcdef") -> Path:
    path = tmp_path / "src" / "data.bin"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def test_second_load_reads_the_cache_without_building(tmp_path):
    source = make_source(tmp_path)
    build = CountingBuild(source)
    first = load_or_build("toy", {"k": 1}, [source], build, tmp_path / "cache")
    second = load_or_build("toy", {"k": 1}, [source], build, tmp_path / "cache")
    assert build.calls == 1
    assert sorted(second) == ["x", "y"]
    np.testing.assert_array_equal(second["x"][:, 0], np.frombuffer(b"abcdef", dtype=np.uint8))
    np.testing.assert_array_equal(first["y"], second["y"])
    assert second["y"].dtype == np.int64


def test_changed_source_or_config_rebuilds(tmp_path):
    source = make_source(tmp_path)
    build = CountingBuild(source)
    cache = tmp_path / "cache"
    load_or_build("toy", {"k": 1}, [source], build, cache)
    source.write_bytes(b"uvwxyz")  # same size: only the mtime tells
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = load_or_build("toy", {"k": 1}, [source], build, cache)
    assert build.calls == 2
    np.testing.assert_array_equal(changed["x"][:, 0], np.frombuffer(b"uvwxyz", dtype=np.uint8))
    load_or_build("toy", {"k": 2}, [source], build, cache)
    assert build.calls == 3
    assert len([p for p in cache.iterdir() if p.name.startswith("toy-")]) == 3


def test_failed_build_leaves_no_entry_and_no_temporary_files(tmp_path):
    source = make_source(tmp_path)
    cache = tmp_path / "cache"

    def broken() -> dict[str, np.ndarray]:
        return {"x": np.zeros(3), "y": np.array([object()], dtype=object)}  # unsaveable

    with pytest.raises(ValueError):
        load_or_build("toy", {}, [source], broken, cache)
    assert list(cache.iterdir()) == []
    build = CountingBuild(source)
    load_or_build("toy", {}, [source], build, cache)
    assert build.calls == 1
    (entry,) = cache.iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", "x.npy", "y.npy"]


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "from_env"))
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert cache_root(None) == tmp_path / "from_env"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root(None) == tmp_path / "home" / ".cache" / "ssm_bench"


def fail(*args, **kwargs):
    raise AssertionError("the loader ran although the cache holds the arrays")


def test_listops_second_build_skips_the_loader_and_rebuilds_on_change(tmp_path, monkeypatch):
    root = fx.write_listops(tmp_path / "data")
    options = {"data_dir": str(root), "cache_dir": str(tmp_path / "cache")}
    first = tasks.build("listops", **options)
    with monkeypatch.context() as patch:
        patch.setattr(tasks.listops, "load_listops_split", fail)
        again = tasks.build("listops", **options)
    assert [int(y) for _, y in again.test] == [int(y) for _, y in first.test]
    path = root / "basic_test.tsv"
    path.write_text(path.read_text().replace("\t0\n", "\t7\n"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    rebuilt = tasks.build("listops", **options)
    assert [int(y) for _, y in rebuilt.test] == [6, 7]


@pytest.mark.parametrize(
    ("name", "module", "loader", "write"),
    [
        ("pathfinder", tasks.pathfinder, "decode_images", lambda r: fx.write_pathfinder(r, 32)),
        ("text", tasks.text, "encode_bytes", fx.write_imdb),
    ],
)
def test_second_build_reads_the_cache(tmp_path, monkeypatch, name, module, loader, write):
    root = write(tmp_path / "data")
    options = {"data_dir": str(root), "cache_dir": str(tmp_path / "cache")}
    first = tasks.build(name, **options)
    monkeypatch.setattr(module, loader, fail)
    again = tasks.build(name, **options)
    for a, b in zip(first.train, again.train, strict=True):
        assert np.array_equal(a[0].numpy(), b[0].numpy()) and int(a[1]) == int(b[1])
