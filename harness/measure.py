"""Size, compute and speed of a model, measured the same way for every spec.

Conventions (also in the README):
- params: trainable parameters (`requires_grad`), the figure every report quotes.
- MACs: multiply-accumulates of the convolution, linear and matmul layers for one 3x32x32 image,
  counted by fvcore and cross-checked against `torch.utils.flop_counter` (which counts 2 FLOPs per
  MAC). BatchNorm, activations, pooling and the SE gate's elementwise product are not counted.
  FLOPs are only ever shown as 2 x MACs.
- latency: wall time of one forward pass in eval mode under `torch.inference_mode()`, after warm-up;
  median and 90th percentile over repeated calls. Throughput: images per second at batch 256.
  A CPU timing taken while other processes use the CPUs is marked busy, shown as such and not cached.
"""

from __future__ import annotations

import hashlib
import json
import platform
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from harness.models import build_model, count_params
from harness.schema import Section

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # fvcore imports deprecated torch.jit helpers
    from fvcore.nn import FlopCountAnalysis

# fvcore's default handles that count something other than multiply-accumulates.
_NOT_MACS = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
)


def _zero(*_: object) -> int:
    # fvcore: set_op_handle(op, None) leaves BN counted, so the handle must return 0 instead.
    return 0


def _example(model: nn.Module, input_size: int, batch: int = 1) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.randn(batch, 3, input_size, input_size, device=device)


def fvcore_macs(model: nn.Module, input_size: int = 32) -> int:
    """MACs of one image, counted by fvcore (one fused multiply-add = one)."""
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit tracer and deprecation warnings, not problems of the count
        analysis = FlopCountAnalysis(model, _example(model, input_size))
        analysis.set_op_handle(**{op: _zero for op in _NOT_MACS})
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())


def flop_counter_macs(model: nn.Module, input_size: int = 32) -> int:
    """MACs of one image from PyTorch's own FLOP counter (which counts 2 per MAC)."""
    model = model.eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(_example(model, input_size))
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class Size:
    params: int
    macs: int
    macs_flop_counter: int

    @property
    def flops(self) -> int:
        return 2 * self.macs


@lru_cache(maxsize=64)
def size_of(model_cfg: Section) -> Size:
    """Parameters and MACs of a `[model]` section (cached: many variants share one network)."""
    torch.manual_seed(0)
    model = build_model(model_cfg)
    input_size = getattr(model_cfg, "input_size", 32)
    size = Size(count_params(model), fvcore_macs(model, input_size), flop_counter_macs(model, input_size))
    if size.macs != size.macs_flop_counter:
        raise RuntimeError(
            f"MAC counters disagree: fvcore {size.macs:,} vs torch.utils.flop_counter {size.macs_flop_counter:,}"
        )
    return size


@dataclass(frozen=True)
class Timing:
    device: str
    threads: int
    latency_ms_b1: float
    latency_ms_b1_p90: float
    throughput_img_s_b256: float | None  # None when not measured (rounds_b256 = 0)
    rounds_b1: int
    rounds_b256: int
    other_cpu_use: float | None = None  # share of the CPUs other processes used around the timing
    busy: bool = False  # other_cpu_use above BUSY_SHARE: the figures are inflated


# A quarter of the machine used by someone else already slows a 2-thread forward pass visibly.
BUSY_SHARE = 0.25


def other_cpu_use(window_s: float = 0.2) -> float | None:
    """Share of all CPUs busy while this process sleeps for `window_s` (Linux /proc/stat; else None).

    Sleeping makes every busy jiffy someone else's, so no per-process accounting is needed.
    """

    def busy_total() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields) - idle, sum(fields)

    try:
        busy0, total0 = busy_total()
        time.sleep(window_s)
        busy1, total1 = busy_total()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / max(1, total1 - total0)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that wall-clock timings cover it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(
    model: nn.Module,
    device: torch.device,
    input_size: int = 32,
    rounds_b1: int = 50,
    rounds_b256: int = 3,
    warmup: int = 5,
) -> Timing:
    """Latency at batch 1 (median, p90) and throughput at batch 256, eval mode, inference only."""
    model = model.to(device).eval()
    x1 = _example(model, input_size, 1)
    load_before = other_cpu_use() if device.type == "cpu" else None
    times: list[float] = []
    with torch.inference_mode():
        for i in range(warmup + rounds_b1):
            sync(device)
            start = time.perf_counter()
            model(x1)
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        elapsed = 0.0
        if rounds_b256:
            x256 = _example(model, input_size, 256)
            model(x256)  # warm-up at the large batch: allocator and kernel selection
            sync(device)
            start = time.perf_counter()
            for _ in range(rounds_b256):
                model(x256)
            sync(device)
            elapsed = time.perf_counter() - start
    deciles = statistics.quantiles(times, n=10)
    loads = [x for x in (load_before, other_cpu_use() if device.type == "cpu" else None) if x is not None]
    load = max(loads) if loads else None
    return Timing(
        device=device_name(device),
        threads=torch.get_num_threads(),
        latency_ms_b1=1e3 * statistics.median(times),
        latency_ms_b1_p90=1e3 * deciles[-1],
        throughput_img_s_b256=256 * rounds_b256 / elapsed if rounds_b256 else None,
        rounds_b1=rounds_b1,
        rounds_b256=rounds_b256,
        other_cpu_use=load,
        busy=load is not None and load > BUSY_SHARE,
    )


