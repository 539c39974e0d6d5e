"""The batched forms of the augmentation ops: a whole uint8 batch at once, on its own device.

Every op draws its own random parameters per image, from the same distributions as the torchvision op
it replaces, and applies them with tensor operations over the batch: no Python runs per image. Where
torchvision's functional kernels take one parameter for the whole batch (sharpness, autocontrast,
grayscale, AutoAugment's fixed magnitudes), the batch is split by parameter value and the kernel is
called once per group, so those ops are torchvision's own arithmetic. Ops with a continuous parameter
per image (crop offsets, rotation angles, colour factors, blur sigmas, erasing boxes) are vectorised
here, following torchvision's kernels line by line (uint8 truncation and rounding included).
tests/test_augment_batched.py checks each against the per-sample torchvision op with two-sample tests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from harness.common.lazy import lazy

# loaded by the ops that use them: a run whose ops need none (zero-padded crop, flip, rotation) starts without
# torchvision, seconds sooner
T = lazy("torchvision.transforms.v2")
TF = lazy("torchvision.transforms.v2.functional")
color = lazy("torchvision.transforms.v2.functional._color")

if TYPE_CHECKING:
    from harness.data.augment import ops

Batch = torch.Tensor  # uint8 (or float in [0, 1] after the conversion point) N x C x H x W


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def _chosen(n: int, p: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """The images an op with probability p applies to (torchvision: `torch.rand(1) >= p` skips)."""
    return torch.rand(n, generator=gen, device=device) < p


def _on_subset(x: Batch, mask: torch.Tensor, fn: Callable[[Batch], Batch]) -> Batch:
    if bool(mask.any()):
        x = x.clone()
        x[mask] = fn(x[mask])
    return x


def random_crop(x: Batch, op: ops.RandomCrop, gen: torch.Generator) -> Batch:
    """A window per image of the padded image, read with one gather (no padded copy for zero padding)."""
    n, c, h, w = x.shape
    size, pad = op.size, op.padding
    top = torch.randint(0, h + 2 * pad - size + 1, (n,), generator=gen, device=x.device)
    left = torch.randint(0, w + 2 * pad - size + 1, (n,), generator=gen, device=x.device)
    steps = torch.arange(size, device=x.device)
    if op.padding_mode != "constant":
        x = TF.pad(x, [pad], padding_mode=op.padding_mode)
        h, w, pad = h + 2 * pad, w + 2 * pad, 0
    rows = top[:, None] + steps - pad  # source rows and columns in the unpadded image
    cols = left[:, None] + steps - pad
    flat = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]
    out = x.reshape(n, c, h * w).gather(2, flat.view(n, 1, -1).expand(n, c, -1)).view(n, c, size, size)
    if pad:
        inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])[:, None]
        out = out.mul_(inside) if op.fill == 0 else torch.where(inside, out, torch.full_like(out, op.fill))
    return out


def hflip(x: Batch, op: ops.HorizontalFlip, gen: torch.Generator) -> Batch:
    return _on_subset(x, _chosen(len(x), op.p, gen, x.device), lambda s: s.flip(-1))


def rotation(x: Batch, op: ops.Rotation, gen: torch.Generator) -> Batch:
    """torchvision's rotate (nearest, zero fill, centre of the image) with an angle per image."""
    n, _, h, w = x.shape
    angle = _uniform(n, -op.degrees, op.degrees, gen, x.device)
    rot = torch.deg2rad(-angle)  # torchvision inverts the angle for its inverse affine matrix
    cos, sin, zero = torch.cos(rot), torch.sin(rot), torch.zeros_like(rot)
    theta = torch.stack([cos, sin, zero, -sin, cos, zero], dim=1).view(n, 2, 3)
    # torchvision's _affine_grid, batched: pixel-centre grid, theta rescaled by the half sizes.
    base = torch.empty(1, h, w, 3, device=x.device)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=x.device))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=x.device).unsqueeze(-1))
    base[..., 2].fill_(1)
    scale = torch.tensor([0.5 * w, 0.5 * h], device=x.device)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(theta.transpose(1, 2) / scale).view(n, h, w, 2)
    out = F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if op.fill:
        inside = F.grid_sample(
            torch.ones_like(x[:, :1], dtype=torch.float32),
            grid,
            mode="nearest",
            padding_mode="zeros",
            align_corners=False,
        )
        out = torch.where(inside < 0.5, torch.full_like(out, float(op.fill)), out)
    return out.round_().to(x.dtype)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # torchvision's _blend with a ratio per image: clamp, then truncate back to uint8.
    return (a * ratio + b * (1.0 - ratio)).clamp_(0, 255).to(dtype)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.float().unbind(dim=-3)
    return (r * 0.2989 + g * 0.587 + b * 0.114).unsqueeze(-3).floor_()


