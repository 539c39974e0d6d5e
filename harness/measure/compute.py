"""FLOPs of a training step: the student's forward and backward and a teacher's forward, counted by PyTorch's
FLOP counter on a probe batch (`harness speed`'s MFU and the run's GPU estimate rest on it)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from harness.common.device import Runtime


def probe_batch(batch: int, runtime: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images (in the run's layout) and labels for timing and counting: no data needed."""
    return runtime.images(torch.randn(batch, 3, 32, 32)), torch.randint(0, 10, (batch,), device=runtime.device)


def probe_loss(
    model: nn.Module, teacher: nn.Module | None, x: torch.Tensor, y: torch.Tensor, runtime: Runtime
) -> torch.Tensor:
    """The compute of one training step short of backward: the model's loss and the teacher's forward."""
    with runtime.autocast_context():
        loss = nn.functional.cross_entropy(model(x).float(), y)
        if teacher is not None:
            with torch.inference_mode():
                teacher(x)
    return loss


def step_flops(model: nn.Module, teacher: nn.Module | None, batch: int, runtime: Runtime) -> float:
    """FLOPs of one training step (student forward and backward, teacher forward) per image."""
    x, y = probe_batch(batch, runtime)
    with FlopCounterMode(display=False) as counter:
        probe_loss(model, teacher, x, y, runtime).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch
