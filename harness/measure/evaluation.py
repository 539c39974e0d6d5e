"""`harness eval`: a saved model's accuracy, without its spec, on the clean test set, under the built-in
corruptions and, given a folder in the official layout, on CIFAR-10-C. Scoring itself is train/step.py's
`correct_mask`, the same function a run tests with."""

from __future__ import annotations

import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from harness.common.device import Runtime, resolve_device
from harness.common.errors import RunError
from harness.common.events import Events
from harness.data.augment import Pipeline
from harness.data.cifar10 import TEST_SUBSET_SEED, load_cifar10, subset_of
from harness.data.corrupt import CORRUPTIONS, SEVERITIES, cifar10c_accuracy, corrupted_accuracy, load_cifar10c
from harness.models import MODELS, build_model
from harness.spec import as_tuples
from harness.train import checkpoint
from harness.train.step import correct_mask, percent

EVAL_BATCH = 256  # `harness eval`, which has no spec


@dataclass(frozen=True)
class EvalRequest:
    """What `harness eval` is asked to score."""

    checkpoint: Path
    data: str | None = None  # CIFAR-10 for the clean test set (default: $HARNESS_DATA, else the download)
    subset: int | None = None  # clean test images only; CIFAR-10-C is always scored whole
    device: str = "auto"
    corruptions: bool = True  # the quick built-in corruptions
    cifar10c: Path | None = None  # a folder in the official CIFAR-10-C layout


