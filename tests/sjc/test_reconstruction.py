import dataclasses
import math

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from zero1to3 import cameras
from zero1to3.core import outputs
from zero1to3.model import builders
from zero1to3.sjc import reconstruction, system

DEFAULT_CFG = system.SJCConfig.from_dict(yaml.safe_load((REPO / "params.yaml").read_text())["sjc"]["config"])


def test_a_finished_reconstruction_is_reused_only_for_the_same_prior_and_input(tmp_path):
    """A retrained model (or another input view) reconstructs afresh; the same one is reused."""
    torch.set_num_threads(1)
    cfg = dataclasses.replace(DEFAULT_CFG, iterations=2, resolution=12, samples_per_ray=12)
    center = cameras.spherical_to_cartesian(math.radians(70.0), math.radians(30.0), 1.7)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (200, 40, 40, 255)
    mesh_file = outputs.mesh_path(tmp_path, "sjc", "box")
    settings = {"config": cfg.to_dict(), "seed": 0, "input_view": 0}
    prior = builders.build_dummy_components(seed=0, prediction_type="v_prediction")

    def reconstruct(model, image):
        return reconstruction.reconstruct_object(model, True, image, center, cfg, 0, mesh_file, settings)

    first = reconstruct(prior, rgba)
    reused = reconstruct(prior, rgba)
    assert reused["seconds"] == first["seconds"]  # reused: the same record
    assert first["resumed_from"] == 0 and reused["resumed_from"] == cfg.iterations  # as the returned records say
    assert "resumed_from" not in outputs.load_run_record(mesh_file.with_suffix(".json"))  # said, never written
    retrained = builders.build_dummy_components(seed=1, prediction_type="v_prediction")
    second = reconstruct(retrained, rgba)
    assert second["seconds"] != first["seconds"]
    assert second["identity"]["prior_fingerprint"] != first["identity"]["prior_fingerprint"]
    other_input = rgba.copy()
    other_input[8:24, 8:24, 0] = 40
    third = reconstruct(retrained, other_input)
    assert third["identity"]["input_sha256"] != second["identity"]["input_sha256"]


def _record(seconds, history_len=2, error=None):
    history = [{"iteration": i + 1, "loss": 1.0 / (i + 1), "loss_input": 0.5} for i in range(history_len)]
    return {"seconds": seconds, "history": history, "mesh_error": error}


def test_stage_metrics_summary_and_histories_count_every_object():
    records = {
        "sjc": {"duck": _record(10.0), "mug": _record(30.0, error="no surface")},
        "sjc_i": {"duck": _record(20.0), "mug": _record(20.0)},
    }
    cfg = dataclasses.replace(DEFAULT_CFG, iterations=2)
    metrics = reconstruction.stage_metrics(records, cfg)
    assert metrics == {
        "sjc/seconds_per_object": 20.0,
        "sjc_i/seconds_per_object": 20.0,
        "sjc/num_objects": 2,
        "sjc_i/num_objects": 2,
        "sjc/num_empty": 1,
        "sjc_i/num_empty": 0,
        "iterations": 2,
    }
    scores = {"sjc": {"duck": {"psnr": 20.0, "fg_psnr": 15.0}, "mug": {"psnr": 22.0, "fg_psnr": float("inf")}}}
    with_input = reconstruction.stage_metrics(records, cfg, scores)
    assert with_input["sjc/input_view_psnr"] == 21.0 and with_input["sjc/input_view_fg_psnr"] == 15.0  # inf left out
    assert reconstruction.input_view_lines({"sjc": {"duck": scores["sjc"]["duck"]}}) == (
        "- sjc: 20.0 dB PSNR, 15.0 dB foreground PSNR from the input camera (1 objects)"
    )
    lines = reconstruction.summary_lines(records).splitlines()
    assert lines == [
        "- sjc: 20 s per object (max 30 s), 1 without a surface",
        "- sjc_i: 20 s per object (max 20 s), 0 without a surface",
    ]
    curves = reconstruction.loss_histories(records, ["mug"])
    assert list(curves) == ["sjc mug", "sjc_i mug"] and [row["step"] for row in curves["sjc mug"]] == [1, 2]


def test_reuse_line_counts_finished_and_resumed_reconstructions():
    """`resumed_from`: all iterations (a finished reconstruction reused whole), some (a checkpoint) or none."""
    done = lambda resumed_from: _record(10.0) | {"resumed_from": resumed_from}  # noqa: E731
    records = {"sjc": {"duck": done(2), "mug": done(1)}, "sjc_i": {"duck": done(0), "mug": done(2)}}
    assert reconstruction.reuse_line(records, "data/sjc") == (
        "Reused from `data/sjc/`: 1 finished and 1 checkpointed of 2 sjc objects; 1 finished of 2 sjc_i objects."
    )
    fresh = {"sjc": {"duck": _record(10.0) | {"resumed_from": 0}}}
    assert reconstruction.reuse_line(fresh, "data/sjc") == "Reused: nothing; this run computed everything itself."


def test_unknown_methods_and_missing_fields_are_explained(tmp_path):
    with pytest.raises(ValueError, match="unknown reconstruction methods \\['nerf'\\]"):
        reconstruction.reconstruct_objects(
            {"nerf": builders.build_dummy_components()}, tmp_path, [], 0, DEFAULT_CFG, 0, tmp_path
        )
    with pytest.raises(FileNotFoundError, match="dvc repro sjc"):
        reconstruction.load_field(tmp_path / "duck.field.pt", DEFAULT_CFG, 4)


@pytest.mark.slow
def test_runs_in_two_workers_give_the_records_and_meshes_of_one_after_the_other(tmp_path):
    """`num_workers` 2 (a process per run, as stage 04 runs on two cores) computes exactly what one process does."""
    from test_outputs import _fake_render

    for oid in ("a", "bb"):
        _fake_render(tmp_path / "data", oid, size=32)
    cfg = dataclasses.replace(DEFAULT_CFG, iterations=3, resolution=12, samples_per_ray=12)
    priors = {
        "sjc": builders.build_dummy_components(seed=0, prediction_type="v_prediction"),
        "sjc_i": builders.build_dummy_components(seed=1, prediction_type="v_prediction"),
    }
    runs = {
        n: reconstruction.reconstruct_objects(
            priors, tmp_path / "data", ["a", "bb"], 0, cfg, 0, tmp_path / str(n), num_workers=n
        )
        for n in (1, 2)
    }
    for method in priors:
        assert list(runs[2][method]) == ["a", "bb"]
        for oid in ("a", "bb"):
            one, two = runs[1][method][oid], runs[2][method][oid]
            assert [r["loss"] for r in one["history"]] == [r["loss"] for r in two["history"]]
            assert one["identity"] == two["identity"]
            errors = [(r["mesh_error"] or "").replace(str(tmp_path / str(n)), "") for n, r in ((1, one), (2, two))]
            assert errors[0] == errors[1]  # the same message but for the folder it names
            fields = [(tmp_path / str(n) / method / f"{oid}.field.pt").read_bytes() for n in (1, 2)]
            assert fields[0] == fields[1]
    with pytest.raises(ValueError, match="num_workers"):
        reconstruction.reconstruct_objects(priors, tmp_path / "data", ["a"], 0, cfg, 0, tmp_path / "x", num_workers=0)
