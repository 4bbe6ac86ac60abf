"""Benchmark the `paper` profile at full size on one GPU: training step time and peak memory, DDIM-50 sampling time.

Random weights at the paper's architecture (`builders.build_paper_components`: SD-v1 UNet with 8 input channels,
SD's VAE, CLIP ViT-L/14's vision tower, `cc_projection`), built directly on the GPU. The training step is
stage 02's (`train.training_step` and `train.fit`'s optimiser step: the profile's micro-batch, condition
dropout, accelerate's mixed precision and gradient accumulation, clipping, AdamW with the 10x `cc_projection`
group, the UNet's EMA) on random images and latents of the profile's sizes; it is written out here because
`zero1to3.train` imports the evaluation stack (trimesh, scipy, scikit-image) that a bare GPU machine lacks.
The profile's `mixed_precision` is measured, and bf16 beside it. Sampling is `sample.sample_novel_views` with
the profile's sampler (the paper's DDIM-50, guidance 3, eta 1; the official schedule: 49 UNet steps), per image
at batch 4 (the demo's samples per input) and batch 1. About 3 minutes on an H200.

    python benchmarks/bench_paper_gpu.py --out results/benchmarks/paper_gpu.json   # a CUDA machine
    python benchmarks/bench_paper_gpu.py --tiny --out /tmp/paper_gpu_tiny.json     # CPU smoke test, seconds

Imports only torch, numpy, diffusers, transformers, accelerate, pydantic, yaml (a transformers requirement) and
the zero1to3 modules they need: what the GPU machine has.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import time
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers.training_utils import EMAModel

from zero1to3 import stages
from zero1to3.config import FinetuneConfig, SamplerParams
from zero1to3.core import files, repro
from zero1to3.model import builders, conditioning, encoders, schedulers
from zero1to3.model.components import Zero123Components
from zero1to3.novel_views import sample

GIB = 2**30
WARMUP_STEPS = 1  # optimiser steps left out of the timing (cuDNN autotuning, allocator growth)


def training_config(profile: dict[str, Any], tiny: bool) -> FinetuneConfig:
    """The profile's stage-02 config (`--tiny`: one micro-batch of 2, so the CPU finishes in seconds)."""
    group = profile["finetune"]
    cfg = FinetuneConfig.from_dict(group["training"] | {"seed": group["seed"], "use_pose": True}, "finetune.training")
    return dataclasses.replace(cfg, batch_size=2, gradient_accumulation_steps=1) if tiny else cfg


def build(cfg: FinetuneConfig, device: torch.device, tiny: bool) -> Zero123Components:
    if tiny:
        return builders.build_tiny_components(builders.DUMMY_SIZES, cfg.seed, cfg.prediction_type).to(device)
    return builders.build_paper_components(cfg.seed, device, cfg.prediction_type)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def micro_batch_loss(components: Zero123Components, cfg: FinetuneConfig, generator: torch.Generator) -> torch.Tensor:
    """`train.training_step` on random inputs of the profile's sizes (target latents precomputed, as in stage 02)."""
    device, bsz = components.unet.device, cfg.batch_size
    size, lat = int(components.image_encoder.config.image_size), int(components.unet.config.sample_size)
    channels = int(components.unet.config.out_channels)
    images = torch.rand(bsz, 3, size, size, generator=generator, device=device) * 2 - 1
    concat, mean = torch.randn(2, bsz, channels, lat, lat, generator=generator, device=device)
    z0 = components.vae.config.scaling_factor * (
        mean + 0.1 * torch.randn(mean.shape, generator=generator, device=device)
    )
    with torch.set_grad_enabled(cfg.train_image_encoder):
        clip = encoders.encode_clip_image(components.image_encoder, components.feature_extractor, images)
    drop_clip, drop_concat = conditioning.sample_dropout_masks(bsz, generator, cfg.cfg_dropout_prob)
    pose = torch.randn(bsz, 4, generator=generator, device=device)
    cond = conditioning.build_conditioning(clip, pose, concat, components.cc_projection, drop_clip, drop_concat)
    timesteps = torch.randint(
        components.scheduler.config.num_train_timesteps, (bsz,), generator=generator, device=device
    )
    noise = torch.randn(z0.shape, generator=generator, device=device)
    z_t = components.scheduler.add_noise(z0, noise, timesteps)
    pred = components.unet(
        conditioning.unet_input(z_t, cond.concat_latents), timesteps, encoder_hidden_states=cond.encoder_hidden_states
    ).sample
    return F.mse_loss(pred.float(), noise.float())  # epsilon, the paper's parameterisation


