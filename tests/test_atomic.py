"""The one atomic writer (`common.atomic`): whole new file or the old one, no temp, plain modes."""

import os
from pathlib import Path

import pytest

from common.atomic import write_atomically, write_text_atomically


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
