import json

import pytest

from zero1to3 import files


def test_write_json_atomic_round_trip_and_no_temp_left(tmp_path):
    path = tmp_path / "sub" / "x.json"
    files.write_json_atomic(path, {"a": [1, 2]})
    files.write_json_atomic(path, {"a": [3]})
    assert json.loads(path.read_text()) == {"a": [3]}
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
