"""Corrupted test sets: the quick built-in corruptions, and the official CIFAR-10-C benchmark.

Built in: five corruptions at three severities after CIFAR-10-C (Hendrycks & Dietterich, 2019): noise,
blur, JPEG and contrast take its severities 1, 3 and 5; brightness is our own, added in RGB (0.1, 0.2, 0.3),
where CIFAR-10-C adds 0.05, 0.15 and 0.3 to HSV value. Each is a pure function of the images and a fixed
seed, so every model is scored on the very same corrupted pixels; they exist because CIFAR-10-C is a 2.7 GB
download.

Official: `load_cifar10c` reads CIFAR-10-C in its published layout (one `<corruption>.npy` of shape
(5 x 10,000, 32, 32, 3) uint8 per corruption, severities 1-5 in order, and `labels.npy`), memory-mapped;
`cifar10c_accuracy` scores every corruption and severity present.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.common.lazy import lazy
from harness.common.registry import did_you_mean
from harness.data.cifar10 import CLASSES, IMAGE_SIZE, DataError

TF = lazy("torchvision.transforms.v2.functional")  # loaded by the blur only: a run starts without torchvision
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


CIFAR10C_BENCHMARK = (  # the 15 corruptions whose mean is the published CIFAR-10-C figure
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
CIFAR10C_EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")  # published beside them, held out
CIFAR10C_SEVERITIES = 5


@dataclass(frozen=True)
class Cifar10C:
    """CIFAR-10-C as found in a folder: each corruption's images (memory-mapped) and the labels."""

    folder: Path
    images: dict[str, np.ndarray]  # corruption -> (5 n, 32, 32, 3) uint8, severity 1 first
    labels: np.ndarray  # (5 n,) int64

    @property
    def per_severity(self) -> int:
        return len(self.labels) // CIFAR10C_SEVERITIES


def load_cifar10c(folder: Path) -> Cifar10C:
    """The corruptions in `folder`, checked against the official layout; every problem is one DataError."""
    if not folder.is_dir():
        raise DataError(f"--cifar10c {folder}: no such folder (expected CIFAR-10-C: <corruption>.npy and labels.npy)")
    labels_file = folder / "labels.npy"
    if not labels_file.is_file():
        raise DataError(f"{labels_file}: missing (CIFAR-10-C keeps labels.npy beside one .npy per corruption)")
    labels = _array(labels_file)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) % CIFAR10C_SEVERITIES or not len(labels):
        raise DataError(
            f"{labels_file}: expected one integer label per image, {CIFAR10C_SEVERITIES} severities of equal size; "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(
            f"{labels_file}: labels must be class indices 0-{len(CLASSES) - 1}, got {labels.min()}..{labels.max()}"
        )
    known = CIFAR10C_BENCHMARK + CIFAR10C_EXTRA
    images = {}
    for path in sorted(folder.glob("*.npy")):
        name = path.stem
        if name == "labels":
            continue
        if name not in known:
            raise DataError(f"{path}: not a CIFAR-10-C corruption{did_you_mean(name, known)}")
        array = _array(path)
        expected = (len(labels), IMAGE_SIZE, IMAGE_SIZE, 3)
        if array.shape != expected or array.dtype != np.uint8:
            raise DataError(f"{path}: expected uint8 images of shape {expected}, got {array.dtype} {array.shape}")
        images[name] = array
    if not images:
        raise DataError(f"--cifar10c {folder}: no <corruption>.npy beside labels.npy (e.g. gaussian_noise.npy)")
    return Cifar10C(folder, {name: images[name] for name in known if name in images}, labels.astype(np.int64))


def cifar10c_accuracy(
    evaluate: Callable[[np.ndarray, np.ndarray], float], data: Cifar10C, done: Callable[[str], None] | None = None
) -> dict[str, object]:
    """Accuracy (%) per corruption and severity, each corruption's mean, the mean over every corruption
    present, and the benchmark's mean over its 15 corruptions when all 15 are present."""
    n = data.per_severity
    table: dict[str, dict[str, float]] = {}
    for name, images in data.images.items():
        table[name] = {}
        for severity in range(1, CIFAR10C_SEVERITIES + 1):
            rows = slice((severity - 1) * n, severity * n)
            # a writable copy of one severity's block (30 MB at 10,000 images): the memory map is read-only,
            # which PyTorch warns of when it wraps the array
            table[name][str(severity)] = evaluate(np.array(images[rows]), data.labels[rows])
            if done is not None:
                done(f"{name}/{severity}")
    means = {name: sum(by.values()) / len(by) for name, by in table.items()}
    missing = [name for name in CIFAR10C_BENCHMARK if name not in table]
    return {
        "folder": str(data.folder),
        "images_per_severity": n,
        "per_corruption": table,
        "corruption_mean": means,
        "mean": sum(means.values()) / len(means),
        "benchmark_mean": None
        if missing
        else sum(means[name] for name in CIFAR10C_BENCHMARK) / len(CIFAR10C_BENCHMARK),
        "benchmark_missing": missing,
    }


def _array(path: Path) -> np.ndarray:
    again = "download CIFAR-10-C again, or remove the file to score the others"
    if path.stat().st_size == 0:  # np.load would end in EOFError: a copy or download cut short
        raise DataError(f"{path}: empty file (0 bytes): {again}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:  # EOFError: a header cut short
        raise DataError(f"{path}: not a readable .npy array ({error}): {again}") from None
