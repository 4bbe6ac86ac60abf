"""Command line: `python -m zero1to3 run <stage>` runs a stage's notebook with its `params.yaml` group.

This is the only module that reads `params.yaml` (the stage entry point, as `main()` in
iterative/example-get-started); every library function takes explicit arguments or a config.
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
}
KERNEL_NAME = "zero1to3"  # registered by the set-up (`make setup`), with HF_HUB_OFFLINE=1 in its environment

logger = logging.getLogger(__name__)


def read_params(path: str | Path, stage: str) -> dict[str, Any]:
    """The `stage` group of a params file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params file {path} does not exist")
    params = yaml.safe_load(path.read_text()) or {}
    if stage not in params:
        raise ValueError(f"params file {path} has no group {stage!r}; groups present: {sorted(params)}")
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
    if KERNEL_NAME not in KernelSpecManager().find_kernel_specs():
        raise RuntimeError(f"Jupyter kernel {KERNEL_NAME!r} is not installed; run `make setup` first")
    root = files.find_project_root()
    parameters = read_params(params_path, stage)
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        out = run_stage(args.stage, args.params, args.output_notebook)
        logger.info("executed notebook written to %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
