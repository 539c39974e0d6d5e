"""Training augmentation: registered ops with two backends (ops.py, kernels.py) and one pipeline."""

from harness.data.augment.ops import OPS, Op
from harness.data.augment.pipeline import Pipeline

__all__ = ["OPS", "Op", "Pipeline"]