def measure_training(components: Zero123Components, cfg: FinetuneConfig, steps: int) -> dict[str, float]:
    """Seconds per optimiser step and peak GPU memory of stage 02's step at `cfg` (random weights: they move)."""
    device = components.unet.device
    AcceleratorState._reset_state(reset_partial_state=True)  # one process measures two precisions in turn
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        cpu=device.type == "cpu",
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
    )
    trained = [components.unet, components.cc_projection]
    for name, module in components.modules().items():
        module.requires_grad_(name in ("unet", "cc_projection")).train(name in ("unet", "cc_projection"))
    groups = [
        {"params": list(components.unet.parameters()), "lr": cfg.learning_rate},
        {
            "params": list(components.cc_projection.parameters()),
            "lr": cfg.learning_rate * cfg.cc_projection_lr_multiplier,
        },
    ]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    ema = EMAModel(list(components.unet.parameters()), decay=cfg.ema_decay)
    unet, cc, optimizer = accelerator.prepare(components.unet, components.cc_projection, optimizer)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(WARMUP_STEPS + steps):
        sync(device)
        tick = time.perf_counter()
        for _ in range(cfg.gradient_accumulation_steps):
            with accelerator.accumulate(unet, cc):
                loss = micro_batch_loss(components, cfg, generator)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_([p for m in trained for p in m.parameters()], cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        ema.step(list(components.unet.parameters()))
        sync(device)
        if step >= WARMUP_STEPS:
            times.append(time.perf_counter() - tick)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {loss.item()} in the benchmark's training step")
    cuda = device.type == "cuda"
    peak = torch.cuda.max_memory_allocated(device) / GIB if cuda else None  # the CPU's: not measured here
    reserved = torch.cuda.max_memory_reserved(device) / GIB if cuda else None
    accelerator.free_memory()
    del optimizer, ema, unet, cc
    for module in components.modules().values():
        module.requires_grad_(False).eval()
        module.zero_grad(set_to_none=True)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    seconds = sum(times) / len(times)
    samples = cfg.batch_size * cfg.gradient_accumulation_steps
    return {
        "seconds_per_step": seconds,
        "samples_per_second": samples / seconds,
        "peak_memory_gib": peak,
        "peak_reserved_gib": reserved,
        "loss": loss.item(),
    }


def measure_sampling(
    components: Zero123Components, sampler: SamplerParams, batch: int, repeats: int
) -> dict[str, float]:
    """Seconds per image of `sample.sample_novel_views` (the model's DDIM schedule) for `batch` poses of one image."""
    device = components.unet.device
    size = int(components.vae.config.sample_size)
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(1, 3, size, size, generator=g) * 2 - 1).expand(batch, -1, -1, -1)
    poses = torch.randn(batch, 4, generator=g)
    times = []
    for i in range(1 + repeats):  # the first run warms up
        sync(device)
        tick = time.perf_counter()
        sample.sample_novel_views(
            components,
            images,
            poses,
            sampler.ddim_steps,
            sampler.guidance_scale,
            sampler.eta,
            torch.Generator().manual_seed(i),
        )
        sync(device)
        times.append(time.perf_counter() - tick)
    seconds = sum(times[1:]) / repeats
    return {"seconds_per_image": seconds / batch, "seconds_per_batch": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="profiles/paper.yaml", help="params profile (default: the paper's)")
    parser.add_argument("--out", default="results/benchmarks/paper_gpu.json")
    parser.add_argument("--tiny", action="store_true", help="dummy-sized model on the CPU: a smoke test in seconds")
    parser.add_argument("--train-steps", type=int, default=3, help="timed optimiser steps per precision")
    parser.add_argument("--sample-repeats", type=int, default=2, help="timed sampling runs per batch size")
    args = parser.parse_args()
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("bench_paper_gpu.py: no CUDA device; run it on a GPU machine, or with --tiny on the CPU")
    device = torch.device("cpu" if args.tiny else "cuda")
    profile = stages.load_params(args.profile)
    cfg = training_config(profile, args.tiny)
    sampler = SamplerParams.model_validate(profile["sample"]["sampler"])
    tick = time.perf_counter()
    components = build(cfg, device, args.tiny)
    if args.tiny:
        components = dataclasses.replace(components, ddim_schedule="official")  # as paper-scale weights sample
    build_seconds = time.perf_counter() - tick

    out: dict[str, Any] = {
        "tiny": args.tiny,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "num_parameters_millions": {k: v / 1e6 for k, v in components.summary()["num_parameters"].items()},
        "build_seconds": build_seconds,
        "micro_batch": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "samples_per_step_per_process": cfg.batch_size * cfg.gradient_accumulation_steps,
    }
    precisions = [cfg.mixed_precision] + (["bf16"] if cfg.mixed_precision != "bf16" else [])
    for precision in precisions:
        result = measure_training(components, dataclasses.replace(cfg, mixed_precision=precision), args.train_steps)
        out |= {f"train_{precision}_{k}": v for k, v in result.items()}
        print(f"train ({precision}): {json.dumps(result)}", flush=True)
    for batch in (4, 1):
        result = measure_sampling(components, sampler, batch, args.sample_repeats)
        out |= {f"sample_batch{batch}_{k}": v for k, v in result.items()}
        print(f"sample (batch {batch}): {json.dumps(result)}", flush=True)
    out |= {
        "ddim_steps": sampler.ddim_steps,
        "ddim_schedule": components.ddim_schedule,
        "unet_steps": len(schedulers.ddim_timesteps(sampler.ddim_steps, components.ddim_schedule)),
        "guidance_scale": sampler.guidance_scale,
        "eta": sampler.eta,
        "total_seconds": time.perf_counter() - tick,
        "env": repro.environment_info(),
    }
    files.write_json_atomic(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
