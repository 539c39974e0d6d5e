"""One pipeline for a spec's training ops: walks them once, in either backend, then normalises.

The ops run on uint8 images until the first op that needs floats (random erasing, which report 002 applies
after ToTensor); the conversion to floats in [0, 1] happens there, or after the last op, and
normalisation always comes last. This rule lives here alone: the per-sample torchvision backend (the
reports' exact transforms, through a DataLoader), the batched backend (the whole batch on its device)
and the test transform (a pipeline with no ops) all take it from `Pipeline`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.common.lazy import lazy

if TYPE_CHECKING:
    from harness.data.augment.ops import Batch, Op

torch = lazy("torch")  # loaded on first use: a spec checks its pipeline without PyTorch
T = lazy("torchvision.transforms.v2")


class Pipeline:
    """A spec's training ops (possibly none) followed by Normalize(mean, std)."""

    def __init__(self, ops: Sequence[Op], mean: Sequence[float], std: Sequence[float]) -> None:
        self.ops = tuple(ops)
        self.mean, self.std = tuple(mean), tuple(std)
        switch = next((i for i, op in enumerate(self.ops) if op.needs_float), len(self.ops))
        self.uint8_ops, self.float_ops = self.ops[:switch], self.ops[switch:]
        std_t = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one multiply-add, x * scale + bias, with the / 255 folded in when the
        # last op still gives uint8
        self._scale = {"uint8": 1.0 / (255.0 * std_t), "float": 1.0 / std_t}
        self._bias = -torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1) / std_t

    def per_sample(self, pil_input: bool = False) -> T.Compose:
        """The torchvision v2 transform of one CHW uint8 image (or a PIL image, ops then run on PIL as
        the reports' loaders do, before the conversion)."""
        steps = [op.torchvision() for op in self.uint8_ops]
        steps += [T.ToImage()] if pil_input else []
        steps += [T.ToDtype(torch.float32, scale=True), *(op.torchvision() for op in self.float_ops)]
        return T.Compose([*steps, T.Normalize(self.mean, self.std)])

    def batched(self, x: Batch, gen: torch.Generator | None = None) -> torch.Tensor:
        """A uint8 NCHW batch -> augmented, normalised float32 batch, on the batch's own device."""
        for op in self.uint8_ops:
            x = op.batched(x, gen)
        kind = "uint8"
        if self.float_ops:
            x, kind = x.float().div_(255), "float"
            for op in self.float_ops:
                x = op.batched(x, gen)
        if self._bias.device != x.device:  # moved once, not copied to the device with every batch
            self._bias = self._bias.to(x.device)
            self._scale = {name: t.to(x.device) for name, t in self._scale.items()}
        return torch.addcmul(self._bias, x.float(), self._scale[kind])
