"""Latency: one protocol for timing a model's forward pass, and one cache of its figures.

The protocol (also in the README): one forward pass in eval mode under `torch.inference_mode()`, on a
random input, after warm-up calls; median and 90th percentile of repeated batch-1 calls, and images per
second at batch 256. Every figure is labelled with its device, threads, precision and layout, as timm's
benchmark rows are, and cached under exactly that key. A CPU timing taken while other processes use
the CPUs is marked busy, shown as such and not cached.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from harness.common.cache import read_table, store_in_table
from harness.common.device import other_cpu_use
from harness.common.lazy import lazy
from harness.common.schema import Section

if TYPE_CHECKING:
    from torch import nn

    from harness.common.device import Runtime

torch = lazy("torch")  # loaded only to time: the leaderboard reads cached timings without it
TIMINGS = "timings.json"


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
    precision: str = "fp32"  # fp32 or bf16 (autocast)
    channels_last: bool = False
    torch_version: str = ""  # the PyTorch that ran it ("" in caches written before this field)
    compiled: bool = False  # latency is timed eager: the reports' own code does not compile

    @property
    def conditions(self) -> str:
        """What the figure was measured under, as timm's benchmark files label theirs."""
        layout = "channels_last" if self.channels_last else "NCHW"
        threads = f", {self.threads} threads" if self.threads else ""
        version = f"torch {self.torch_version}" if self.torch_version else "torch ?"
        mode = "torch.compile" if self.compiled else "eager"
        return f"{self.precision}, {layout}, {mode}, batch 1, {version}, {self.device}{threads}"


# A quarter of the machine used by someone else already slows a 2-thread forward pass visibly.
BUSY_SHARE = 0.25


def time_model(
    model: nn.Module, runtime: Runtime, rounds_b1: int = 50, rounds_b256: int = 3, warmup: int = 5
) -> Timing:
    """Latency at batch 1 (median, p90) and throughput at batch 256, eval mode, inference only."""
    from harness.common.device import device_name

    model = runtime.model(model).eval()
    device = runtime.device
    x1 = runtime.images(torch.randn(1, 3, 32, 32))
    load_before = other_cpu_use() if device.type == "cpu" else None
    times: list[float] = []
    with torch.inference_mode(), runtime.autocast_context():
        for i in range(warmup + rounds_b1):
            runtime.sync()
            start = time.perf_counter()
            model(x1)
            runtime.sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
        elapsed = 0.0
        if rounds_b256:
            x256 = runtime.images(torch.randn(256, 3, 32, 32))
            model(x256)  # warm-up at the large batch: allocator and kernel selection
            runtime.sync()
            start = time.perf_counter()
            for _ in range(rounds_b256):
                model(x256)
            runtime.sync()
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
        precision=runtime.precision,
        channels_last=runtime.channels_last,
        torch_version=torch.__version__,
    )


def timing_runtimes() -> list[Runtime]:
    """What latency is measured on: the CPU, and the GPU where CUDA is present; fp32, NCHW (the
    layout and precision of the reports' own code)."""
    from harness.common.device import Runtime

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    return [Runtime(device) for device in devices]


def cached_timing(model_cfg: Section, runtime: Runtime) -> Timing:
    """A batch-1 timing from the on-disk cache (same model, device, threads, torch, precision and layout),
    else measured now and stored. The cache lives at $HARNESS_CACHE/timings.json; `harness measure`
    refreshes it."""
    entry = read_table(TIMINGS).get(_timing_key(model_cfg, runtime))
    if entry is not None:
        return _timing(entry)
    return measured_timing(model_cfg, runtime, rounds_b1=20, rounds_b256=0)


def measured_timing(model_cfg: Section, runtime: Runtime, rounds_b1: int, rounds_b256: int = 3) -> Timing:
    """The network of `model_cfg` (weights seeded) timed now, and cached unless the machine was busy: the one
    path by which the table and `harness measure` time a network."""
    from harness.models import build_model

    torch.manual_seed(0)
    timing = time_model(build_model(model_cfg), runtime, rounds_b1=rounds_b1, rounds_b256=rounds_b256)
    store_timing(model_cfg, runtime, timing)
    return timing


def stored_timings(model_cfg: Section) -> dict[str, Timing]:
    """The latest cached fp32, NCHW timing of this model per device type ("cpu", "cuda"), taken with the
    installed PyTorch on this machine; read without loading PyTorch."""
    from harness.common.device import cpu_name

    model, version = _model_key(model_cfg), importlib.metadata.version("torch")
    found: dict[str, dict] = {}
    for entry in read_table(TIMINGS).values():
        kind = entry.get("device_type")
        if entry.get("model") != model or entry.get("torch") != version or kind is None:
            continue
        if entry.get("precision") != "fp32" or entry.get("channels_last") or entry.get("machine") != cpu_name():
            continue
        if kind not in found or entry["measured_at"] > found[kind]["measured_at"]:
            found[kind] = entry
    return {kind: _timing(entry) for kind, entry in found.items()}


def store_timing(model_cfg: Section, runtime: Runtime, timing: Timing) -> None:
    """Cache a timing, unless it was taken on a busy machine (the next table measures again)."""
    from harness.common.device import cpu_name

    if timing.busy:
        return
    labels = {
        "model": _model_key(model_cfg),
        "device_type": runtime.device.type,
        "machine": cpu_name(),  # the host's CPU: a cache copied to another machine does not match it
        "torch": importlib.metadata.version("torch"),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    store_in_table(TIMINGS, _timing_key(model_cfg, runtime), {**asdict(timing), **labels})


def _timing(entry: dict) -> Timing:
    fields = {k: v for k, v in entry.items() if k in Timing.__dataclass_fields__}
    return Timing(**{"torch_version": entry.get("torch", ""), **fields})


def _model_key(model_cfg: Section) -> str:
    return hashlib.sha256(json.dumps(model_cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:20]


def _timing_key(model_cfg: Section, runtime: Runtime) -> str:
    from harness.common.device import device_name

    text = json.dumps(model_cfg.model_dump(mode="json"), sort_keys=True)
    settings = f"{device_name(runtime.device)}|{torch.get_num_threads()}|{torch.__version__}"
    ident = f"{text}|{settings}|{runtime.precision}|{'channels_last' if runtime.channels_last else 'nchw'}"
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


def timing_dict(timing: Timing | None, prefix: str) -> dict[str, object]:
    """Flatten a Timing into `prefix_*` columns (all None when not measured)."""
    fields = Timing.__dataclass_fields__
    if timing is None:
        return {f"{prefix}_{k}": None for k in [*fields, "conditions"]}
    return {**{f"{prefix}_{k}": v for k, v in asdict(timing).items()}, f"{prefix}_conditions": timing.conditions}
