"""The training loop on tiny components: real steps, resume equals uninterrupted, failures stop loudly."""

import dataclasses

import numpy as np
import pytest
import torch

from zero1to3 import cameras
from zero1to3.config import FinetuneConfig
from zero1to3.dataset import data
from zero1to3.model import autoencoder, builders, schedulers
from zero1to3.model.components import Zero123Components
from zero1to3.novel_views import diagnostics, train

torch.set_num_threads(1)


def fake_views(num_objects=3, num_views=4, size=32, seed=0) -> data.MultiViewSet:
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, size=(num_objects, num_views, size, size, 4), dtype=np.uint8)
    centers = cameras.sample_camera_positions(num_objects * num_views, rng).reshape(num_objects, num_views, 3)
    return data.MultiViewSet([f"o{i}" for i in range(num_objects)], rgba, centers)


def tiny_cfg(**overrides) -> FinetuneConfig:
    values = dict(
        seed=0,
        use_pose=True,
        prediction_type="v_prediction",
        batch_size=4,
        gradient_accumulation_steps=1,
        max_steps=4,
        learning_rate=1e-3,
        cc_projection_lr_multiplier=10.0,
        weight_decay=0.01,
        warmup_steps=2,
        max_grad_norm=1.0,
        ema_decay=0.9,
        cfg_dropout_prob=0.05,
        train_image_encoder=True,
        checkpoint_every=2,
        mixed_precision="no",
    )
    return FinetuneConfig(**(values | overrides))


def _fresh():
    """A new dummy model, as conftest's `dummy_components` but not shared: `train.fit` changes its weights in place."""
    return builders.build_dummy_components(seed=0, prediction_type="v_prediction")


@pytest.fixture
def setup():
    components = _fresh()
    views = fake_views()
    return components, views, autoencoder.encode_views(components.vae, views)


def weights(components):
    return {f"{n}.{k}": v.clone() for n, m in components.modules().items() for k, v in m.state_dict().items()}


def test_two_real_steps_change_the_trained_weights_only(setup, tmp_path):
    components, views, latents = setup
    before = weights(components)
    result = train.fit(components, views, latents, tiny_cfg(max_steps=2), tmp_path, progress=False)
    after = weights(result.components)
    assert [row["step"] for row in result.history] == [1, 2]
    assert all(np.isfinite(row["loss"]) for row in result.history)
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"unet", "image_encoder", "cc_projection"}  # the VAE stays frozen
    loaded = Zero123Components.load_pretrained(tmp_path / "model")
    for k, v in weights(loaded).items():
        assert torch.equal(v, after[k]), k


def test_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(setup, tmp_path):
    components, views, latents = setup
    cfg = tiny_cfg(max_steps=4, checkpoint_every=2)
    straight = train.fit(_fresh(), views, latents, cfg, tmp_path / "a", progress=False)

    def killed_at(components, step):
        raise KeyboardInterrupt(f"simulated kill after the checkpoint of step {step}")

    with pytest.raises(KeyboardInterrupt):
        train.fit(_fresh(), views, latents, cfg, tmp_path / "b", progress=False, on_checkpoint=killed_at)
    assert train.latest_checkpoint(tmp_path / "b").name == "step_000002.pt"
    resumed = train.fit(_fresh(), views, latents, cfg, tmp_path / "b", progress=False)
    assert resumed.resumed_from_step == 2
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    a, b = weights(straight.components), weights(resumed.components)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    finished = train.fit(_fresh(), views, latents, cfg, tmp_path / "b", progress=False)  # nothing left to train
    assert finished.resumed_from_step == 4 and len(finished.history) == 4
    runs = {"the model": resumed, "the baseline": finished, "a fresh run": straight}
    assert train.reuse_line("models/finetune", True, runs) == (  # the notebook's one line on what it reused
        "Reused from `models/finetune/`: the VAE; the model (resumed at step 2 of 4); "
        "the baseline (finished run, 4 steps)."
    )
    assert train.reuse_line("models/finetune", False, {"a fresh run": straight}).startswith("Reused: nothing")


def test_a_checkpoint_with_other_settings_starts_afresh(setup, tmp_path, caplog):
    components, views, latents = setup
    train.fit(components, views, latents, tiny_cfg(max_steps=2), tmp_path / "b", progress=False)
    cfg = tiny_cfg(max_steps=2, learning_rate=5e-4)
    with caplog.at_level("WARNING", logger="zero1to3"):
        again = train.fit(_fresh(), views, latents, cfg, tmp_path / "b", progress=False)
    assert again.resumed_from_step == 0
    assert any("other settings" in r.message and "learning_rate" in r.message for r in caplog.records)
    straight = train.fit(_fresh(), views, latents, cfg, tmp_path / "a", progress=False)
    assert [r["loss"] for r in again.history] == [r["loss"] for r in straight.history]


