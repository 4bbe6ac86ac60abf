"""Stage entry point: `python -m zero1to3.stages <stage>` (what `dvc repro` calls) runs the stage's notebook by
papermill with its group of `params.yaml`, checked first.

This module is the only reader of `params.yaml` (the stage entry point, as `main()` in
iterative/example-get-started); every library function takes explicit arguments or a config. A profile
(`profiles/quick.yaml`) holds only what differs from `params.yaml`: it says `extends: ../params.yaml`, and
`load_params` merges it over that file before any group is checked. This module imports nothing beyond `config`
and `files`, so that dvc.yaml's stages depend on it and not on `cli.py`: an edit to a user command (`sample`,
`reconstruct`, `render --shard`) reruns no stage. `python -m zero1to3 run <stage>` is the same command
for users (`cli.py` hands it here). Torch is never imported: `run` only starts a kernel, and loading torch first
would add seconds to every stage's start for nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from zero1to3 import config
from zero1to3.core import files

# Stage name -> its notebook; one stage per notebook, in pipeline order.
STAGES = {
    "render": "01_render.ipynb",
    "finetune": "02_finetune.ipynb",
    "sample": "03_sample.ipynb",
    "sjc": "04_sjc.ipynb",
    "evaluate": "05_evaluate.ipynb",
}
KERNEL_NAME = "zero1to3"  # registered by the set-up (`make setup`), with HF_HUB_OFFLINE=1 in its environment
MANIFEST_NAME = "manifest.json"  # `data.MANIFEST_NAME`, which `run` cannot import: data.py loads torch
SAMPLES_DIR = "samples"  # `outputs.samples_path`: stage 03 writes `<data_dir>/samples/<set>.npz`


logger = logging.getLogger(__name__)


EXTENDS_KEY = "extends"  # in a profile: the complete params file it changes (`extends: ../params.yaml`)


def read_params(path: str | Path, stage: str) -> dict[str, Any]:
    """The `stage` group of a params file (an overlay merged over its base, `load_params`), checked against its
    schema (`config.stage_config`).

    Raises:
        FileNotFoundError: the file (or the file it extends) does not exist.
        config.ParamsError: malformed YAML (naming the file and line), a missing group, or a group that does not
            fit its schema (one line per problem, naming the file and `group.key`, the value and the rule).
    """
    path = Path(path)
    params = load_params(path)
    if stage not in params:
        raise config.ParamsError(f"params file {path} has no group {stage!r}; groups present: {sorted(params)}")
    try:
        config.stage_config(stage, params[stage])
    except config.ParamsError as err:
        raise config.ParamsError(f"{path}: {err}") from None
    return params[stage]


def load_params(path: str | Path) -> dict[str, Any]:
    """Every group of a params file, unchecked. A complete file (`params.yaml`) is returned as it is; an overlay
    (a profile: a file with an `extends: <base>` key) is merged over its base by `merge_params`.

    The base path is relative to the overlay's own folder (`profiles/quick.yaml` says `extends: ../params.yaml`)
    and must be a complete file: one level, no chains. An overlay may change only the base's groups, so a
    misspelt group is an error rather than a group nobody reads; a misspelt key inside a group is caught by the
    group's schema (`read_params`). The `extends` key never reaches a group, a schema or a notebook.

    Raises:
        FileNotFoundError: the file or its base does not exist.
        config.ParamsError: malformed YAML, a file that is not a mapping of groups, a base that is itself an
            overlay, or an overlay group its base lacks; each naming the file.
    """
    path = Path(path)
    params = _read_yaml(path)
    if EXTENDS_KEY not in params:
        return params
    overlay = dict(params)
    base_name = overlay.pop(EXTENDS_KEY)
    if not isinstance(base_name, str) or not base_name:
        raise config.ParamsError(f"{path}: {EXTENDS_KEY} must name the params file it changes, got {base_name!r}")
    base_path = path.parent / base_name
    base = _read_yaml(base_path)
    if EXTENDS_KEY in base:
        raise config.ParamsError(f"{path}: its base {base_path} is itself an overlay; extend a complete file")
    unknown = [group for group in overlay if group not in base]
    if unknown:
        raise config.ParamsError(f"{path}: unknown groups {unknown}; groups of {base_path}: {list(base)}")
    return merge_params(base, overlay)


def merge_params(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` over `base`, as JSON Merge Patch (RFC 7396): mappings merge key by key, a list or a scalar
    replaces the base's value whole, and a key set to null (`~`) is removed (how `sjc.objects_per_set` drops a
    set of the base's). A new mapping, shared with neither argument; keys keep the base's order, new keys follow.
    """
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            merged[key] = merge_params(base[key] if isinstance(base.get(key), dict) else {}, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    """A params file's mapping of groups (an empty file is an empty mapping)."""
    if not path.is_file():
        raise FileNotFoundError(f"params file {path} does not exist")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise config.ParamsError(f"{where}: malformed YAML: {problem}") from None
    if not isinstance(params, dict):
        raise config.ParamsError(f"{path}: must map stage names to groups, got {type(params).__name__}")
    return params


def run_stage(
    stage: str, params_path: str | Path, output_notebook: str | Path | None = None, execution_timeout: int | None = None
) -> Path:
    """Execute `notebooks/<NN_stage>.ipynb` by papermill with the stage's parameters.

    The executed copy (parameters injected, outputs kept) goes to `<results_dir>/notebooks/` of the stage's group
    (`results/notebooks/` for `params.yaml`) unless `output_notebook` says otherwise; the notebook runs with the
    repository root as working folder. Run with any params file but the repository's `params.yaml` (a profile such
    as `profiles/quick.yaml`), the executed notebook opens with a note naming that file (`mark_profile`).
    `execution_timeout` is the seconds one cell may run before the stage fails (None: no limit).
    """
    import papermill as pm
    from jupyter_client.kernelspec import KernelSpecManager

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {list(STAGES)}")
    parameters = read_params(params_path, stage)  # checked before anything starts or is written
    root = files.find_project_root()
    check_sets(stage, parameters, root)
    if KERNEL_NAME not in KernelSpecManager().find_kernel_specs():
        raise RuntimeError(f"Jupyter kernel {KERNEL_NAME!r} is not installed; run `make setup` first")
    source = root / "notebooks" / STAGES[stage]
    results_dir = root / parameters.get("results_dir", "results")
    output = Path(output_notebook) if output_notebook else results_dir / "notebooks" / STAGES[stage]
    output.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        source,
        output,
        parameters=parameters,
        kernel_name=KERNEL_NAME,
        cwd=str(root),
        log_output=True,
        execution_timeout=execution_timeout,
    )
    if Path(params_path).resolve() != (root / "params.yaml").resolve():
        mark_profile(output, Path(params_path))
    return output


