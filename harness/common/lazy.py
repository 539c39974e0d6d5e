"""Modules loaded on first use, so that reading specs, records and tables never pays for PyTorch's import
(seconds): `torch = lazy("torch")` at the top of a module, and the first `torch.x` inside a function loads it."""

from __future__ import annotations

import importlib
import types
from typing import Any


class _LazyModule(types.ModuleType):
    # Not importlib.util.LazyLoader: finding a submodule's spec imports its parents at once (all of
    # torchvision for torchvision.transforms.v2), which is the cost this avoids.
    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)


def lazy(name: str) -> Any:
    """The module `name`, imported when one of its attributes is first read."""
    return _LazyModule(name)
