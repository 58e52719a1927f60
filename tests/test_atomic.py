"""The one atomic writer (`common.atomic`): whole new file or the old one, no temp, plain modes."""

import os
from pathlib import Path

import pytest

from common.atomic import write_atomically, write_directory_atomically, write_text_atomically


def test_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "summary.json"
    write_text_atomically(target, "first")
    write_text_atomically(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    write_text_atomically(target, "intact")

    def fail_halfway(handle) -> None:
        handle.write(b"torn")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, fail_halfway)
    assert target.read_text() == "intact"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "index.html"
        write_text_atomically(fresh, "<html>")
        assert fresh.stat().st_mode & 0o777 == 0o644
        fresh.chmod(0o640)
        write_text_atomically(fresh, "<html></html>")
        assert fresh.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_directory_appears_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    """`write_directory_atomically`: a failing fill leaves nothing; a finished one is renamed
    into place with every file fsynced first; a concurrent writer's finished copy is kept."""
    target = tmp_path / "cache" / "entry"

    def fail_halfway(tmp: Path) -> None:
        (tmp / "x.npy").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_directory_atomically(target, fail_halfway, "meta.json")
    assert list(target.parent.iterdir()) == []

    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}"))
                        or real_fsync(fd))  # fmt: skip

    def fill(tmp: Path) -> None:
        (tmp / "x.npy").write_bytes(b"whole")
        (tmp / "meta.json").write_text("{}")

    write_directory_atomically(target, fill, "meta.json")
    assert sorted(p.name for p in target.iterdir()) == ["meta.json", "x.npy"]
    assert sorted(Path(p).name for p in synced) == ["meta.json", "x.npy"]
    assert [p.name for p in target.parent.iterdir()] == ["entry"]  # no temporary left

    def other(tmp: Path) -> None:
        (tmp / "meta.json").write_text("late")

    write_directory_atomically(target, other, "meta.json")  # target exists: the first is kept
    assert (target / "meta.json").read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["entry"]
