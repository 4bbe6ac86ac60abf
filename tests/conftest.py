"""Shared fixtures. Runtime shape/type checking of every jaxtyping annotation in `zero1to3` is on
for the whole suite (the import hook must run before the package is imported)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from jaxtyping import install_import_hook  # noqa: E402

# is_pep484_tower: an int is accepted where a float is annotated (PEP 484's numeric tower).
install_import_hook("zero1to3", "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from zero1to3.config import RenderConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_render_cfg(tmp_path: Path) -> RenderConfig:
    """The smoke render settings, writing into a temporary folder."""
    values = yaml.safe_load((REPO / "tests" / "smoke_params.yaml").read_text())["render"]
    return RenderConfig.from_dict(values | {"data_dir": str(tmp_path / "data"), "results_dir": str(tmp_path / "res")})
