"""Reproducibility helpers: the environment a result was produced in (`env.json`)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

# Packages whose versions change results; recorded beside every stage's outputs.
TRACKED_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "bpy",
    "diffusers",
    "transformers",
    "accelerate",
    "trimesh",
    "open3d-cpu",
    "scikit-image",
    "lpips",
    "clean-fid",
    "pybullet",
)


def environment_info(repo: str | Path | None = None) -> dict[str, Any]:
    """Package versions, Python, platform, CPU/GPU and the git commit of `repo` (default: cwd)."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=repo,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    gpu, capability = None, None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
        # The vector instruction set torch's CPU kernels chose (e.g. AVX2, AVX512): machines that differ here
        # round differently, so trained weights and metrics differ in their last digits.
        capability = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_cpu_capability": capability,
        "gpu": gpu,
        "git_commit": commit,
        "git_dirty": dirty,
        "packages": versions,
    }


def _cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
