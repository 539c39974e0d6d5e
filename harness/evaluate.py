"""`harness eval`: score a saved model on the clean and the corrupted test set, without its spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from harness import checkpoint
from harness.data import load_cifar10
from harness.models import MODELS, build_model
from harness.robustness import corrupted_accuracy
from harness.spec import as_tuples
from harness.train import TEST_SUBSET_SEED, Precision, RunError, evaluate_arrays, resolve_device, subset_of

EVAL_BATCH = 256


def evaluate_checkpoint(
    path: Path, data: str | None, subset: int | None, device_name: str, corruptions: bool
) -> dict[str, Any]:
    """Clean (and corrupted) test accuracy of the model in a harness checkpoint."""
    state = checkpoint.load_file(path, verify=False)  # still checked whenever its .sha256 lies beside it
    if "model_config" not in state or "normalization" not in state:
        raise checkpoint.CheckpointError(f"{path}: not a harness model checkpoint (no model_config/normalization)")
    config = state["model_config"]
    if config.get("arch") not in MODELS:
        raise checkpoint.CheckpointError(f"{path}: unknown model arch {config.get('arch')!r}")
    try:
        model_cfg = MODELS[config["arch"]].config.model_validate(as_tuples(config))
    except ValidationError as error:
        raise checkpoint.CheckpointError(
            f"{path}: its model_config does not validate ({error.error_count()} problems)"
        ) from None
    model = build_model(model_cfg)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise checkpoint.CheckpointError(
            f"{path}: weights do not fit the model ({str(error).splitlines()[0]})"
        ) from None
    device = resolve_device(device_name)
    model = model.to(device)
    cifar = load_cifar10(data)
    index = np.arange(len(cifar.test_x))
    if subset is not None:
        if subset > len(index):
            raise RunError(f"--subset {subset} exceeds the {len(index)} test images")
        index = subset_of(index, subset, TEST_SUBSET_SEED)  # a run's test subset (spec val_seed 0)
    images, labels = cifar.test_x[index], cifar.test_y[index]
    mean, std = tuple(state["normalization"]["mean"]), tuple(state["normalization"]["std"])
    precision = Precision(None, False)

    def score(batch_images: np.ndarray) -> float:
        return evaluate_arrays(model, batch_images, labels, mean, std, EVAL_BATCH, device, precision)

    return {
        "checkpoint": str(path),
        "spec_hash": state.get("spec_hash"),
        "data_source": cifar.label,
        "data_sha256": cifar.sha256,
        "test_images": len(index),
        "test_acc": score(images),
        "robustness": corrupted_accuracy(score, images) if corruptions else None,
    }