def _brightness(x: Batch, f: torch.Tensor) -> Batch:
    return (x.float() * f).clamp_(0, 255).to(x.dtype)


def _contrast(x: Batch, f: torch.Tensor) -> Batch:
    mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x.float(), mean, f, x.dtype)


def _saturation(x: Batch, f: torch.Tensor) -> Batch:
    return _blend(x.float(), _gray(x), f, x.dtype)


def _hue(x: Batch, f: torch.Tensor) -> Batch:
    hsv = color._rgb_to_hsv(x.float() / 255)
    h, s, v = hsv.unbind(dim=-3)
    h = (h + f.view(-1, 1, 1)).remainder_(1.0)
    rgb = color._hsv_to_rgb(torch.stack((h, s, v), dim=-3))
    return rgb.mul_(255).round_().clamp_(0, 255).to(x.dtype)  # to_dtype(float -> uint8, scale=True)


def color_jitter(x: Batch, op: ops.ColorJitter, gen: torch.Generator) -> Batch:
    """ColorJitter: the four adjustments in a random order per image, each with its own factor."""
    n, device = len(x), x.device
    order = torch.argsort(torch.rand(n, 4, generator=gen, device=device), dim=1)  # a uniform permutation
    factors = {
        0: _uniform(n, max(0.0, 1 - op.brightness), 1 + op.brightness, gen, device) if op.brightness else None,
        1: _uniform(n, max(0.0, 1 - op.contrast), 1 + op.contrast, gen, device) if op.contrast else None,
        2: _uniform(n, max(0.0, 1 - op.saturation), 1 + op.saturation, gen, device) if op.saturation else None,
        3: _uniform(n, -op.hue, op.hue, gen, device) if op.hue else None,
    }
    kernels = {0: _brightness, 1: _contrast, 2: _saturation, 3: _hue}
    x = x.clone()  # once: the groups below write into it in place
    for position in range(4):
        for fn_id, kernel in kernels.items():
            factor = factors[fn_id]
            mask = order[:, position] == fn_id
            if factor is None or not bool(mask.any()):
                continue
            f = factor[mask].view(-1, 1, 1, 1) if fn_id != 3 else factor[mask]
            x[mask] = kernel(x[mask], f)
    return x


def grayscale(x: Batch, op: ops.Grayscale, gen: torch.Generator) -> Batch:
    return _on_subset(x, _chosen(len(x), op.p, gen, x.device), lambda s: TF.rgb_to_grayscale(s, 3))


def autocontrast(x: Batch, op: ops.Autocontrast, gen: torch.Generator) -> Batch:
    return _on_subset(x, _chosen(len(x), op.p, gen, x.device), TF.autocontrast)


def sharpness(x: Batch, op: ops.Sharpness, gen: torch.Generator) -> Batch:
    return _on_subset(x, _chosen(len(x), op.p, gen, x.device), lambda s: TF.adjust_sharpness(s, op.factor))