@pytest.mark.parametrize("change", ["vae", "views", "sizes"])
def test_checkpoints_made_from_other_inputs_are_never_resumed(setup, tmp_path, caplog, change):
    """A changed VAE (e.g. `vae.steps`), changed renders or changed model sizes, same settings."""
    components, views, latents = setup
    cfg = tiny_cfg(max_steps=2)
    train.fit(components, views, latents, cfg, tmp_path, progress=False)
    other = _fresh()
    if change == "vae":  # a VAE trained differently: other weights, hence other latents
        with torch.no_grad():
            next(other.vae.parameters()).add_(0.01)
        latents = autoencoder.encode_views(other.vae, views)
    elif change == "views":
        views = fake_views(seed=1)
        latents = autoencoder.encode_views(other.vae, views)
    else:  # other model sizes: a size mismatch would have been a bare load_state_dict error
        sizes = dataclasses.replace(builders.DUMMY_SIZES, clip_hidden_size=64)
        other = builders.build_tiny_components(sizes, seed=0, prediction_type="v_prediction")
    untrained = copy_of(other)  # fit trains in place
    with caplog.at_level("WARNING", logger="zero1to3"):
        result = train.fit(other, views, latents, cfg, tmp_path, progress=False)
    assert result.resumed_from_step == 0 and len(result.history) == 2
    assert sum("other inputs" in r.message and "starting afresh" in r.message for r in caplog.records) == 1
    straight = train.fit(untrained, views, latents, cfg, tmp_path / "straight", progress=False)
    assert [r["loss"] for r in result.history] == [r["loss"] for r in straight.history]


def copy_of(components):
    import copy

    return copy.deepcopy(components)


def test_the_model_folder_records_its_inputs_and_camera_range(setup, tmp_path):
    import json

    components, views, latents = setup
    train.fit(components, views, latents, tiny_cfg(max_steps=2), tmp_path, progress=False)
    record = json.loads((tmp_path / "model" / train.TRAINING_RECORD).read_text())
    radii = np.linalg.norm(views.camera_centers, axis=-1)
    assert record["camera_radius"] == pytest.approx([radii.min(), radii.max()])
    assert len(record["inputs_fingerprint"]) == 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the atomic folder left no temp behind


def test_a_finished_run_resumed_at_its_end_leaves_the_model_folder_as_it_was(setup, tmp_path):
    """A code change that retrains nothing (stage 02 resumes from its last checkpoint) must not change the model
    folder's bytes: its hash is stages 03-05's dependency. The checkpoint's last timing is not the run's."""
    components, views, latents = setup
    first = train.fit(components, views, latents, tiny_cfg(max_steps=2), tmp_path, progress=False)

    def folder_bytes():
        return {p.name: p.read_bytes() for p in sorted((tmp_path / "model").rglob("*")) if p.is_file()}

    before = folder_bytes()
    again = train.fit(_fresh(), views, latents, tiny_cfg(max_steps=2), tmp_path, progress=False)
    assert again.resumed_from_step == 2
    assert folder_bytes() == before and again.history == first.history
    assert all(torch.equal(v, weights(first.components)[k]) for k, v in weights(again.components).items())
    record = tmp_path / "model" / train.TRAINING_RECORD
    record.write_text(record.read_text().replace('"step": 1,', '"step": 7,'))  # not this run's any more
    train.fit(_fresh(), views, latents, tiny_cfg(max_steps=2), tmp_path, progress=False)
    assert b'"step": 7,' not in record.read_bytes()  # written again


def test_a_planted_pickle_checkpoint_is_refused(setup, tmp_path):
    """Resume loads the newest step_*.pt with weights_only=True; its code never runs."""
    components, views, latents = setup
    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # unpickling creates a file: stands in for a shell command

    (tmp_path / "checkpoints").mkdir()
    torch.save({"step": 1, "payload": RunsCode()}, tmp_path / "checkpoints" / "step_999999.pt")
    with pytest.raises(Exception, match="step_999999.pt"):
        train.fit(components, views, latents, tiny_cfg(max_steps=2), tmp_path, progress=False)
    assert not marker.exists()


