import pickle

import pytest
import torch

from zero1to3 import checkpoints


def test_save_keeps_the_newest_and_latest_finds_it(tmp_path):
    for step in (1, 2, 10):
        checkpoints.save(tmp_path, "step", step, {"step": step, "w": torch.ones(2) * step})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000002.pt", "step_000010.pt"]
    last = checkpoints.latest(tmp_path, "step")
    assert last.name == "step_000010.pt" and checkpoints.load(last)["step"] == 10
    assert checkpoints.latest(tmp_path, "sjc") is None
    checkpoints.remove(tmp_path, "step")
    assert list(tmp_path.iterdir()) == []


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling creates a file: stands in for any shell command


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    """Issue 11, item 7: the loader is weights_only=True."""
    marker = tmp_path / "ran"
    torch.save({"step": 1, "payload": _RunsCode(marker)}, tmp_path / "step_000001.pt")
    with pytest.raises(pickle.UnpicklingError, match="step_000001.pt"):
        checkpoints.load(tmp_path / "step_000001.pt")
    assert not marker.exists()


def test_generator_states_and_plain_containers_load(tmp_path):
    state = {"gen": torch.Generator().manual_seed(3).get_state(), "history": [{"step": 1, "loss": 0.5}],
             "rng": {"state": {"state": 2**100, "inc": 7}}, "images": {2: torch.zeros(1, 2, 2, 3)}}  # fmt: skip
    checkpoints.write(tmp_path / "x.pt", state)
    loaded = checkpoints.load(tmp_path / "x.pt")
    assert torch.equal(loaded["gen"], state["gen"]) and loaded["history"] == state["history"]
    assert loaded["rng"] == state["rng"] and list(loaded["images"]) == [2]
