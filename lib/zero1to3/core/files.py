"""Paths and file writing shared by the stages: atomic writes, flat metrics JSON, the project root."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROJECT_MARKER = "dvc.yaml"


def find_project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) holding `dvc.yaml`.

    Notebooks call this so that they run the same from `notebooks/` in Jupyter and from the
    repository root under papermill.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder
    raise FileNotFoundError(f"no {PROJECT_MARKER} found in {here} or any folder above it; run from the repository")


def _umask() -> int:
    """The process's umask, read without changing it (Linux); elsewhere set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # os.umask can only be read by setting it: a brief window other threads could see
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a torn one.

    The file gets the permissions a plain `open(path, "wb")` would give it (0666 less the umask), not
    `mkstemp`'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Build a folder beside `path` and move it into place only when the block ends without error.

    Readers of `path` see the old folder or the complete new one, never a mix: a kill while the block
    runs leaves the old folder as it was (and a hidden `.<name>.*.tmp` folder, removed by the next call).
    Between the two renames that swap old and new there is an instant with no folder at `path`; a kill
    there leaves the old folder aside, and the next call puts it back before anything else.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in sorted(path.parent.glob(f".{path.name}.*.tmp")):  # left by a killed earlier call
        if not path.exists() and (stale / "old").is_dir():  # killed between the renames: the old one is valid
            os.replace(stale / "old", path)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        os.replace(path, old / "old")  # the old folder leaves `path` whole ...
    os.replace(tmp, path)  # ... and the new one arrives whole
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | Path) -> Any:
    """What `write_json_atomic` wrote to `path`."""
    return json.loads(Path(path).read_text())


def write_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Write a flat metrics file (`dvc metrics show` reads it): string keys, finite numbers only."""
    for key, value in metrics.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"metrics must be flat str -> number; got {key!r}: {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"metric {key!r} is not finite: {value}")
    write_json_atomic(path, metrics)