def test_a_finished_run_can_be_extended(setup, tmp_path):
    components, views, latents = setup
    straight = train.fit(_fresh(), views, latents, tiny_cfg(max_steps=4), tmp_path / "a", progress=False)
    train.fit(_fresh(), views, latents, tiny_cfg(max_steps=2), tmp_path / "b", progress=False)
    extended = train.fit(_fresh(), views, latents, tiny_cfg(max_steps=4), tmp_path / "b", progress=False)
    assert extended.resumed_from_step == 2
    assert [r["loss"] for r in extended.history] == [r["loss"] for r in straight.history]
    shorter = train.fit(_fresh(), views, latents, tiny_cfg(max_steps=1), tmp_path / "b", progress=False)
    assert shorter.resumed_from_step == 0  # a checkpoint past max_steps is not resumed: the run starts afresh


def test_non_finite_loss_stops_and_names_the_step(setup, tmp_path, monkeypatch):
    components, views, latents = setup
    real_step = train.training_step
    calls = {"n": 0}

    def nan_on_third(*args, **kwargs):
        calls["n"] += 1
        out = real_step(*args, **kwargs)
        return {"loss_diffusion": out["loss_diffusion"] * float("nan")} if calls["n"] == 3 else out

    monkeypatch.setattr(train, "training_step", nan_on_third)
    with pytest.raises(FloatingPointError, match="at step 3"):
        train.fit(components, views, latents, tiny_cfg(max_steps=4), tmp_path, progress=False)


def test_no_pose_baseline_ignores_the_pose(setup):
    components, views, latents = setup
    cfg = tiny_cfg(use_pose=False)
    batch = data.sample_pairs(views, 4, torch.Generator().manual_seed(0))
    other = dataclasses.replace(batch, pose=torch.randn(4, 4))
    with torch.no_grad():
        a = train.training_step(components, batch, latents, cfg, torch.Generator().manual_seed(1))
        b = train.training_step(components, other, latents, cfg, torch.Generator().manual_seed(1))
        c = train.training_step(components, other, latents, tiny_cfg(), torch.Generator().manual_seed(1))
    assert torch.equal(a["loss_diffusion"], b["loss_diffusion"])
    assert not torch.equal(a["loss_diffusion"], c["loss_diffusion"])  # with pose, the pose matters


def test_targets_follow_the_prediction_type(setup):
    components, views, latents = setup
    batch = data.sample_pairs(views, 4, torch.Generator().manual_seed(0))
    losses = {}
    with torch.no_grad():
        for kind in schedulers.PREDICTION_TYPES:
            cfg = tiny_cfg(prediction_type=kind)
            losses[kind] = train.training_step(components, batch, latents, cfg, torch.Generator().manual_seed(1))
    assert len({v["loss_diffusion"].item() for v in losses.values()}) == 3
    with pytest.raises(ValueError, match="prediction_type"):
        train.training_step(components, batch, latents, tiny_cfg(prediction_type="x0"), torch.Generator())


def _previews(views, use_pose=True, cls=None):
    """Checkpoint previews of two fixed pairs of `views` (the same pairs every call)."""
    batch = data.sample_pairs(views, 2, torch.Generator().manual_seed(0))
    cls = cls or diagnostics.CheckpointPreviews
    return cls(batch.input_images, batch.pose, num_steps=2, guidance_scale=3.0, seed=0, use_pose=use_pose)


