"""Benchmark stage 01's renderer: milliseconds per view at 64 px and 128 px (bar: <= 80 ms at 64 px).

Renders the same procedural objects at each setting through the real pipeline
(`render.render_objects`, Blender Cycles in worker processes) and reports the time per view with
Blender's start-up excluded (the sum of per-object times, which include mesh loading,
normalisation, export/import and PNG writing) and the wall time including start-up. With two
workers the per-object times overlap, so compare settings by `ms_per_view_incl_startup` (wall).

    python benchmarks/bench_render.py [--objects 20] [--out results/benchmarks/render.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile

from zero1to3.config import RenderConfig
from zero1to3.core import files
from zero1to3.dataset import objects, render

BAR_MS_AT_64 = 80.0


def measure(sources, base: RenderConfig, num_workers: int = 1, **overrides) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(base, data_dir=tmp, **overrides)
        split = {"train": [s.object_id for s in sources], "val": [], "test": [], "zero_shot": []}
        summary = render.render_objects(sources, split, cfg, progress=False, num_workers=num_workers)
    if summary.failed:
        raise RuntimeError(f"benchmark objects failed to render: {summary.failed}")
    per_object = sum(r.seconds for r in summary.results)
    return {
        "ms_per_view": round(1000 * per_object / summary.views_rendered, 1),
        "ms_per_view_incl_startup": round(1000 * summary.seconds / summary.views_rendered, 1),
        "views": summary.views_rendered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20, help="procedural objects per setting (12 views each)")
    parser.add_argument("--out", default="results/benchmarks/render.json")
    args = parser.parse_args()

    base = RenderConfig(
        seed=0,
        num_train=0,
        num_val=0,
        num_test=0,
        zero_shot=[],
        sources=[],
        num_views=12,
        resolution_px=64,
        samples_per_pixel=32,
        radius_min=1.5,
        radius_max=2.2,
        polar_min_deg=0.0,
        polar_max_deg=180.0,
        data_dir="",
        results_dir="",
    )  # (the default study's render settings)
    sources = [objects.random_urdf_source(i) for i in range(args.objects)]
    measure(sources[:2], base)  # warm the file cache and Blender's kernels once
    runs = {
        "64px_1worker": measure(sources, base),
        "128px_1worker": measure(sources, base, resolution_px=128),
        "64px_2workers": measure(sources, base, num_workers=2),
    }
    result = {
        "ms_per_view_64px": runs["64px_1worker"]["ms_per_view"],
        "ms_per_view_128px": runs["128px_1worker"]["ms_per_view"],
        "bar_ms_per_view_64px": BAR_MS_AT_64,
        "meets_bar": runs["64px_1worker"]["ms_per_view"] <= BAR_MS_AT_64,
        "samples_per_pixel": base.samples_per_pixel,
        "objects_per_setting": args.objects,
        "runs": runs,
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()},
    }
    print(json.dumps(result, indent=2))
    files.write_json_atomic(args.out, result)


if __name__ == "__main__":
    main()
