"""Time per stage of the last complete study, from the executed notebooks papermill wrote.

`dvc repro` runs each stage's notebook by papermill, which records the start, end and duration of
the run and of every cell in the executed copy under `results/notebooks/`. This script reads them
(nothing is rerun), prints the time per stage and the total, checks the study's 90-minute budget and
writes `results/benchmarks/study.json`. The slowest cells show where the time goes. A stage that reused work of an
earlier run (its notebook's "Reused: ..." line: renders, a resumed training, finished reconstructions) is named,
and then the total does not measure the budget (`within_budget` is null): only a study run from nothing does.

Machines of one kind differ up to 3x in speed, so the script also times a fixed reference workload on this machine
(`reference_seconds`: 50 bare fp32 training steps of the default UNet, image encoder and pose projection at the
default batch, on one thread) and gives the study's time in units of it. Run it right after the study, on the same
idle machine: two machines' studies compare by `study_in_reference_units`, not by minutes.

    python benchmarks/bench_study.py [--notebooks results/notebooks] [--out results/benchmarks/study.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import nbformat
import torch

import bench_train
from zero1to3 import stages
from zero1to3.config import FinetuneConfig
from zero1to3.core import files, progress
from zero1to3.novel_views import train

BUDGET_MINUTES = 60.0  # the default study from nothing on an idle 2-core machine (README)
AIM_MINUTES = 45.0
REFERENCE_STEPS = 50  # timed steps of the reference workload
REFERENCE_WARMUP = 5  # steps run first and not timed (oneDNN kernel selection, allocator)


NOTHING_REUSED = progress.reuse_line([])  # a notebook's line when its stage computed everything itself


def reuse_note(nb: nbformat.NotebookNode) -> str | None:
    """The line a stage's notebook printed on what it took over from an earlier run (`progress.reuse_line`)."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text") or "".join(output.get("data", {}).get("text/markdown", ""))
            for line in text.splitlines():
                if line.startswith("Reused"):
                    return line.strip()
    return None


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), or "unknown"."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def stage_times(folder: Path) -> dict[str, dict]:
    """Per stage: minutes, start and end, and its three slowest cells (first line, seconds)."""
    out = {}
    for stage, name in stages.STAGES.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run the whole study first (`make study`)")
        nb = nbformat.read(path, as_version=4)
        meta = nb.metadata.get("papermill", {})
        if meta.get("exception"):
            raise RuntimeError(f"{path} records a failed run; its times do not describe a complete study")
        if meta.get("duration") is None:
            raise RuntimeError(f"{path} records a run that has not finished (or is running now): no time to report")
        cells = [
            (c.source.splitlines()[0][:60] if c.source else "", c.metadata.get("papermill", {}).get("duration"))
            for c in nb.cells
            if c.cell_type == "code"
        ]
        slowest = sorted((c for c in cells if c[1] is not None), key=lambda c: -c[1])[:3]
        reused = reuse_note(nb)
        out[stage] = {
            "reused": None if reused in (None, NOTHING_REUSED) else reused,
            "minutes": round(meta["duration"] / 60.0, 2),
            "start": meta["start_time"],
            "end": meta["end_time"],
            "slowest_cells": [{"cell": src, "seconds": round(sec, 1)} for src, sec in slowest],
        }
    return out


def reference_seconds(params: str = "params.yaml", steps: int = REFERENCE_STEPS) -> float:
    """Seconds of `steps` bare fp32 training steps of the default tiny UNet, image encoder and pose projection at the
    default batch, on one thread (`bench_train.bare_steps`: random tensors, AdamW), after a warm-up. The same work
    on any machine: the unit in which two machines' studies compare."""
    group = stages.load_params(params)["finetune"]
    cfg = FinetuneConfig.from_dict(group["training"] | {"seed": 0, "use_pose": True})
    components = train.build_components("tiny", group["tiny_model"], "", cfg.prediction_type, 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = bench_train.bare_steps(components, cfg, REFERENCE_WARMUP + steps)
    finally:
        torch.set_num_threads(threads)
    return sum(times[REFERENCE_WARMUP:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", default="results/notebooks")
    parser.add_argument("--out", default="results/benchmarks/study.json")
    parser.add_argument("--params", default="params.yaml", help="the defaults the reference workload is built from")
    args = parser.parse_args()
    stages = stage_times(Path(args.notebooks))
    total = round(sum(s["minutes"] for s in stages.values()), 2)
    reference = reference_seconds(args.params)
    reused = {stage: s["reused"] for stage, s in stages.items() if s["reused"]}
    out = {
        "total_minutes": total,
        "budget_minutes": BUDGET_MINUTES,
        # a stage that took over renders, a trained model or finished reconstructions from an earlier run (a resumed
        # study) did not take the time the study takes: its total says nothing about the budget
        "within_budget": total <= BUDGET_MINUTES if not reused else None,
        "aim_minutes": AIM_MINUTES,
        "reused": reused,
        "reference_seconds": round(reference, 2),
        "reference_workload": f"{REFERENCE_STEPS} bare fp32 training steps of the default UNet, image encoder and pose "
        "projection at the default batch, one thread, timed by this script after the study on the same machine",
        "study_in_reference_units": round(total * 60.0 / reference, 1),
        "stages": stages,
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(),
        },  # the same 2 cores ran the study 3x slower on another CPU model
        "note": "Stage times as papermill recorded them in results/notebooks/ during the last `dvc repro`; a stage "
        "DVC skipped keeps the time of the run that made its outputs.",
    }
    for stage, s in stages.items():
        slowest = s["slowest_cells"][0] if s["slowest_cells"] else "-"
        print(f"{stage:>9}: {s['minutes']:6.1f} min   slowest cell: {slowest}")
        if s["reused"]:
            print(f"{'':>9}  {s['reused']}")
    verdict = {True: "met", False: "MISSED", None: "not measured: a stage reused earlier work"}[out["within_budget"]]
    print(f"{'total':>9}: {total:6.1f} min   (budget {BUDGET_MINUTES:.0f} min: {verdict})")
    print(
        f"reference workload: {reference:.1f} s on this machine; the study is {out['study_in_reference_units']} of it"
    )
    files.write_json_atomic(args.out, out)
    print(json.dumps({k: v for k, v in out.items() if k != "stages"}, indent=2))


if __name__ == "__main__":
    main()
