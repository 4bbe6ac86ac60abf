"""Checkpoints of resumable runs (stage 02, stage 04): written atomically, pruned, found, loaded safely.

A run writes `<folder>/<prefix>_<NNNNNN>.pt` (zero-padded step, so names sort by step) through a temporary
file renamed into place, and keeps the newest `keep`: a write torn by a kill never leaves the run without
one. Loading uses `torch.load(weights_only=True)`, which admits tensors, generator states and plain
containers only: a file that would run code when unpickled is refused, never executed.

Checkpoints written by others' training code (the released zero123 `.ckpt`, PyTorch Lightning 1.x) also
pickle references to that code: Lightning before 1.5 keys its callback states by class, so the file names
`pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint`; hyper-parameters may be omegaconf objects;
the LR scheduler's state holds numpy arrays. `load_lightning` reads them still with torch's weights-only
unpickler, each such reference standing for an inert `ForeignObject` (no module is imported, no code from
the file runs, `pytorch_lightning` need not be installed), and refuses any other reference before reading.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from zero1to3.core import files

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


# Modules whose classes a training checkpoint may name, read as inert placeholders: Lightning (1.x and 2.x
# names) keys callback states by class; omegaconf holds hyper-parameters; `main` / `__main__` are the
# training script's callbacks; `ldm` the official model package; numpy and typing appear in scheduler and
# config state. None of them is imported: a name under them becomes a `ForeignObject` subclass.
INERT_MODULES = (
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "lightning_utilities",
    "omegaconf",
    "main",
    "__main__",
    "ldm",
    "numpy",
    "typing",
)
# Plain containers and scalars torch's weights-only unpickler does not admit by itself; calling them builds data.
PLAIN_GLOBALS = {
    f"builtins.{t.__name__}": t
    for t in (dict, list, tuple, set, frozenset, int, float, complex, bool, str, bytes, bytearray, slice, range)
}
PLAIN_GLOBALS["collections.defaultdict"] = collections.defaultdict


class ForeignObject:
    """An inert stand-in for a class or function a checkpoint names (`INERT_MODULES`); it runs nothing.

    Calling the stand-in class (pickle's REDUCE / NEWOBJ) records the arguments, pickle's BUILD records the state,
    and container-style filling records the items; `foreign_name` is the global the file named.
    """

    foreign_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> ForeignObject:
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items = args, kwargs, None, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # `__new__` kept the arguments

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def __repr__(self) -> str:
        return f"<inert {self.foreign_name}>"


def _stand_in(full_name: str) -> type[ForeignObject]:
    module, _, name = full_name.rpartition(".")
    return type(name or full_name, (ForeignObject,), {"foreign_name": full_name, "__module__": module or "?"})


def load_lightning(path: str | Path) -> dict[str, Any]:
    """A training checkpoint from other code (e.g. a released zero123 Lightning `.ckpt`), loaded safely.

    Tensors, storages and plain containers load as themselves; references to `INERT_MODULES` load as inert
    `ForeignObject`s; torch's weights-only unpickler does the reading, memory-mapped (a released file's
    optimizer states are never read into memory).

    Raises:
        pickle.UnpicklingError: the file names anything else (e.g. `os.system`, a planted object that would run
            code); the message names the file and every such global, and nothing of the file has been unpickled.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):  # torch's legacy format: the plain weights-only rules apply
        return torch.load(path, map_location="cpu", weights_only=True)
    names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    refused = sorted(n for n in names if n not in PLAIN_GLOBALS and n.split(".")[0] not in INERT_MODULES)
    if refused:
        raise pickle.UnpicklingError(
            f"refusing to load {path}: it names {refused}, which are neither tensors, plain containers nor classes "
            f"of a training framework ({', '.join(INERT_MODULES)}); loading them could run code from the file"
        )
    allowed = [(PLAIN_GLOBALS[n], n) if n in PLAIN_GLOBALS else (_stand_in(n), n) for n in names]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