class _AutoAugment:
    """torchvision's AutoAugment policy, drawn per image, applied per group of identical operations.

    Uses the policy table and the operation kernel of torchvision's own AutoAugment (private helpers),
    so that every operation and magnitude is exactly torchvision's.
    """

    def __init__(self, policy: str) -> None:
        self.reference = T.AutoAugment(T.AutoAugmentPolicy(policy))

    def __call__(self, x: Batch, gen: torch.Generator) -> Batch:
        ref = self.reference
        n, device = len(x), x.device
        height, width = x.shape[-2:]
        policies = ref._policies
        chosen = torch.randint(len(policies), (n,), generator=gen, device=device)
        x = x.clone()  # once: the groups below write into it in place
        for step in range(2):
            apply = torch.rand(n, generator=gen, device=device)
            negate = torch.rand(n, generator=gen, device=device) <= 0.5
            for index, policy in enumerate(policies):
                transform_id, probability, magnitude_idx = policy[step]
                mask = (chosen == index) & (apply <= probability)
                if not bool(mask.any()):
                    continue
                magnitudes_fn, signed = ref._AUGMENTATION_SPACE[transform_id]
                magnitudes = magnitudes_fn(10, height, width)
                magnitude = 0.0 if magnitudes is None else float(magnitudes[magnitude_idx])
                for sign, group in ((1.0, mask & ~negate), (-1.0, mask & negate)) if signed else ((1.0, mask),):
                    if bool(group.any()):
                        x[group] = ref._apply_image_or_video_transform(
                            x[group], transform_id, sign * magnitude, interpolation=ref.interpolation, fill=ref._fill
                        )
        return x


def gaussian_blur(x: Batch, op: ops.GaussianBlur, gen: torch.Generator) -> Batch:
    """GaussianBlur with a sigma per image (torchvision's kernel: reflect padding, rounded to uint8)."""
    n, c, h, w = x.shape
    mask = _chosen(n, op.p, gen, x.device)
    sigma = _uniform(n, op.sigma[0], op.sigma[1], gen, x.device)
    if not bool(mask.any()):
        return x
    k = op.kernel_size
    half = (k - 1) * 0.5
    steps = torch.linspace(-half, half, steps=k, device=x.device)
    kernel = torch.exp(-0.5 * (steps[None, :] / sigma[mask][:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (m, k)
    sub = x[mask].float()
    m = len(sub)
    padded = F.pad(sub, [k // 2, k // 2, k // 2, k // 2], mode="reflect").reshape(1, m * c, h + k - 1, w + k - 1)
    weights = kernel.repeat_interleave(c, dim=0)
    out = F.conv2d(padded, weights.view(m * c, 1, 1, k), groups=m * c)
    out = F.conv2d(out, weights.view(m * c, 1, k, 1), groups=m * c).view(m, c, h, w)
    x = x.clone()
    x[mask] = out.round_().clamp_(0, 255).to(x.dtype)
    return x


def random_erasing(x: Batch, op: ops.RandomErasing, gen: torch.Generator) -> Batch:
    """RandomErasing on float images: 10 box proposals per image, the first that fits, as torchvision."""
    n, _, h, w = x.shape
    device = x.device
    mask = _chosen(n, op.p, gen, device)
    area = h * w
    tries = 10
    erase_area = area * (torch.rand(n, tries, generator=gen, device=device) * (op.scale[1] - op.scale[0]) + op.scale[0])
    log_ratio = torch.log(torch.tensor(op.ratio, device=device))
    ratio = torch.exp(torch.rand(n, tries, generator=gen, device=device) * (log_ratio[1] - log_ratio[0]) + log_ratio[0])
    bh = torch.sqrt(erase_area * ratio).round().long()
    bw = torch.sqrt(erase_area / ratio).round().long()
    fits = (bh < h) & (bw < w)
    first = torch.argmax(fits.int(), dim=1)
    found = fits.any(dim=1)
    rows = torch.arange(n, device=device)
    bh, bw = bh[rows, first], bw[rows, first]
    top = (torch.rand(n, generator=gen, device=device) * (h - bh + 1)).floor().long()
    left = (torch.rand(n, generator=gen, device=device) * (w - bw + 1)).floor().long()
    ys = torch.arange(h, device=device)[None, :, None]
    xs = torch.arange(w, device=device)[None, None, :]
    box = (
        (ys >= top[:, None, None])
        & (ys < (top + bh)[:, None, None])
        & (xs >= left[:, None, None])
        & (xs < (left + bw)[:, None, None])
    )
    box &= (mask & found)[:, None, None]
    if op.value == "random":
        fill = torch.randn(x.shape, generator=gen, device=device, dtype=x.dtype)
    else:
        fill = torch.full_like(x, float(op.value))
    return torch.where(box[:, None], fill, x)


@functools.lru_cache(maxsize=4)
def auto_augment(policy: str) -> _AutoAugment:
    """The batched AutoAugment of a policy (built once: it holds torchvision's policy table)."""
    return _AutoAugment(policy)
