"""Benchmark stage 04's renderer: milliseconds per forward+backward render of a 64^3 x (1+4) voxel field.

Renders one view (16x16 and 32x32, 64 samples per ray, bin midpoints) of a `VoxelField` with 4 latent
channels as SJC does (docs/conventions.md#sjc-field-and-renderer, at 64^3 instead of the paper's 100^3),
back-propagates a scalar loss
into both grids, and reports the median over repeats; a forward-only time is given beside it. Compare
with environment.md section 6 (64^3 x (1+4), 64 samples, 64x64 image: 42 ms forward, 136 ms fwd+bwd).

Each setting runs with 1 and with 2 torch threads. The headline numbers are 1 thread: with 2 threads
on a 2-core machine that is also running anything else, torch's thread synchronisation can slow
small element-wise ops by orders of magnitude, so the 1-minute load average is recorded beside them.

    python benchmarks/bench_sjc_render.py [--repeats 20] [--out results/benchmarks/sjc_render.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from zero1to3 import cameras
from zero1to3.core import files
from zero1to3.sjc import raymarch, voxel


def time_render(field: voxel.VoxelField, rays: raymarch.Rays, num_samples: int, repeats: int) -> dict[str, float]:
    def forward() -> torch.Tensor:
        out = raymarch.render_rays(field, rays, num_samples, background=0.0, background_depth=10.0)
        return (out.features**2).mean() + out.depth.mean()  # a scalar touching features, density and depth

    fwd, fwd_bwd = [], []
    for i in range(repeats + 2):  # the first two are warm-up
        field.zero_grad(set_to_none=True)
        start = time.perf_counter()
        with torch.no_grad():
            forward()
        middle = time.perf_counter()
        forward().backward()
        end = time.perf_counter()
        if i >= 2:
            fwd.append(1000 * (middle - start))
            fwd_bwd.append(1000 * (end - middle))
    return {
        "forward_ms": round(statistics.median(fwd), 2),
        "forward_backward_ms": round(statistics.median(fwd_bwd), 2),
        "forward_backward_ms_min": round(min(fwd_bwd), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed renders per setting (median reported)")
    parser.add_argument("--out", default="results/benchmarks/sjc_render.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    resolution, channels, num_samples = 64, 4, 64
    field = voxel.VoxelField(resolution, channels, feature_init_std=1.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # some structure, so the density is not constant: a ball of raw density 3
        inside = field.node_coordinates().norm(dim=-1) < 0.5
        field.density_raw[0, 0][inside] = 3.0
    c2w = cameras.look_at(cameras.spherical_to_cartesian(np.radians(60.0), np.radians(30.0), 2.0))
    runs = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for size in (16, 32):
            rays = raymarch.rays_from_camera(c2w, size)
            runs[f"{size}px_{threads}thread"] = time_render(field, rays, num_samples, args.repeats)
    result = {
        "fwd_bwd_ms_16px": runs["16px_1thread"]["forward_backward_ms"],
        "fwd_bwd_ms_32px": runs["32px_1thread"]["forward_backward_ms"],
        "fwd_ms_16px": runs["16px_1thread"]["forward_ms"],
        "fwd_ms_32px": runs["32px_1thread"]["forward_ms"],
        "grid": f"{resolution}^3 x (1+{channels})",
        "samples_per_ray": num_samples,
        "repeats": args.repeats,
        "runs": runs,
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
    }
    print(json.dumps(result, indent=2))
    files.write_json_atomic(args.out, result)


if __name__ == "__main__":
    main()
