"""Deterministic corruptions of the test set, after CIFAR-10-C (Hendrycks & Dietterich, 2019).

Five corruptions at three severities, taken from CIFAR-10-C's severities 1, 3 and 5. Each is a pure
function of the images and a fixed seed, so every model is scored on the very same corrupted pixels.
Written here because CIFAR-10-C itself is a 2.7 GB download; only its parameters are reused.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

SEVERITIES = (1, 2, 3)
PARAMETERS: dict[str, tuple[float, float, float]] = {
    "gaussian_noise": (0.04, 0.08, 0.10),  # std of additive noise, pixels in [0, 1]
    "gaussian_blur": (0.4, 0.7, 1.0),  # sigma in pixels
    "jpeg": (80, 58, 40),  # JPEG quality
    "contrast": (0.75, 0.4, 0.15),  # factor towards each image's mean
    "brightness": (0.1, 0.2, 0.3),  # added to every pixel, in [0, 1]
}


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1]: the corruptions' own arithmetic (the test transform is
    augment.Pipeline's)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _noise(images: np.ndarray, std: float, seed: int) -> np.ndarray:
    x = to_float(images)
    return _to_uint8(x + std * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)))


def _blur(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    kernel = 2 * math.ceil(3 * sigma) + 1
    return _to_uint8(TF.gaussian_blur(to_float(images), [kernel, kernel], [sigma, sigma]))


def _jpeg(images: np.ndarray, quality: float, seed: int) -> np.ndarray:
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def _contrast(images: np.ndarray, factor: float, seed: int) -> np.ndarray:
    x = to_float(images)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return _to_uint8((x - mean) * factor + mean)


def _brightness(images: np.ndarray, shift: float, seed: int) -> np.ndarray:
    return _to_uint8(to_float(images) + shift)


CORRUPTIONS: dict[str, Callable[[np.ndarray, float, int], np.ndarray]] = {
    "gaussian_noise": _noise,
    "gaussian_blur": _blur,
    "jpeg": _jpeg,
    "contrast": _contrast,
    "brightness": _brightness,
}


def corrupt(images: np.ndarray, name: str, severity: int) -> np.ndarray:
    """uint8 NHWC images with one corruption at severity 1, 2 or 3 (the same output on every call)."""
    seed = 1000 * (list(CORRUPTIONS).index(name) + 1) + severity
    return CORRUPTIONS[name](images, PARAMETERS[name][severity - 1], seed)


def corrupted_accuracy(
    evaluate: Callable[[np.ndarray], float], images: np.ndarray, done: Callable[[str], None] | None = None
) -> dict[str, object]:
    """Accuracy (%) for every corruption and severity, and their mean (`evaluate` scores uint8 images;
    `done` hears each `name/severity` as it is scored)."""
    table: dict[str, dict[str, float]] = {}
    for name in CORRUPTIONS:
        table[name] = {}
        for severity in SEVERITIES:
            table[name][str(severity)] = evaluate(corrupt(images, name, severity))
            if done is not None:
                done(f"{name}/{severity}")
    values = [acc for by_severity in table.values() for acc in by_severity.values()]
    parameters = {name: list(values) for name, values in PARAMETERS.items()}
    return {"per_corruption": table, "mean": sum(values) / len(values), "parameters": parameters}
