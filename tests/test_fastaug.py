"""The batched augmentations draw the same distribution as the per-sample torchvision ops they replace.

For every op configuration the specs use (and a few stronger ones), real CIFAR-10 images are repeated
many times and passed through both paths; two-sample Kolmogorov-Smirnov tests then compare per-image
statistics (brightness, per-channel means, contrast, a corner and the centre pixel, left-right balance)
and the mean output images are compared pixel by pixel. Seeds are fixed, so the outcome is repeatable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from harness.augment import OPS, torchvision_pipeline
from harness.fastaug import BatchPipeline, supported
from harness.spec import load_specs
from tests.conftest import SPEC_FILES

REPEATS = 150
ALPHA = 1e-4  # per statistic: with seeds fixed this is a sensitivity bound, not a flake rate


def op(name: str, **params):
    return OPS[name].model_validate({"op": name, **params})


CONFIGS = {
    "crop-pad4": [op("random_crop", size=32, padding=4)],
    "crop-pad2": [op("random_crop", size=32, padding=2)],
    "crop-reflect": [op("random_crop", size=32, padding=4, padding_mode="reflect")],
    "hflip-0.5": [op("hflip", p=0.5)],
    "hflip-0.2": [op("hflip", p=0.2)],
    "rotation-5": [op("rotation", degrees=5)],
    "rotation-30": [op("rotation", degrees=30)],
    "jitter-002": [op("color_jitter", brightness=0.1, contrast=0.1, saturation=0.1, hue=0.05)],
    "jitter-strong": [op("color_jitter", brightness=0.5, contrast=0.5, saturation=0.5, hue=0.3)],
    "grayscale-0.2": [op("grayscale", p=0.2)],
    "autocontrast-0.2": [op("autocontrast", p=0.2)],
    "sharpness-2": [op("sharpness", factor=2.0, p=0.3)],
    "autoaugment": [op("autoaugment", policy="cifar10")],
    "blur": [op("gaussian_blur", kernel_size=3, sigma=(0.1, 2.0), p=0.3)],
    "erasing-random": [op("random_erasing", p=0.3, scale=(0.1, 0.2), ratio=(0.5, 2.0), value="random")],
    "erasing-zero": [op("random_erasing", p=0.8, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0)],
}
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@pytest.fixture(scope="module")
def images(jpeg_archive: Path) -> torch.Tensor:
    from harness.data import load_cifar10

    data = load_cifar10(jpeg_archive)
    pick = np.random.default_rng(0).choice(len(data.test_x), 16, replace=False)
    return torch.from_numpy(data.test_x[pick]).permute(0, 3, 1, 2).contiguous()


def summary(x: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image statistics, rounded: float noise must not split one atom of a discrete distribution in two."""
    x = x.double()
    stats_ = {
        "mean": x.mean(dim=(1, 2, 3)).numpy(),
        "red": x[:, 0].mean(dim=(1, 2)).numpy(),
        "blue": x[:, 2].mean(dim=(1, 2)).numpy(),
        "std": x.std(dim=(1, 2, 3)).numpy(),
        "corner": x[:, :, 0, 0].mean(dim=1).numpy(),
        "centre": x[:, :, 16, 16].mean(dim=1).numpy(),
        "left-right": (x[..., :16].mean(dim=(1, 2, 3)) - x[..., 16:].mean(dim=(1, 2, 3))).numpy(),
    }
    return {name: np.round(values, 4) for name, values in stats_.items()}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_batched_op_matches_torchvision(images: torch.Tensor, name: str) -> None:
    chain = tuple(CONFIGS[name])
    batch = images.repeat(REPEATS, 1, 1, 1)
    torch.manual_seed(0)
    per_sample = torchvision_pipeline(chain, MEAN, STD)
    reference = torch.stack([per_sample(image) for image in batch])
    batched = BatchPipeline(chain, MEAN, STD)(batch, torch.Generator().manual_seed(1))
    assert batched.shape == reference.shape and batched.dtype == torch.float32
    for stat, values in summary(batched).items():
        p = stats.ks_2samp(values, summary(reference)[stat]).pvalue
        assert p > ALPHA, f"{name}: {stat} differs (KS p = {p:.2e})"
    # the mean output image, pixel by pixel, within 6 standard errors of the per-sample one
    spread = reference.std(dim=0) / np.sqrt(len(batch)) * np.sqrt(2) + 1e-3
    assert ((batched.mean(dim=0) - reference.mean(dim=0)).abs() / spread).max() < 6


def test_deterministic_for_a_seed(images: torch.Tensor) -> None:
    chain = tuple(CONFIGS["autoaugment"] + CONFIGS["crop-pad4"] + CONFIGS["erasing-random"])
    pipeline = BatchPipeline(chain, MEAN, STD)
    a = pipeline(images, torch.Generator().manual_seed(3))
    b = pipeline(images, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, pipeline(images, torch.Generator().manual_seed(4)))


def test_every_spec_pipeline_is_supported_and_runs(images: torch.Tensor) -> None:
    specs, _ = load_specs(SPEC_FILES)
    for spec in specs:
        for variant in spec.variants.values():
            recipe = variant.recipe
            assert supported(recipe.augment.train)
            out = BatchPipeline(recipe.augment.train, recipe.data.mean, recipe.data.std)(
                images, torch.Generator().manual_seed(0)
            )
            assert out.shape == (16, 3, 32, 32) and torch.isfinite(out).all()