def timing_devices() -> list[torch.device]:
    """The devices latency is measured on: the CPU, and the GPU where CUDA is present."""
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def _timings_file() -> Path:
    from harness.data import cache_dir

    return cache_dir() / "timings.json"


def _read_timings() -> dict[str, Any]:
    try:
        return json.loads(_timings_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def cached_timing(model_cfg: Section, device: torch.device) -> Timing:
    """A batch-1 timing from the on-disk cache (same model, device, threads and torch), else measured and stored.

    The cache lives at $HARNESS_CACHE/timings.json; `harness measure` refreshes it.
    """
    entry = _read_timings().get(_timing_key(model_cfg, device))
    if entry is not None:
        return Timing(**{k: v for k, v in entry.items() if k in Timing.__dataclass_fields__})
    torch.manual_seed(0)
    timing = time_model(build_model(model_cfg), device, getattr(model_cfg, "input_size", 32), 20, rounds_b256=0)
    store_timing(model_cfg, device, timing)
    return timing


def store_timing(model_cfg: Section, device: torch.device, timing: Timing) -> None:
    """Cache a timing, unless it was taken on a busy machine (the next table measures again)."""
    from harness.checkpoint import atomic_write_json

    if timing.busy:
        return
    cache = _read_timings()
    cache[_timing_key(model_cfg, device)] = asdict(timing)
    atomic_write_json(_timings_file(), cache)


def _timing_key(model_cfg: Section, device: torch.device) -> str:
    text = json.dumps(model_cfg.model_dump(mode="json"), sort_keys=True)
    ident = f"{text}|{device_name(device)}|{torch.get_num_threads()}|{torch.__version__}"
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


H100_BF16_FLOPS = 989e12  # dense bf16 tensor-core peak of an H100 SXM
H100_ASSUMED_MFU = 0.25  # small 32x32 CNNs in plain PyTorch keep an H100 partly busy: an assumption, stated


def probe_batch(batch: int, device: torch.device, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and labels for timing and counting (no data needed)."""
    x = torch.randn(batch, 3, 32, 32, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, 10, (batch,), device=device)


def probe_loss(
    model: nn.Module, teacher: nn.Module | None, x: torch.Tensor, y: torch.Tensor, precision: Any, device: torch.device
) -> torch.Tensor:
    """The compute of one training step short of backward: the model's loss and the teacher's forward."""
    with precision.context(device):
        loss = nn.functional.cross_entropy(model(x).float(), y)
        if teacher is not None:
            with torch.inference_mode():
                teacher(x)
    return loss


def step_flops(model: nn.Module, teacher: nn.Module | None, batch: int, precision: Any, device: torch.device) -> float:
    """FLOPs of one training step (student forward and backward, teacher forward) per image."""
    x, y = probe_batch(batch, device)
    with FlopCounterMode(display=False) as counter:
        probe_loss(model, teacher, x, y, precision, device).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def full_recipe_estimate(recipe: Any, flops_per_image: float, images_per_s: float) -> dict[str, float]:
    """Hours for the spec's full recipe here (at the measured rate) and on an H100 (from its FLOPs)."""
    train_images = recipe.data.train_size
    total_images = recipe.train.epochs * train_images
    return {
        "epochs": recipe.train.epochs,
        "train_images": train_images,
        "hours_here": total_images / images_per_s / 3600,
        "hours_h100": total_images * flops_per_image / (H100_BF16_FLOPS * H100_ASSUMED_MFU) / 3600,
        "h100_assumed_mfu": H100_ASSUMED_MFU,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_name()


@lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timing_dict(timing: Timing | None, prefix: str) -> dict[str, object]:
    """Flatten a Timing into `prefix_*` columns (all None when not measured)."""
    fields = Timing.__dataclass_fields__
    if timing is None:
        return {f"{prefix}_{k}": None for k in fields}
    return {f"{prefix}_{k}": v for k, v in asdict(timing).items()}