def test_a_resumed_run_keeps_what_the_checkpoint_callback_drew_before_the_kill(setup, tmp_path, monkeypatch):
    """Previews drawn at checkpoints before a kill are restored on resume (stage 02's figure covers the whole run)."""
    components, views, latents = setup
    cfg = tiny_cfg(max_steps=4, checkpoint_every=2)

    straight = _previews(views)
    train.fit(_fresh(), views, latents, cfg, tmp_path / "a", progress=False, on_checkpoint=straight)

    first = _previews(views)
    real_save = train._save_callback_state

    def save_then_die(out_dir, step, state):
        real_save(out_dir, step, state)
        raise KeyboardInterrupt(f"simulated kill after the checkpoint of step {step}")

    monkeypatch.setattr(train, "_save_callback_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train.fit(_fresh(), views, latents, cfg, tmp_path / "b", progress=False, on_checkpoint=first)
    monkeypatch.setattr(train, "_save_callback_state", real_save)
    resumed_previews = _previews(views)
    resumed = train.fit(_fresh(), views, latents, cfg, tmp_path / "b", progress=False, on_checkpoint=resumed_previews)
    assert resumed.resumed_from_step == 2
    assert sorted(resumed_previews.images) == sorted(straight.images) == [2, 4]
    for step in (2, 4):
        np.testing.assert_array_equal(resumed_previews.images[step], straight.images[step])
    assert train.run_seconds(resumed.history) >= sum(r["seconds"] for r in resumed.history[2:])


def test_a_kill_between_a_checkpoint_and_its_callback_runs_the_callback_again_on_resume(setup, tmp_path, monkeypatch):
    """Killed after the last checkpoint was saved but before its previews were: the resumed run (which has no step
    left to train) draws them, from the restored EMA weights, and ends as the uninterrupted run ended."""
    components, views, latents = setup
    cfg = tiny_cfg(max_steps=4, checkpoint_every=2)

    straight = _previews(views)
    train.fit(_fresh(), views, latents, cfg, tmp_path / "a", progress=False, on_checkpoint=straight)

    class DiesAtStep4(diagnostics.CheckpointPreviews):
        def __call__(self, components, step):
            if step == 4:
                raise KeyboardInterrupt("simulated kill in the callback of step 4")
            super().__call__(components, step)

    dies = _previews(views, cls=DiesAtStep4)
    with pytest.raises(KeyboardInterrupt):
        train.fit(_fresh(), views, latents, cfg, tmp_path / "b", progress=False, on_checkpoint=dies)
    assert train.latest_checkpoint(tmp_path / "b").name.endswith("000004.pt")  # the checkpoint was saved
    resumed_previews = _previews(views)
    resumed = train.fit(_fresh(), views, latents, cfg, tmp_path / "b", progress=False, on_checkpoint=resumed_previews)
    assert resumed.resumed_from_step == 4
    assert sorted(resumed_previews.images) == [2, 4]
    for step in (2, 4):
        np.testing.assert_array_equal(resumed_previews.images[step], straight.images[step])
    again = _previews(views)  # the state of step 4 is saved now: a second resume restores it without drawing
    monkeypatch.setattr(diagnostics.CheckpointPreviews, "__call__", lambda *a: pytest.fail("drew again"))
    train.fit(_fresh(), views, latents, cfg, tmp_path / "b", progress=False, on_checkpoint=again)
    assert sorted(again.images) == [2, 4]


@pytest.mark.slow
def test_side_by_side_runs_end_as_each_run_alone_with_the_same_threads(setup, tmp_path):
    """`fit_side_by_side` with two workers: each run (its weights, losses, checkpoint previews) equals `fit` of the
    same job alone with the worker's thread count; the previews come back into the caller's callbacks."""
    import os

    _, views, latents = setup

    cfgs = {"pose": tiny_cfg(), "no_pose": tiny_cfg(use_pose=False)}
    jobs = {
        name: train.FitJob(_fresh(), views, latents, cfg, tmp_path / "side" / name, _previews(views, cfg.use_pose))
        for name, cfg in cfgs.items()
    }
    side = train.fit_side_by_side(jobs, num_workers=2, progress=False)
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        for name, cfg in cfgs.items():
            watch = _previews(views, cfg.use_pose)
            alone = train.fit(_fresh(), views, latents, cfg, tmp_path / "alone" / name, False, watch)
            assert [r["loss"] for r in side[name].history] == [r["loss"] for r in alone.history]
            got, want = weights(side[name].components), weights(alone.components)
            assert all(torch.equal(got[k], want[k]) for k in want), name
            assert sorted(jobs[name].on_checkpoint.images) == [2, 4]
            for step in (2, 4):
                np.testing.assert_array_equal(jobs[name].on_checkpoint.images[step], watch.images[step])
            assert (tmp_path / "side" / name / train.MODEL_DIR / train.TRAINING_RECORD).is_file()
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_a_failing_side_by_side_run_raises_its_error(setup, tmp_path):
    _, views, latents = setup
    bad = tiny_cfg(prediction_type="epsilon")  # the components predict v: `fit` refuses
    jobs = {
        "ok": train.FitJob(_fresh(), views, latents, tiny_cfg(max_steps=2), tmp_path / "ok"),
        "bad": train.FitJob(_fresh(), views, latents, bad, tmp_path / "bad"),
    }
    with pytest.raises(ValueError, match="prediction_type"):
        train.fit_side_by_side(jobs, num_workers=2, progress=False)
    with pytest.raises(ValueError, match="num_workers"):
        train.fit_side_by_side(jobs, num_workers=0)
