"""How a run uses its device: one frozen set of named settings, chosen once, each one runnable on the CPU.

The device type only picks the defaults (`Runtime.for_device`): bf16 autocast, channels_last, fused
optimizer kernels, pinned host copies, cudnn.benchmark and reading the loss back every 10 steps are
CUDA's defaults, and every one of them is a plain setting that a test can switch on for the CPU. What
is truly CUDA-only is this short list, and nothing else branches on the device type:

- `sync`: torch.cuda.synchronize before a wall-clock reading;
- `device_name`: torch.cuda.get_device_name;
- `apply_process_settings`: torch.backends.cudnn.benchmark and CUBLAS_WORKSPACE_CONFIG (no effect on a CPU).
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from harness.errors import RunError
from harness.lazy import lazy

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
        """The defaults for a device type; `precision` (fp32 or bf16) and layout come from the run's identity."""
        cuda = device.type == "cuda"
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
