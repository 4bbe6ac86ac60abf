import pickle
import sys
import types

import numpy as np
import pytest
import torch

from zero1to3.core import checkpoints


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
    """The loader is weights_only=True."""
    marker = tmp_path / "ran"
    torch.save({"step": 1, "payload": _RunsCode(marker)}, tmp_path / "step_000001.pt")
    with pytest.raises(pickle.UnpicklingError, match="step_000001.pt"):
        checkpoints.load(tmp_path / "step_000001.pt")
    assert not marker.exists()


def test_generator_states_and_plain_containers_load(tmp_path):
    state = {
        "gen": torch.Generator().manual_seed(3).get_state(),
        "history": [{"step": 1, "loss": 0.5}],
        "rng": {"state": {"state": 2**100, "inc": 7}},
        "images": {2: torch.zeros(1, 2, 2, 3)},
    }
    checkpoints.write(tmp_path / "x.pt", state)
    loaded = checkpoints.load(tmp_path / "x.pt")
    assert torch.equal(loaded["gen"], state["gen"]) and loaded["history"] == state["history"]
    assert loaded["rng"] == state["rng"] and list(loaded["images"]) == [2]


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints of other training code: `load_lightning`


def _stand_in_module(name: str, saved: dict[str, types.ModuleType | None]) -> types.ModuleType:
    """A fresh empty module `name` (and parents) in `sys.modules`; what was there before is kept in `saved`."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in saved:
            saved[sub] = sys.modules.get(sub)
            sys.modules[sub] = types.ModuleType(sub)
    return sys.modules[name]


def _restore_modules(saved: dict[str, types.ModuleType | None]) -> None:
    for name, module in saved.items():
        if module is None:
            del sys.modules[name]
        else:
            sys.modules[name] = module


def write_lightning_1x(path, state_dict: dict[str, torch.Tensor], extra: dict | None = None) -> None:
    """`torch.save` a checkpoint laid out as Lightning 1.4 writes zero123's, its pickle naming Lightning,
    omegaconf, `main` and numpy objects. The Lightning, omegaconf and `main` classes are stand-ins defined here
    and removed again, so a loader has to do without them (as without a `pytorch_lightning` install)."""
    saved: dict[str, types.ModuleType | None] = {}
    classes = {}
    for module, name in (
        ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"),
        ("main", "SetupCallback"),
        ("omegaconf.dictconfig", "DictConfig"),
    ):
        cls = type(name, (), {"__module__": module})
        setattr(_stand_in_module(module, saved), name, cls)
        classes[name] = cls
    config = classes["DictConfig"]()
    config.__dict__.update({"_content": {"base_learning_rate": 1.0e-4}, "_flags": {"readonly": None}})
    ckpt = {
        "epoch": 3,
        "global_step": 105000,
        "pytorch-lightning_version": "1.4.2",
        "state_dict": state_dict,
        # Lightning < 1.5 keys callback states by the callback's class (so the pickle names the class).
        "callbacks": {
            classes["ModelCheckpoint"]: {"monitor": "val/loss_simple_ema", "best_model_score": 0.1},
            classes["SetupCallback"]: {},
        },
        "optimizer_states": [
            {
                "state": {0: {"step": 10, "exp_avg": torch.zeros(2)}},
                "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}],
            }
        ],
        "lr_schedulers": [
            {
                "base_lrs": [1e-4],
                "last_epoch": 10,
                "lr_lambdas": [{"cum_cycles": np.cumsum([0, 10**13]), "last_f": np.float64(1.0)}],
            }
        ],
        "hyper_parameters": {"config": config},
    } | (extra or {})
    try:
        torch.save(ckpt, path)
    finally:
        _restore_modules(saved)


def test_a_lightning_1x_checkpoint_loads_without_lightning_and_its_classes_are_inert(tmp_path):
    weights = {"model.diffusion_model.out.2.bias": torch.arange(4.0)}
    write_lightning_1x(tmp_path / "last.ckpt", weights)
    assert "pytorch_lightning" not in sys.modules
    with pytest.raises(pickle.UnpicklingError):  # what plain weights-only loading makes of it
        torch.load(tmp_path / "last.ckpt", weights_only=True)
    ckpt = checkpoints.load_lightning(tmp_path / "last.ckpt")
    assert torch.equal(ckpt["state_dict"]["model.diffusion_model.out.2.bias"], torch.arange(4.0))
    assert ckpt["global_step"] == 105000 and torch.equal(
        ckpt["optimizer_states"][0]["state"][0]["exp_avg"], torch.zeros(2)
    )
    callback, setup = ckpt["callbacks"]
    assert issubclass(callback, checkpoints.ForeignObject)
    assert callback.foreign_name == "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"
    assert setup.foreign_name == "main.SetupCallback"
    assert ckpt["callbacks"][callback]["monitor"] == "val/loss_simple_ema"
    config = ckpt["hyper_parameters"]["config"]
    assert isinstance(config, checkpoints.ForeignObject) and config.state["_content"] == {"base_learning_rate": 1e-4}
    assert isinstance(ckpt["lr_schedulers"][0]["lr_lambdas"][0]["cum_cycles"], checkpoints.ForeignObject)  # numpy
    assert "pytorch_lightning" not in sys.modules  # nothing was imported to read the file


def test_lightning_loading_refuses_a_planted_object_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    write_lightning_1x(tmp_path / "evil.ckpt", {}, extra={"payload": _RunsCode(marker)})
    with pytest.raises(pickle.UnpicklingError, match=r"evil.ckpt: it names \['io.open'\]"):
        checkpoints.load_lightning(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_a_call_disguised_as_a_lightning_function_stays_inert(tmp_path):
    """A reference under an admitted module never resolves to real code: it is a placeholder, whatever it names."""
    marker = tmp_path / "ran"
    saved: dict[str, types.ModuleType | None] = {}

    def touch(path):
        open(path, "w").close()

    touch.__module__, touch.__qualname__ = "pytorch_lightning.utilities", "touch"
    _stand_in_module("pytorch_lightning.utilities", saved).touch = touch

    class Disguised:
        def __reduce__(self):
            return (touch, (str(marker),))

    try:
        torch.save({"state_dict": {}, "payload": Disguised()}, tmp_path / "disguised.ckpt")
    finally:
        _restore_modules(saved)
    ckpt = checkpoints.load_lightning(tmp_path / "disguised.ckpt")
    assert isinstance(ckpt["payload"], checkpoints.ForeignObject) and ckpt["payload"].args == (str(marker),)
    assert not marker.exists()
