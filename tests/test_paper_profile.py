"""Tests for the `paper` profile (profiles/paper.yaml) and its GPU benchmark (benchmarks/bench_paper_gpu.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zero1to3 import config, stages

REPO = Path(__file__).resolve().parents[1]
GPU_PROCESSES = 8  # the paper's 8 GPUs (docs/conventions.md#training-objective-and-recipe); the README says how to
# keep the batch with fewer


def test_the_paper_profile_fits_every_schema_and_writes_only_under_paper() -> None:
    paper = stages.load_params(REPO / "profiles" / "paper.yaml")  # merged over params.yaml
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    assert list(paper) == list(default)
    for stage, group in paper.items():
        config.stage_config(stage, group)
        assert set(group) == set(default[stage]), stage
        for key in ("data_dir", "models_dir", "results_dir"):
            if key in group:
                assert group[key].startswith("paper/"), f"{stage}.{key} = {group[key]} would touch the study's files"
    assert "/paper" in (REPO / ".gitignore").read_text().splitlines()


def test_the_paper_profile_is_the_papers_recipe() -> None:
    """docs/conventions.md#training-objective-and-recipe: the values a reproducer expects, each checked against the
    spec's number."""
    paper = stages.load_params(REPO / "profiles" / "paper.yaml")
    finetune = paper["finetune"]
    t = finetune["training"]
    assert finetune["scale"] == "paper" and finetune["seed"] == 42
    assert t["batch_size"] * t["gradient_accumulation_steps"] * GPU_PROCESSES == 1536  # 192 x 8 GPUs
    assert (t["prediction_type"], t["learning_rate"], t["cc_projection_lr_multiplier"]) == ("epsilon", 1e-4, 10.0)
    assert (t["weight_decay"], t["warmup_steps"], t["ema_decay"], t["cfg_dropout_prob"]) == (0.01, 100, 0.9999, 0.05)
    assert t["train_image_encoder"] is False and t["max_steps"] == 105000 and t["checkpoint_every"] == 5000
    assert paper["render"]["resolution_px"] == 256 and paper["render"]["num_views"] == 12
    assert paper["sample"]["sampler"] == {"ddim_steps": 50, "guidance_scale": 3.0, "eta": 1.0}


def test_the_paper_profile_writes_its_recipe_out_whole() -> None:
    """The overlay pins the paper's training recipe and sampler key by key, so a change to params.yaml's defaults
    cannot change them (and bench_paper_gpu.py, which reads the file as it is, finds them whole)."""
    overlay = yaml.safe_load((REPO / "profiles" / "paper.yaml").read_text())
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    assert overlay["extends"] == "../params.yaml"
    assert set(overlay["finetune"]["training"]) == set(default["finetune"]["training"])
    assert set(overlay["sample"]["sampler"]) == set(default["sample"]["sampler"])


@pytest.mark.slow
def test_the_gpu_benchmark_imports_only_what_a_bare_gpu_machine_has() -> None:
    """The GPU machine has torch, transformers, accelerate, safetensors, jaxtyping, numpy, pillow, tqdm, diffusers
    and pydantic (and their requirements), nothing of the study's evaluation, rendering or notebook stack. (scipy
    and torchvision are left out of the check: diffusers and transformers import them when they are installed.)"""
    absent = [
        "trimesh",
        "skimage",
        "open3d",
        "bpy",
        "papermill",
        "nbformat",
        "matplotlib",
        "lpips",
        "cleanfid",
        "pybullet",
        "dvc",
    ]
    code = (
        "import runpy, sys; runpy.run_path('benchmarks/bench_paper_gpu.py', run_name='bench');"
        f"print(sorted(m for m in {absent!r} if m in sys.modules));"
        "print(sorted(m for m in sys.modules if m.startswith('zero1to3.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded_absent, ours = result.stdout.strip().splitlines()[-2:]
    assert loaded_absent == "[]", result.stdout
    allowed = {
        "config",
        "stages",
        "core",
        "core.files",
        "core.progress",
        "core.repro",
        "model",
        "model.builders",
        "model.components",
        "model.conditioning",
        "model.encoders",
        "model.schedulers",
        "novel_views",
        "novel_views.sample",
    }  # each imports only the above
    assert set(ast.literal_eval(ours)) <= {f"zero1to3.{m}" for m in allowed}, ours
