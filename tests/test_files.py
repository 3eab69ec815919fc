import pytest

from digitrec.files import atomic_path, atomic_write_text


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
