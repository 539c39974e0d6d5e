"""What a full recipe costs on a GPU: its FLOPs at a measured or assumed rate, never under a floor per step.

The figure comes from a rate measured by `make gpu-check` when harness/measure/gpu_rates.json holds one (with
its device and date); until then it is an assumption, labelled as one: an H100's dense bf16 peak at an assumed
utilisation. No PyTorch here: `harness plan` and the reports import it without loading a framework.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

H100_BF16_FLOPS = 989e12  # dense bf16 tensor-core peak of an H100 SXM
H100_ASSUMED_MFU = 0.25  # small 32x32 CNNs in plain PyTorch keep an H100 partly busy: an assumption, stated
# Eager PyTorch launches every kernel of a step from Python (a few hundred for these networks' forward,
# backward and optimizer, some microseconds each): a step cannot take less than this on any GPU however few
# its FLOPs. An assumption until make gpu-check measures a rate, stated with every estimate it bounds.
GPU_STEP_FLOOR_S = 0.003
GPU_RATES = Path(__file__).with_name("gpu_rates.json")  # written by `make gpu-check`, committed with its provenance


@dataclass(frozen=True)
class GpuRate:
    """Training FLOP/s on a GPU and where that figure comes from (a measurement, or the stated assumption)."""

    flops_per_s: float
    device: str
    basis: str


def gpu_rate(key: str, flops_per_image: float, rates_file: Path = GPU_RATES) -> GpuRate:
    """The measured rate of this spec/variant, else the median measured FLOP/s, else the H100 assumption."""
    measured = json.loads(rates_file.read_text(encoding="utf-8")) if rates_file.is_file() else {}
    if "dry-run" not in measured.get("source", "dry-run"):  # a CPU dry run's figures are never a GPU's
        where = f"measured by make gpu-check on {measured['device']}, {measured['date']}"
        if key in measured["img_s"]:
            return GpuRate(measured["img_s"][key] * flops_per_image, measured["device"], where)
        if measured.get("flops_per_s"):
            return GpuRate(measured["flops_per_s"], measured["device"], f"{where}, from the other recipes' FLOP/s")
    assumed = H100_BF16_FLOPS * H100_ASSUMED_MFU
    basis = f"assumed: {H100_ASSUMED_MFU:.0%} of an H100's {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s bf16 peak; no GPU rate measured yet"
    return GpuRate(assumed, "H100", basis)


def full_recipe_estimate(recipe: Any, key: str, flops_per_image: float, images_per_s: float) -> dict[str, Any]:
    """Hours for the spec's full recipe here (at the measured rate) and on a GPU (gpu_estimate)."""
    total_images = recipe.train.epochs * recipe.data.train_size
    return {**gpu_estimate(recipe, key, flops_per_image), "hours_here": total_images / images_per_s / 3600}


def gpu_estimate(recipe: Any, key: str, flops_per_image: float, rate: GpuRate | None = None) -> dict[str, Any]:
    """Hours for the spec's full recipe on a GPU: its FLOPs at the GPU's rate (`rate`, else `gpu_rate`'s; the
    teacher's forward included in `flops_per_image`), and never less than GPU_STEP_FLOOR_S a step."""
    train_images = recipe.data.train_size
    total_images = recipe.train.epochs * train_images
    steps = recipe.train.epochs * -(-train_images // recipe.train.batch_size)
    gpu = rate or gpu_rate(key, flops_per_image)
    by_flops = total_images * flops_per_image / gpu.flops_per_s
    floor = steps * GPU_STEP_FLOOR_S
    basis = gpu.basis
    if floor > by_flops:
        basis += f"; {steps:,} steps at the assumed floor of {GPU_STEP_FLOOR_S * 1e3:.0f} ms a step"
    return {
        "epochs": recipe.train.epochs,
        "train_images": train_images,
        "steps": steps,
        "hours_gpu": max(by_flops, floor) / 3600,
        "gpu_device": gpu.device,
        "gpu_basis": basis,
        "rate_basis": gpu.basis,
        "floor_bound": floor > by_flops,
    }


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
