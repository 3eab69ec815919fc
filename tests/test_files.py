import os
import time

import pytest

from digitrec.files import atomic_dir, atomic_path, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_the_temporary_keeps_the_extension_and_the_result_is_readable(tmp_path):
    target = tmp_path / "sub" / "m.keras"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == target.parent
        tmp.write_text("new")
    atomic_write_text(tmp_path / "x.json", "{}")
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o644


def test_temporaries_left_by_a_killed_writer_are_cleared_once_stale(tmp_path):
    stale = tmp_path / ".model.abc123.part.keras"
    young = tmp_path / ".model.def456.part.keras"
    unrelated = tmp_path / ".other.abc123.part.keras"
    for leftover in (stale, young, unrelated):
        leftover.write_bytes(b"half a file")
    hours_ago = time.time() - 2 * 3600
    for old in (stale, unrelated):
        os.utime(old, (hours_ago, hours_ago))
    atomic_write_text(tmp_path / "model.keras", "whole")
    assert not stale.exists() and young.exists() and unrelated.exists()
    assert (tmp_path / "model.keras").read_text() == "whole"


@pytest.mark.parametrize("blocked", ["a-file/m.keras", "a-file/deeper/m.keras"])
def test_a_file_in_the_way_of_the_folder_is_reported_under_the_target(tmp_path, blocked):
    (tmp_path / "a-file").write_text("kept")
    target = tmp_path / blocked
    with pytest.raises(NotADirectoryError) as raised, atomic_path(target):
        pass
    assert raised.value.filename == str(target) and raised.value.strerror == "Not a directory"
    assert (tmp_path / "a-file").read_text() == "kept"


def test_a_folder_is_swapped_in_whole_and_the_old_one_removed(tmp_path):
    target = tmp_path / "saved"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with atomic_dir(target) as tmp:
        assert tmp.is_dir() and tmp.parent == tmp_path and not any(tmp.iterdir())
        (tmp / "new.pb").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.pb"]
    assert [p.name for p in tmp_path.iterdir()] == ["saved"] and (target.stat().st_mode & 0o777) == 0o755


def test_a_failed_folder_write_leaves_the_old_folder_and_no_temporary(tmp_path):
    target = tmp_path / "saved"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.pb").write_text("half")
        raise RuntimeError("killed mid-export")
    assert (target / "old.pb").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["saved"]


def test_a_file_at_the_target_is_replaced_by_the_folder(tmp_path):
    target = tmp_path / "saved"
    target.write_text("a file, replaced as --force asked")
    with atomic_dir(target) as tmp:
        (tmp / "saved_model.pb").write_text("new")
    assert (target / "saved_model.pb").read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_stale_folders_left_by_a_killed_export_are_cleared(tmp_path):
    stale = tmp_path / ".saved.abc123.part"
    (stale / "variables").mkdir(parents=True)
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    with atomic_dir(tmp_path / "saved") as tmp:
        (tmp / "saved_model.pb").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["saved"]
