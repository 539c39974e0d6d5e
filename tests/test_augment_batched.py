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

from harness.data.augment import OPS, Pipeline
from harness.spec import load_specs
from tests.conftest import SPEC_FILES

REPEATS = 150
ALPHA = 1e-4  # per statistic: with seeds fixed this is a sensitivity bound, not a flake rate


def op(name: str, **params):
    return OPS[name].model_validate({"op": name, **params})


# Every registered op, with the configurations the specs use and a few stronger ones. A new op cannot
# ship without an entry here: test_every_registered_op_has_a_distribution_test fails until it has one.
EXAMPLES = {
    "random_crop": {
        "crop-pad4": {"size": 32, "padding": 4},
        "crop-pad2": {"size": 32, "padding": 2},
        "crop-reflect": {"size": 32, "padding": 4, "padding_mode": "reflect"},
    },
    "hflip": {"hflip-0.5": {"p": 0.5}, "hflip-0.2": {"p": 0.2}},
    "rotation": {"rotation-5": {"degrees": 5}, "rotation-30": {"degrees": 30}},
    "color_jitter": {
        "jitter-002": {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.05},
        "jitter-strong": {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "hue": 0.3},
    },
    "grayscale": {"grayscale-0.2": {"p": 0.2}},
    "autocontrast": {"autocontrast-0.2": {"p": 0.2}},
    "sharpness": {"sharpness-2": {"factor": 2.0, "p": 0.3}},
    "autoaugment": {"autoaugment": {"policy": "cifar10"}},
    "gaussian_blur": {"blur": {"kernel_size": 3, "sigma": (0.1, 2.0), "p": 0.3}},
    "random_erasing": {
        "erasing-random": {"p": 0.3, "scale": (0.1, 0.2), "ratio": (0.5, 2.0), "value": "random"},
        "erasing-zero": {"p": 0.8, "scale": (0.02, 0.33), "ratio": (0.3, 3.3), "value": 0.0},
    },
}
CONFIGS = {case: [op(name, **params)] for name, cases in EXAMPLES.items() for case, params in cases.items()}
# Chains across the uint8-to-float switch: ops before it on uint8, erasing after it on floats.
CONFIGS["chain-002"] = [
    op("rotation", degrees=5),
    op("hflip", p=0.5),
    op("random_crop", size=32, padding=4),
    op("color_jitter", brightness=0.1, contrast=0.1, saturation=0.1, hue=0.05),
    op("sharpness", factor=2.0, p=0.3),
    op("random_erasing", p=0.3, scale=(0.1, 0.2), ratio=(0.5, 2.0), value="random"),
]
CONFIGS["chain-erase-then-none"] = [op("random_erasing", p=0.5, value=0.0), op("random_erasing", p=0.5, value=0.5)]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@pytest.fixture(scope="module")
def images(jpeg_archive: Path) -> torch.Tensor:
    from harness.data.cifar10 import load_cifar10

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
    pipeline = Pipeline(chain, MEAN, STD)
    per_sample = pipeline.per_sample()
    reference = torch.stack([per_sample(image) for image in batch])
    batched = pipeline.batched(batch, torch.Generator().manual_seed(1))
    assert batched.shape == reference.shape and batched.dtype == torch.float32
    for stat, values in summary(batched).items():
        p = stats.ks_2samp(values, summary(reference)[stat]).pvalue
        assert p > ALPHA, f"{name}: {stat} differs (KS p = {p:.2e})"
    # the mean output image, pixel by pixel, within 6 standard errors of the per-sample one
    spread = reference.std(dim=0) / np.sqrt(len(batch)) * np.sqrt(2) + 1e-3
    assert ((batched.mean(dim=0) - reference.mean(dim=0)).abs() / spread).max() < 6


def test_deterministic_for_a_seed(images: torch.Tensor) -> None:
    chain = tuple(CONFIGS["autoaugment"] + CONFIGS["crop-pad4"] + CONFIGS["erasing-random"])
    pipeline = Pipeline(chain, MEAN, STD)
    a = pipeline.batched(images, torch.Generator().manual_seed(3))
    b = pipeline.batched(images, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, pipeline.batched(images, torch.Generator().manual_seed(4)))


def test_every_registered_op_has_a_distribution_test() -> None:
    assert set(EXAMPLES) == set(OPS.names())


def test_every_spec_pipeline_runs_batched(images: torch.Tensor) -> None:
    specs, _ = load_specs(SPEC_FILES)
    for spec in specs:
        for variant in spec.variants.values():
            recipe = variant.recipe
            out = Pipeline(recipe.augment.train, recipe.data.mean, recipe.data.std).batched(
                images, torch.Generator().manual_seed(0)
            )
            assert out.shape == (16, 3, 32, 32) and torch.isfinite(out).all()