def check_sets(stage: str, group: dict[str, Any], root: Path) -> None:
    """Check that the held-out sets a stage names exist, before its notebook starts.

    `sample.sets` and the keys of `sjc.objects_per_set` must be sets of stage 01's manifest (`val`, `test`,
    `zero_shot`, or a named evaluation set from `render.sources`); `evaluate.sets` must have been sampled by stage 03.
    Paths are relative to `root`, where the stages run.

    Raises:
        FileNotFoundError: the manifest does not exist (stage 01 has not run).
        config.ParamsError: a set the manifest (or stage 03's samples) lacks, naming it and the sets there are.
    """
    if stage in ("sample", "sjc"):
        names = group["sets"] if stage == "sample" else list(group["objects_per_set"])
        key = "sets" if stage == "sample" else "objects_per_set"
        manifest = Path(group["data_dir"]) / MANIFEST_NAME
        if not (root / manifest).is_file():
            raise FileNotFoundError(f"no dataset manifest at {manifest}; run stage 01 first (`dvc repro render`)")
        have = [name for name in json.loads((root / manifest).read_text())["split"] if name != "train"]
        unknown = [name for name in names if name not in have]
        if unknown:
            raise config.ParamsError(
                f"{stage}.{key}: {', '.join(map(repr, unknown))} not in {manifest}, whose held-out sets are "
                f"{', '.join(have)} (a named set comes from `render.sources`; rerun stage 01 after adding it)"
            )
    elif stage == "evaluate":
        samples = Path(group["data_dir"]) / SAMPLES_DIR
        have = sorted(p.stem for p in (root / samples).glob("*.npz"))
        unknown = [name for name in group["sets"] if name not in have]
        if unknown:
            raise config.ParamsError(
                f"evaluate.sets: {', '.join(map(repr, unknown))} not sampled: {samples} holds "
                f"{', '.join(have) or 'no samples'} (add the set to `sample.sets` and run stage 03)"
            )


def mark_profile(notebook: str | Path, params_path: Path) -> None:
    """Open an executed notebook with a note that it ran with `params_path`, not the study's `params.yaml`."""
    import nbformat  # here, not at the top: it costs the command line 3 s of start-up (jsonschema's checkers)

    nb = nbformat.read(notebook, as_version=4)
    note = nbformat.v4.new_markdown_cell(
        f"> **Run with `{params_path.as_posix()}`, not the study's `params.yaml`.** A different profile: its "
        "numbers are not the study's results (see the head of that file for what it changes)."
    )
    note.metadata["tags"] = ["profile-note"]
    nb.cells.insert(0, note)
    nbformat.write(nb, notebook)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `python -m zero1to3.stages` and of `python -m zero1to3 run`."""
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--output-notebook", default=None, help="where the executed notebook goes")


def run_command(args: argparse.Namespace) -> int:
    """Run the stage `args` name; a user's error (a missing file, a bad value) is one line and exit code 2."""
    try:
        out = run_stage(args.stage, args.params, args.output_notebook)  # checks the params before it starts
    except (FileNotFoundError, config.ParamsError) as err:  # what and where, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    logger.info("executed notebook written to %s", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zero1to3.stages", description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
