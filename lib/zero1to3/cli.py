"""Command line: `python -m zero1to3 run <stage>` runs a stage's notebook; `sample` makes novel views.

`run` is the only reader of `params.yaml` (the stage entry point, as `main()` in
iterative/example-get-started); every library function takes explicit arguments or a config.
`sample IMAGE ...` generates the view of one image from a relative camera (stage 03's command);
its arguments and work live in `zero1to3.pipeline`, beside the pipeline they drive.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from zero1to3 import files

# Stage name -> its notebook; one stage per notebook, in pipeline order.
STAGES = {
    "render": "01_render.ipynb",
    "finetune": "02_finetune.ipynb",
    "sample": "03_sample.ipynb",
    "sjc": "04_sjc.ipynb",
    "evaluate": "05_evaluate.ipynb",
}
KERNEL_NAME = "zero1to3"  # registered by the set-up (`make setup`), with HF_HUB_OFFLINE=1 in its environment

logger = logging.getLogger(__name__)


def read_params(path: str | Path, stage: str) -> dict[str, Any]:
    """The `stage` group of a params file, checked against its schema (`config.validate_group`).

    Raises:
        FileNotFoundError: the file does not exist.
        config.ParamsError: malformed YAML (naming the file and line), a missing group, or a group that does not
            fit its schema (one line per problem, naming `group.key`, the value and the rule).
    """
    from zero1to3 import config

    path = Path(path)
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
    if stage not in params:
        raise config.ParamsError(f"params file {path} has no group {stage!r}; groups present: {sorted(params)}")
    try:
        config.validate_group(stage, params[stage])
    except config.ParamsError as err:
        raise config.ParamsError(f"{path}: {err}") from None
    return params[stage]


def run_stage(stage: str, params_path: str | Path, output_notebook: str | Path | None = None) -> Path:
    """Execute `notebooks/<NN_stage>.ipynb` by papermill with the stage's parameters.

    The executed copy (parameters injected, outputs kept) goes to `results/notebooks/` unless
    `output_notebook` says otherwise; the notebook runs with the repository root as working folder.
    """
    import papermill as pm
    from jupyter_client.kernelspec import KernelSpecManager

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {list(STAGES)}")
    parameters = read_params(params_path, stage)  # checked before anything starts or is written
    if KERNEL_NAME not in KernelSpecManager().find_kernel_specs():
        raise RuntimeError(f"Jupyter kernel {KERNEL_NAME!r} is not installed; run `make setup` first")
    root = files.find_project_root()
    source = root / "notebooks" / STAGES[stage]
    output = Path(output_notebook) if output_notebook else root / "results" / "notebooks" / STAGES[stage]
    output.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(source, output, parameters=parameters, kernel_name=KERNEL_NAME, cwd=str(root), log_output=True)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zero1to3", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one pipeline stage's notebook (what `dvc repro` calls)")
    run.add_argument("stage", choices=list(STAGES))
    run.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    run.add_argument("--output-notebook", default=None, help="where the executed notebook goes")
    sample = sub.add_parser("sample", help="generate novel views of one image (see `sample --help`)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sample"]:  # only this command loads torch and diffusers; `run` starts a kernel instead
        from zero1to3 import pipeline

        pipeline.add_sample_arguments(sample)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        from zero1to3.config import ParamsError

        try:
            out = run_stage(args.stage, args.params, args.output_notebook)  # checks the params before it starts
        except (FileNotFoundError, ParamsError) as err:  # a user's error: what and where, no traceback
            print(f"error: {err}", file=sys.stderr)
            return 2
        logger.info("executed notebook written to %s", out)
    elif args.command == "sample":
        from zero1to3 import pipeline

        return pipeline.sample_command(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
