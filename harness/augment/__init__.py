"""Training augmentation: registered ops with two backends (ops.py, kernels.py) and one pipeline."""

from harness.augment.ops import OPS, Op
from harness.augment.pipeline import Pipeline

__all__ = ["OPS", "Op", "Pipeline"]
