"""benchmarks/recipe_sweep.py: variants' training sets, and the summary pairing each variant with its no-pose twin
on the same evaluation set (the sweep itself runs on a GPU; its numbers are in docs/recipe-experiments.md)."""

import json

import numpy as np
import pytest

from conftest import load_script
from zero1to3.dataset import data


@pytest.fixture(scope="module")
def sweep():
    return load_script("benchmarks/recipe_sweep.py")


def test_every_pose_variant_has_a_no_pose_twin_with_the_same_recipe_and_training_sets(sweep):
    for name, (training, tiny, sets) in sweep.VARIANTS.items():
        twin = name.replace("_pose", "_nopose")
        if name.endswith("_pose") and twin in sweep.VARIANTS:
            t_training, t_tiny, t_sets = sweep.VARIANTS[twin]
            assert t_training == training | {"use_pose": False} and t_tiny == tiny and t_sets == sets, name
    assert sweep._train_sets(["b32_pose", "mix_pose", "every_nopose"]) == ["train", "every_train"]


def test_training_sets_join_in_order(sweep):
    a = data.MultiViewSet(["a0", "a1"], np.zeros((2, 3, 4, 4, 4), np.uint8), np.zeros((2, 3, 3)))
    b = data.MultiViewSet(["b0"], np.ones((1, 3, 4, 4, 4), np.uint8), np.ones((1, 3, 3)))
    joined = sweep._joined([a, b])
    assert joined.object_ids == ["a0", "a1", "b0"]
    assert joined.rgba.shape == (3, 3, 4, 4, 4) and joined.rgba[2].min() == 1 and joined.camera_centers[:2].max() == 0


def _row(variant, step, fg, set_name=None, n=12):
    rng = np.random.default_rng(len(variant) + step)
    scores = {
        "model": {"fg_psnr": (fg + rng.normal(0, 0.1, n)).tolist(), "silhouette_iou": [0.5] * n},
        "copy_input": {"fg_psnr": [10.0] * n, "silhouette_iou": [0.5] * n},
    }
    row = {"variant": variant, "step": step, "seconds": 1.0, "scores": scores}
    return row | ({"set": set_name} if set_name else {})


def test_summary_pairs_each_variant_with_its_twin_on_the_same_set(sweep, tmp_path):
    rows = [
        _row("mix_pose", 500, 12.0, "zero_shot"),
        _row("mix_nopose", 500, 11.0, "zero_shot"),
        _row("mix_pose", 500, 10.5, "test"),
        _row("mix_nopose", 500, 10.5, "test"),
        _row("b32_pose", 500, 10.2),
    ]  # a row of a run before sets: scored on `test`
    log = tmp_path / "milestones.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sweep.summarize(str(log), str(tmp_path / "summary.json"))
    table = {(r["variant"], r["set"], r["step"]): r for r in json.loads((tmp_path / "summary.json").read_text())}
    assert set(table) == {
        ("mix_pose", "zero_shot", 500),
        ("mix_nopose", "zero_shot", 500),
        ("mix_pose", "test", 500),
        ("mix_nopose", "test", 500),
        ("b32_pose", "test", 500),
    }

    def gap(key):
        return next(c for c in table[key]["comparisons"] if c["other"] == "no_pose" and c["metric"] == "fg_psnr")

    assert gap(("mix_pose", "zero_shot", 500))["mean_difference"] == pytest.approx(1.0, abs=0.15)
    assert gap(("mix_pose", "zero_shot", 500))["ci_low"] > 0
    assert abs(gap(("mix_pose", "test", 500))["mean_difference"]) < 0.15
    assert [c["other"] for c in table[("b32_pose", "test", 500)]["comparisons"]] == ["copy_input", "copy_input"]


def test_milestone_seconds_count_on_across_a_resume(sweep, tmp_path):
    empty = data.MultiViewSet([], np.zeros((0, 8, 4, 4, 4), np.uint8), np.zeros((0, 8, 3)))
    first = sweep.MilestoneScores("b32_pose", {"test": empty}, tmp_path / "log.jsonl", True, [1000])
    first.started -= 100.0  # 100 s of training before the kill
    resumed = sweep.MilestoneScores("b32_pose", {"test": empty}, tmp_path / "log.jsonl", True, [1000])
    resumed.load_state_dict(first.state_dict())
    assert resumed.state_dict()["training_seconds"] == pytest.approx(100.0, abs=1.0)
