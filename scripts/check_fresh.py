"""Are the committed results made by the committed code? Compare dvc.lock with the files it recorded.

    python scripts/check_fresh.py          (make check-fresh)

`results/` and `dvc.lock` are committed together from one complete run. For every stage of dvc.yaml this checks
what a clone can check without the data and models (which it does not have): the command, each file dependency
that no stage writes (code, notebooks, docs) by its MD5 as DVC records it, the list of those dependencies, and the
stage's params group. Data and model dependencies are other stages' outputs: they are fresh when the stages
that write them are. Prints one line per stale stage naming what changed, and exits 1; exits 0 when every stage
matches.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]


def _load_yaml(path: Path) -> Any:
    """A YAML file read as DVC reads it: YAML 1.2 (ruamel.yaml), where `no` is a string and `1e-06` a number.

    PyYAML reads YAML 1.1, where the `no` and `1e-06` that DVC writes into dvc.lock become False and a string: every
    params group holding one would then look changed.
    """
    return YAML(typ="safe", pure=True).load(path.read_text())


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _outputs(stages: dict) -> set[str]:
    """Every path a stage writes (its outs and metrics), as dvc.yaml names them."""
    paths = set()
    for stage in stages.values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            paths.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    return paths


def _written_by_a_stage(path: str, outputs: set[str]) -> bool:
    return any(path == out or path.startswith(out.rstrip("/") + "/") for out in outputs)


def stale_stages(repo: Path = REPO) -> dict[str, list[str]]:
    """`{stage: [what changed, ...]}` for every stage whose recorded inputs differ from the files; {} when fresh."""
    stages = _load_yaml(repo / "dvc.yaml")["stages"]
    lock_path = repo / "dvc.lock"
    locked = _load_yaml(lock_path)["stages"] if lock_path.is_file() else {}
    params = _load_yaml(repo / "params.yaml")
    outputs = _outputs(stages)
    stale: dict[str, list[str]] = {}
    for name, stage in stages.items():
        reasons = []
        lock = locked.get(name)
        if lock is None:
            stale[name] = ["never run (not in dvc.lock)"]
            continue
        if lock.get("cmd") != stage["cmd"]:
            reasons.append(f"command {lock.get('cmd')!r} -> {stage['cmd']!r}")
        recorded = {dep["path"]: dep.get("md5") for dep in lock.get("deps", [])}
        declared = [dep for dep in stage.get("deps", []) if not _written_by_a_stage(dep, outputs)]
        for dep in declared:
            path = repo / dep
            if dep not in recorded:
                reasons.append(f"{dep} (new dependency)")
            elif not path.is_file():
                reasons.append(f"{dep} (missing)")
            elif _md5(path) != recorded[dep]:
                reasons.append(f"{dep} (changed)")
        for dep in sorted(set(recorded) - set(stage.get("deps", []))):
            reasons.append(f"{dep} (no longer a dependency)")
        for group in stage.get("params", []):
            if lock.get("params", {}).get("params.yaml", {}).get(group) != params.get(group):
                reasons.append(f"params.yaml group {group!r}")
        if reasons:
            stale[name] = reasons
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="repository root (default: this one)")
    args = parser.parse_args(argv)
    stale = stale_stages(args.repo)
    for name, reasons in stale.items():
        shown = ", ".join(reasons[:6]) + (f", and {len(reasons) - 6} more" if len(reasons) > 6 else "")
        print(f"stale: stage {name}: {shown}", file=sys.stderr)
    if stale:
        print(
            f"check-fresh: {len(stale)} stage(s) changed since dvc.lock was written ({', '.join(stale)}): "
            "rerun them (`dvc repro`) and commit results/ with dvc.lock",
            file=sys.stderr,
        )
        return 1
    print("check-fresh: every stage's code, notebooks and params match dvc.lock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