def evaluate_checkpoint(request: EvalRequest, events: Events) -> dict[str, Any]:
    """Clean (and corrupted) test accuracy of the model in a harness checkpoint, without its spec; `events`
    hears first what will be scored and how long that takes here, then the progress."""
    path = request.checkpoint
    state = read_checkpoint(path)
    card = state.get("model_card") or state  # schema 1 checkpoints kept these keys at the top level
    if not isinstance(card, dict) or "model_config" not in card or "normalization" not in card:
        raise checkpoint.CheckpointError(
            f"{path}: not a harness checkpoint (no model card: model_config and normalization); {EXPECTED}"
        )
    official = load_cifar10c(request.cifar10c) if request.cifar10c is not None else None  # checked before work
    model = _rebuild(path, card["model_config"], state["model"])
    device = resolve_device(request.device)
    runtime = Runtime.for_device(device)
    model = runtime.model(model)
    cifar = load_cifar10(request.data)
    index = np.arange(len(cifar.test_x))
    if request.subset is not None:
        if request.subset > len(index):
            raise RunError(f"--subset {request.subset} exceeds the {len(index)} test images")
        index = subset_of(index, request.subset, TEST_SUBSET_SEED)  # a run's test subset (spec val_seed 0)
    images, labels = cifar.test_x[index], cifar.test_y[index]
    transform = Pipeline((), card["normalization"]["mean"], card["normalization"]["std"])

    def score(batch_images: np.ndarray, batch_labels: np.ndarray = labels) -> float:
        return percent(correct_mask(model, batch_images, batch_labels, transform, EVAL_BATCH, runtime))

    passes = 1 + (len(CORRUPTIONS) * len(SEVERITIES) if request.corruptions else 0)
    extra = len(official.labels) * len(official.images) if official else 0
    # the probe (a warm-up and a timed batch) costs at most a quarter of the scoring it plans
    rate = _images_per_s(model, images[: max(1, min(EVAL_BATCH, passes * len(index) // 8))], transform, runtime)
    events.message(_plan(len(index), passes, extra, rate, device))
    with events.progress(passes * len(index) + extra, "eval", "img") as advance:
        clean = score(images)
        advance(len(index), at="clean")
        robust = None
        if request.corruptions:
            robust = corrupted_accuracy(score, images, lambda at: advance(len(index), at=at))
        benchmark = None
        if official is not None:
            benchmark = cifar10c_accuracy(score, official, lambda at: advance(official.per_severity, at=at))
    return {
        "checkpoint": str(path),
        "spec_hash": card.get("spec_hash"),
        "data_source": cifar.label,
        "data_sha256": cifar.sha256,
        "test_images": len(index),
        "test_acc": clean,
        "robustness": robust,
        "cifar10c": benchmark,
    }


EXPECTED = "expected a model a run saved: final.pt or epoch-NNNN.pt in RESULTS/checkpoints/REPORT/VARIANT/RUN/"


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The contents of a checkpoint, or one line saying the file is not one (never PyTorch's advice on
    loading it anyway: the harness never runs code from a file)."""
    if path.is_file() and not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise checkpoint.CheckpointError(
            f"{path}: unreadable, not a PyTorch checkpoint file, so not a harness checkpoint; {EXPECTED}"
        )
    with warnings.catch_warnings():  # PyTorch's notes on the pickle protocol of a file it then refuses
        warnings.simplefilter("ignore")
        try:
            return checkpoint.load_file(path, verify=False)  # still checked whenever its .sha256 lies beside it
        except checkpoint.CheckpointError as error:
            if error.__context__ is None:  # missing, a folder, a hash mismatch: already one line that says so
                raise
            why = type(error.__context__).__name__
            raise checkpoint.CheckpointError(
                f"{path}: not a harness checkpoint (PyTorch cannot read it as tensors alone: {why}); {EXPECTED}"
            ) from None


def _images_per_s(model: nn.Module, probe: np.ndarray, transform: Pipeline, runtime: Runtime) -> float:
    """Scoring rate here, from one timed batch after a warm-up one."""
    labels = np.zeros(len(probe), dtype=np.int64)
    correct_mask(model, probe, labels, transform, EVAL_BATCH, runtime)
    start = time.perf_counter()
    correct_mask(model, probe, labels, transform, EVAL_BATCH, runtime)
    runtime.sync()
    return len(probe) / max(time.perf_counter() - start, 1e-9)


def _plan(images: int, passes: int, extra: int, rate: float, device: torch.device) -> str:
    from harness.measure.gpu import duration

    what = f"{images:,} test images" + (
        f", clean and under {len(CORRUPTIONS)} corruptions x {len(SEVERITIES)} severities" if passes > 1 else ""
    )
    what += f", and {extra:,} CIFAR-10-C images" if extra else ""
    total = passes * images + extra
    return (
        f"scoring {what}: {total:,} images at about {rate:.0f} img/s on {device.type}, about {duration(total / rate)}"
    )


def _rebuild(path: Path, config: dict[str, Any], weights: dict[str, Any]) -> nn.Module:
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
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise checkpoint.CheckpointError(
            f"{path}: weights do not fit the model ({str(error).splitlines()[0]})"
        ) from None
    return model


def evaluation_text(path: Path, result: dict[str, Any]) -> str:
    """`harness eval`'s figures as text: the clean accuracy, then a row per corruption."""
    from tabulate import tabulate

    lines = [
        f"{path}: {result['test_images']:,} test images of {result['data_source']}",
        f"clean accuracy: {result['test_acc']:.2f}%",
    ]
    robust = result.get("robustness")
    if robust:
        body = [
            [name, *(f"{acc:.2f}" for acc in by_severity.values())]
            for name, by_severity in robust["per_corruption"].items()
        ]
        lines.append(
            tabulate(body, headers=["corruption", "severity 1", "severity 2", "severity 3"], tablefmt="github")
        )
        lines.append(f"mean corrupted accuracy: {robust['mean']:.2f}%")
    official = result.get("cifar10c")
    if official:
        lines.append(f"CIFAR-10-C ({official['folder']}, {official['images_per_severity']:,} images per severity):")
        body = [
            [name, *(f"{acc:.2f}" for acc in by.values()), f"{official['corruption_mean'][name]:.2f}"]
            for name, by in official["per_corruption"].items()
        ]
        headers = ["corruption", *(f"severity {s}" for s in range(1, 6)), "mean"]
        lines.append(
            tabulate(
                body, headers=headers, tablefmt="github", disable_numparse=True, colalign=("left",) + ("right",) * 6
            )
        )
        lines.append(f"mean over the {len(body)} corruptions present: {official['mean']:.2f}%")
        if official["benchmark_mean"] is not None:
            lines.append(f"CIFAR-10-C benchmark mean (15 corruptions): {official['benchmark_mean']:.2f}%")
        else:
            lines.append(f"no benchmark mean: {len(official['benchmark_missing'])} of its 15 corruptions are missing")
    return "\n".join(lines)
