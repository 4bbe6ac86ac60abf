"""Fingerprints of what a long computation consumed, so that a resumed or cached result is never stale.

A stage that resumes from checkpoints (stage 02) or reuses finished results (stage 04) stores the
fingerprint of its inputs beside them: the weights it started from, the data it read. A later run
computes the fingerprint of *its* inputs and reuses nothing whose fingerprint differs. A fingerprint
is the SHA-256 of the inputs' exact bytes (tensor dtypes, shapes and values; file names and
contents), so any change, even of one weight, gives another one.

That rule, "resume or reuse only what the same run saved", is `load_saved` (every resumable or cached
computation asks it) and `differences` (what the run's message names when it starts afresh).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


class Hasher:
    """An incremental SHA-256 over named parts: arrays, tensors, modules, files and JSON-able values."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def _tag(self, name: str, kind: str, meta: str = "") -> None:
        # Every part is framed by its name, kind and shape, so reordering or regrouping bytes changes the digest.
        self._sha.update(f"\0{name}\0{kind}\0{meta}\0".encode())

    def array(self, name: str, value: np.ndarray | torch.Tensor) -> Hasher:
        """Add an array's dtype, shape and values."""
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:  # numpy has no bfloat16; its bits are hashed as int16
                value = value.view(torch.int16)
            value = value.numpy()
        value = np.ascontiguousarray(value)
        self._tag(name, "array", f"{value.dtype.str}{value.shape}")
        self._sha.update(memoryview(value).cast("B"))
        return self

    def module(self, name: str, module: nn.Module) -> Hasher:
        """Add every tensor of a module's state dict (parameters and buffers), by key."""
        for key, tensor in module.state_dict().items():
            self.array(f"{name}.{key}", tensor)
        return self

    def value(self, name: str, value: Any) -> Hasher:
        """Add a JSON-serialisable value (configs, settings), with sorted keys."""
        self._tag(name, "json")
        self._sha.update(json.dumps(value, sort_keys=True, default=str).encode())
        return self

    def folder(self, name: str, folder: str | Path) -> Hasher:
        """Add every file under `folder` (relative path and bytes), in sorted order; hidden files are skipped."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"cannot fingerprint {folder}: not a folder")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder)
            if any(part.startswith(".") for part in relative.parts):
                continue
            self._tag(f"{name}/{relative.as_posix()}", "file")
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    self._sha.update(chunk)
        return self

    def hexdigest(self) -> str:
        """The fingerprint, as 64 hexadecimal digits."""
        return self._sha.hexdigest()


def modules_fingerprint(modules: dict[str, nn.Module], configs: dict[str, Any] | None = None) -> str:
    """Fingerprint of named modules' weights (and optional configs): what a model *is*."""
    hasher = Hasher()
    for name in sorted(modules):
        hasher.module(name, modules[name])
    for name in sorted(configs or {}):
        hasher.value(name, configs[name])
    return hasher.hexdigest()


def short(digest: str) -> str:
    """The first 12 digits, for messages."""
    return digest[:12]


def plain_config(config: Any) -> dict[str, Any]:
    """A module's config without the keys that name where or with which library version it was loaded."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in values.items() if not k.startswith("_") and k != "transformers_version"}


def components_fingerprint(components: Any) -> str:
    """Fingerprint of a `models.Zero123Components`: every network's weights and config, and the scheduler's.

    Two model folders with the same fingerprint sample identically (the VAE's latent scaling factor, set
    after its training, is part of its config, so it counts).
    """
    modules = components.modules()
    configs = {name: plain_config(m.config) for name, m in modules.items() if getattr(m, "config", None) is not None}
    configs["scheduler"] = plain_config(components.scheduler.config)
    return modules_fingerprint(modules, configs)


def load_saved(
    path: str | Path | None, load: Callable[[Path], dict[str, Any]], expected: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, bool]:
    """What an earlier run saved at `path`, and whether this run may resume from it or reuse it.

    The same run saved it when every key of `expected` (its identity, fingerprint, settings) holds the same value
    in the saved state. Returns `(state, True)` then; `(state, False)` when a value differs or is missing (another
    run's: the caller says why and starts afresh); `(None, False)` when there is no file (or `path` is None).
    `load` reads the file (`checkpoints.load`, a JSON reader).
    """
    if path is None or not Path(path).is_file():
        return None, False
    state = load(Path(path))
    return state, all(key in state and state[key] == value for key, value in expected.items())


def differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: Collection[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """`{key: (saved value, current value)}` of every key but `ignore` in which two identities or configs differ
    (a key one of them lacks counts as None), sorted by key: empty when they describe the same run."""
    keys = sorted(saved.keys() | current.keys())
    return {k: (saved.get(k), current.get(k)) for k in keys if k not in ignore and saved.get(k) != current.get(k)}
