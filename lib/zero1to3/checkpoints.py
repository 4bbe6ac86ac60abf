"""Checkpoints of resumable runs (stage 02, stage 04): written atomically, pruned, found, loaded safely.

A run writes `<folder>/<prefix>_<NNNNNN>.pt` (zero-padded step, so names sort by step) through a temporary
file renamed into place, and keeps the newest `keep`: a write torn by a kill never leaves the run without
one. Loading uses `torch.load(weights_only=True)`, which admits tensors, generator states and plain
containers only: a file that would run code when unpickled is refused, never executed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from zero1to3 import files

KEEP = 2  # the newest two: a write torn by a kill never leaves the run without one


def path_for(folder: str | Path, prefix: str, step: int) -> Path:
    """Where the checkpoint of `step` goes."""
    return Path(folder) / f"{prefix}_{step:06d}.pt"


def write(path: str | Path, state: dict[str, Any]) -> None:
    """Save `state` to `path` atomically (readers see the old file or the new one)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    files.write_bytes_atomic(path, buffer.getvalue())


def save(folder: str | Path, prefix: str, step: int, state: dict[str, Any], keep: int = KEEP) -> Path:
    """Write the checkpoint of `step` and remove all but the newest `keep` of this prefix."""
    path = path_for(folder, prefix, step)
    write(path, state)
    for old in sorted(Path(folder).glob(f"{prefix}_*.pt"))[:-keep]:
        old.unlink()
    return path


def latest(folder: str | Path, prefix: str) -> Path | None:
    """The newest `<prefix>_NNNNNN.pt` in `folder`, if any."""
    found = sorted(Path(folder).glob(f"{prefix}_*.pt"))
    return found[-1] if found else None


def remove(folder: str | Path, prefix: str) -> None:
    """Remove every checkpoint of this prefix (a run that starts afresh)."""
    for stale in Path(folder).glob(f"{prefix}_*.pt"):
        stale.unlink()


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint's state, loaded safely: tensors and plain containers only (`weights_only=True`).

    Raises:
        pickle.UnpicklingError: the file holds anything else (e.g. a planted pickle that would run code);
            the message names the file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(
            f"refusing to load {path}: it is not a plain checkpoint of tensors and containers ({err}); "
            f"checkpoints are only ever written by this code, so delete the file if you did not put it there"
        ) from err
