import pytest

from zero1to3.core import checkpoints, files, fingerprint


@pytest.mark.parametrize("load", [checkpoints.load, files.read_json])
def test_load_saved_reuses_only_what_the_same_run_saved(tmp_path, load):
    path = tmp_path / ("state.pt" if load is checkpoints.load else "state.json")
    saved = {"identity": {"seed": 0, "config": {"lr": 0.05}}, "key": "abc", "history": [1, 2]}
    checkpoints.write(path, saved) if load is checkpoints.load else files.write_json_atomic(path, saved)

    assert fingerprint.load_saved(path, load, {"identity": saved["identity"], "key": "abc"}) == (saved, True)
    assert fingerprint.load_saved(path, load, {"identity": {"seed": 1, "config": {"lr": 0.05}}}) == (saved, False)
    assert fingerprint.load_saved(path, load, {"settings": None}) == (saved, False)  # a missing key differs
    assert fingerprint.load_saved(tmp_path / "none", load, {"key": "abc"}) == (None, False)
    assert fingerprint.load_saved(None, load, {"key": "abc"}) == (None, False)  # e.g. no checkpoint in a folder


def test_differences_name_the_keys_that_differ_sorted_and_skip_the_ignored():
    saved = {"seed": 0, "lr": 0.1, "max_steps": 10, "gone": 1}
    current = {"seed": 0, "lr": 0.2, "max_steps": 20, "new": 2}
    assert fingerprint.differences(saved, current) == {
        "gone": (1, None),
        "lr": (0.1, 0.2),
        "max_steps": (10, 20),
        "new": (None, 2),
    }
    assert list(fingerprint.differences(saved, current, ignore=("max_steps", "gone", "new"))) == ["lr"]
    assert fingerprint.differences(saved, dict(saved)) == {}
