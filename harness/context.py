"""The run context: everything fixed for the length of one run, resolved once before it starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.budget import Budget, check_fits, compress, make_budget
from harness.data import Cifar10, load_cifar10
from harness.identity import Identity
from harness.options import RunOptions, identify
from harness.runtime import Runtime, resolve_device
from harness.source import Splits, make_splits
from harness.spec import Recipe, Spec, Variant, resolve_protocol, with_protocol


@dataclass(frozen=True)
class RunContext:
    """A run's spec, recipe, budget, data, identity and runtime; built by `prepare`, never changed."""

    spec: Spec
    variant: Variant  # after its protocol
    recipe: Recipe  # the variant's recipe compressed to the budget
    options: RunOptions
    budget: Budget
    data: Cifar10
    splits: Splits
    identity: Identity
    runtime: Runtime
    results: Path

    @property
    def record_path(self) -> Path:
        return self.identity.record_path(self.results)

    @property
    def checkpoint_dir(self) -> Path:
        return self.identity.checkpoint_dir(self.results)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 NHWC images, labels) of the train, val or test split."""
        index = getattr(self.splits, name)
        if name == "test":
            return self.data.test_x[index], self.data.test_y[index]
        return self.data.train_x[index], self.data.train_y[index]


def prepare(spec: Spec, variant_name: str, options: RunOptions, results: Path) -> RunContext:
    """Resolve a request into a run: protocol, budget, data, device, identity. Writes nothing."""
    variant = with_protocol(spec, spec.variant(variant_name), resolve_protocol(spec, options.protocol))
    budget = make_budget(variant.recipe, options.profile, options.epochs, options.subset)
    recipe = compress(variant.recipe, budget)
    data = load_cifar10(options.data)
    check_fits(budget, recipe, len(data.train_x), len(data.test_x), data.label)
    device = resolve_device(options.device)
    identity = identify(spec, variant, options, budget, data.sha256, device.type)
    runtime = Runtime.for_device(device, identity.precision, identity.channels_last, identity.deterministic)
    splits = make_splits(data, recipe, budget)
    return RunContext(spec, variant, recipe, options, budget, data, splits, identity, runtime, results)
