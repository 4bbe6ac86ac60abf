import json

import pytest

from zero1to3.core import files


def test_write_json_atomic_round_trip_and_no_temp_left(tmp_path):
    path = tmp_path / "sub" / "x.json"
    files.write_json_atomic(path, {"a": [1, 2]})
    files.write_json_atomic(path, {"a": [3]})
    assert json.loads(path.read_text()) == files.read_json(path) == {"a": [3]}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.json"
    files.write_json_atomic(path, {"ok": 1})
    with pytest.raises(TypeError):
        files.write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize("bad", [{"a": "text"}, {"a": {"nested": 1}}, {"a": float("nan")}, {"a": True}])
def test_metrics_must_be_flat_finite_numbers(tmp_path, bad):
    with pytest.raises(ValueError, match="a"):
        files.write_metrics(tmp_path / "m.json", bad)


def test_find_project_root_from_a_subfolder(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notebooks").mkdir()
    assert files.find_project_root(tmp_path / "notebooks") == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="dvc.yaml"):
        files.find_project_root(tmp_path.parent)


def test_atomic_files_get_the_umask_mode_not_0600(tmp_path):
    """Mkstemp's private 0600 used to leak into every file the stages wrote."""
    import os

    old = os.umask(0o022)
    try:
        files.write_bytes_atomic(tmp_path / "a.bin", b"x")
        with files.atomic_folder(tmp_path / "folder") as folder:
            (folder / "f").write_bytes(b"y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    """A failure (or kill) while writing leaves the old folder as it was, never a mix."""
    target = tmp_path / "model"
    with files.atomic_folder(target) as folder:
        (folder / "a.txt").write_text("old a")
        (folder / "b.txt").write_text("old b")
    with pytest.raises(RuntimeError):
        with files.atomic_folder(target) as folder:
            (folder / "a.txt").write_text("new a")
            raise RuntimeError("killed half-way")
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a.txt": "old a", "b.txt": "old b"}
    with files.atomic_folder(target) as folder:
        (folder / "a.txt").write_text("new a")
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a.txt": "new a"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp folder left beside it


def test_a_kill_between_the_renames_is_undone_by_the_next_call(tmp_path):
    target = tmp_path / "model"
    with files.atomic_folder(target) as folder:
        (folder / "a.txt").write_text("old")
    aside = tmp_path / ".model.killed.tmp"  # what a kill after the first rename leaves
    aside.mkdir()
    target.rename(aside / "old")
    with pytest.raises(RuntimeError):
        with files.atomic_folder(target):
            assert (target / "a.txt").read_text() == "old"  # put back before the block runs
            raise RuntimeError("the new write fails")
    assert (target / "a.txt").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["model"]
