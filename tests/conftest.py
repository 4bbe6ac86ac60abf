"""Shared fixtures. Runtime shape/type checking of every jaxtyping annotation in `zero1to3` is on
for the whole suite (the import hook must run before the package is imported)."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from jaxtyping import install_import_hook  # noqa: E402

# is_pep484_tower: an int is accepted where a float is annotated (PEP 484's numeric tower).
install_import_hook("zero1to3", "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))")

import importlib.util  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from zero1to3 import stages  # noqa: E402
from zero1to3.config import RenderConfig  # noqa: E402

if TYPE_CHECKING:
    import torch

    from zero1to3.model.components import Zero123Components

REPO = Path(__file__).resolve().parents[1]

# Tests mirror the package's folders, and a test module may share a helper by name (`from test_objects import
# make_example_meshes`): every folder of tests/ is on the path before collection, whatever order it runs in.
sys.path[:0] = [
    str(folder) for folder in sorted((REPO / "tests").iterdir()) if folder.is_dir() and folder.name[0] != "_"
]


def load_script(relative: str) -> ModuleType:
    """A script of the repository (under `scripts/` or `benchmarks/`, which are not packages), imported by path."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_render_cfg(tmp_path: Path) -> RenderConfig:
    """The smoke render settings, writing into a temporary folder."""
    values = stages.load_params(REPO / "tests" / "smoke_params.yaml")["render"]  # the overlay over params.yaml
    return RenderConfig.from_dict(values | {"data_dir": str(tmp_path / "data"), "results_dir": str(tmp_path / "res")})


def _weights(components: Zero123Components) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value for name, m in components.modules().items() for key, value in m.state_dict().items()}


def _shared_dummy_components(prediction_type: str) -> Iterator[Zero123Components]:
    """Build the dummy model once; on teardown, fail if a test changed a weight or a network's train/eval mode."""
    from zero1to3.model import builders  # here, not at the top: tests that need no model do not pay for torch/diffusers

    components = builders.build_dummy_components(seed=0, prediction_type=prediction_type)
    before = {key: value.clone() for key, value in _weights(components).items()}
    yield components
    after = _weights(components)
    changed = [key for key, value in before.items() if not value.equal(after[key])]
    training = [name for name, module in components.modules().items() if module.training]
    assert not changed and not training, (
        f"a test changed the shared dummy model ({prediction_type}) in place: weights {changed[:5]}, in train mode "
        f"{training}; work on a copy (copy.deepcopy) or build a fresh one (builders.build_dummy_components)"
    )


@pytest.fixture(scope="session")
def dummy_components() -> Iterator[Zero123Components]:
    """The tiny seeded dummy model (32 px images, 8x8x4 latents, seed 0) with a v-prediction scheduler, as the study
    trains it. Built once per session (per xdist worker) and shared: tests must not change it in place (checked on
    teardown); one that trains or edits weights builds its own."""
    yield from _shared_dummy_components("v_prediction")


@pytest.fixture(scope="session")
def dummy_components_epsilon() -> Iterator[Zero123Components]:
    """The same dummy model with an epsilon-prediction scheduler (`build_dummy_components`'s default); shared and
    checked like `dummy_components`."""
    yield from _shared_dummy_components("epsilon")


@pytest.fixture
def dummy_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Two seeded input images (2, 3, 32, 32) in [-1, 1] and two relative poses (2, 4) for the dummy model."""
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.randn(2, 4, generator=g)


@pytest.fixture(scope="session")
def red_disc_rgba() -> np.ndarray:
    """A red disc (radius 10 px) centred on a transparent 32x32 background: an input view at the dummy model's size.
    Read-only, as it is shared by the whole session."""
    v, u = np.mgrid[:32, :32]
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[(u - 15.5) ** 2 + (v - 15.5) ** 2 < 10**2] = (200, 40, 40, 255)
    rgba.flags.writeable = False
    return rgba


def disc_rgba(size: int = 48) -> Image.Image:
    """A red disc, off centre, on a transparent background."""
    yy, xx = np.mgrid[:size, :size]
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[(yy - 20) ** 2 + (xx - 26) ** 2 <= 100] = (200, 30, 30, 255)
    return Image.fromarray(rgba, "RGBA")
