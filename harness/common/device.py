"""The device a command computes on and the CPU threads it computes with: one frozen set of named settings (`Runtime`), chosen once, each one runnable on the CPU.

The device type only picks the defaults (`Runtime.for_device`): bf16 autocast, channels_last, fused
optimizer kernels, pinned host copies, cudnn.benchmark and reading the loss back every 10 steps are
CUDA's defaults, and every one of them is a plain setting that a test can switch on for the CPU. What
is truly CUDA-only is this short list, and nothing else branches on the device type:

- `sync`: torch.cuda.synchronize before a wall-clock reading;
- `device_name`: torch.cuda.get_device_name;
- `apply_process_settings`: torch.backends.cudnn.benchmark and CUBLAS_WORKSPACE_CONFIG (no effect on a CPU).

Threads: `--threads`, else `OMP_NUM_THREADS`, else the cores that other processes leave free. Two
processes that each take every core slow each other about tenfold (each step's threads wait on cores the
other holds: measured ~3 s -> ~30 s per ResNet-10 step on two cores).
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from harness.common.errors import RunError
from harness.common.lazy import lazy

if TYPE_CHECKING:
    from torch import nn

torch = lazy("torch")  # loaded on first use: the CPU's name is read without it

CUDA_ONLY = ("sync", "device_name", "apply_process_settings")  # see the module docstring
CUDA_READBACK_EVERY = 10  # steps between loss read-backs on CUDA: the GPU never waits for the host


def resolve_device(name: str) -> torch.device:
    """auto picks CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA device is available (use --device auto or cpu)")
    if name not in ("cpu", "cuda", "mps"):
        raise RunError(f"--device {name}: expected auto, cpu, cuda or mps")
    return torch.device(name)


@dataclass(frozen=True)
class Runtime:
    """The device and every setting of how the run uses it."""

    device: torch.device
    autocast: torch.dtype | None = None  # bf16 autocast around forward passes; None: fp32
    channels_last: bool = False  # the memory layout of images, models and activations
    readback_every: int = 1  # training steps between loss read-backs (a NaN is caught at the next one)
    fused_optimizer: bool = False  # PyTorch's fused optimizer kernels (the same arithmetic, fewer launches)
    pin_memory: bool = False  # pinned host copies for the DataLoader path
    cudnn_benchmark: bool = False
    deterministic: bool = False  # deterministic kernels: bit-exact resumes on the CPU

    @classmethod
    def for_device(
        cls, device: torch.device, precision: str = "fp32", channels_last: bool = False, deterministic: bool = False
    ) -> Runtime:
        """The defaults for a device type; `precision` (fp32 or bf16) and layout come from the run's identity.
        Warns where bf16 would run on a CPU without bf16 units: PyTorch then emulates it, about 10x slower."""
        cuda = device.type == "cuda"
        if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16_units():
            warnings.warn(
                "this CPU has no bf16 units (AVX-512 BF16 or AMX): PyTorch emulates bf16 here, about 10 times slower "
                "than fp32 (--precision fp32 is faster)",
                stacklevel=2,
            )
        return cls(
            device=device,
            autocast=torch.bfloat16 if precision == "bf16" else None,
            channels_last=channels_last,
            readback_every=CUDA_READBACK_EVERY if cuda else 1,
            fused_optimizer=cuda,
            pin_memory=cuda,
            cudnn_benchmark=cuda and not deterministic,
            deterministic=deterministic,
        )

    def but(self, **changes: Any) -> Runtime:
        """The same runtime with some settings changed (tests take CUDA's settings on the CPU this way)."""
        return replace(self, **changes)

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast is not None else "fp32"

    def autocast_context(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the device, in the run's layout."""
        x = x.to(self.device, non_blocking=self.pin_memory)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def model(self, model: nn.Module) -> nn.Module:
        """A model on the device, in the run's layout."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def deviations(self) -> list[str]:
        """How this runtime departs from the (fp32, NCHW) recipes, for the record."""
        found = (
            [f"precision: bf16 autocast on {self.device.type} (the recipes trained in fp32)"] if self.autocast else []
        )
        return found + (["memory format: channels_last"] if self.channels_last else [])

    def apply_process_settings(self) -> None:
        """Settings PyTorch keeps per process: deterministic kernels, cudnn.benchmark."""
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def sync(self) -> None:
        """Wait for the device's queued work, so that wall-clock timings cover it (a no-op on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated, and slower."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private: absent on some builds
    return bool(probe and probe())


def sync(device: torch.device) -> None:
    """`Runtime.sync` for a bare device."""
    Runtime(device).sync()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


LOAD_WINDOW_S = 0.5  # long enough to see a busy process, short beside any run


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


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; a Slurm allocation or taskset narrows it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str  # said when it is not simply every core


def choose_threads(requested: int | None, deterministic: bool = False) -> ThreadChoice:
    """--threads, else OMP_NUM_THREADS, else every core that other processes leave free (at least one).
    With --deterministic, every core whatever the load: a resumed run then computes with the same threads."""
    cores = usable_cores()
    if requested is not None:
        return ThreadChoice(requested, "")
    from_env = os.environ.get("OMP_NUM_THREADS", "")
    if from_env.isdigit() and int(from_env) > 0:
        return ThreadChoice(int(from_env), "")
    if deterministic:
        return ThreadChoice(cores, "")
    share = other_cpu_use(LOAD_WINDOW_S)
    if share is None:
        return ThreadChoice(cores, "")
    free = max(1, min(cores, round(cores * (1 - share))))
    if free == cores:
        return ThreadChoice(cores, "")
    return ThreadChoice(
        free,
        f"other processes keep {share:.0%} of the CPUs busy: computing with {free} of {cores} threads "
        "(--threads N or OMP_NUM_THREADS to choose)",
    )


def apply_threads(requested: int | None, deterministic: bool = False) -> str:
    """Set PyTorch's intra-op threads for this process; returns the line that says why, if any."""
    choice = choose_threads(requested, deterministic)
    torch.set_num_threads(choice.threads)
    return choice.reason


def default_threads(parallel: int) -> int:
    """Threads for each of `parallel` local sweep jobs: the usable cores shared out, at least one."""
    return max(1, usable_cores() // max(1, parallel))
