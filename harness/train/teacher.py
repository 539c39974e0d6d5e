"""A distillation teacher, frozen: its weights loaded, its BatchNorms folded, eval mode, no gradients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.common.device import Runtime
from harness.common.errors import RunError
from harness.common.schema import Section
from harness.models import build_model, fold_batchnorm
from harness.train import checkpoint

SHOWN = 2  # key names quoted per kind of mismatch: enough to recognise the network, still one line


@dataclass(frozen=True)
class TeacherFile:
    """Where a teacher's weights come from, for loading them and for saying what to do when they are wrong."""

    path: Path
    variant: str  # e.g. "variant 'teacher' of reproductions/dmsresnet.toml"
    given_by: str  # e.g. "--teacher-checkpoint"; "" for the final.pt of the teacher's own run
    verify: bool  # require the .sha256 beside the file (a checkpoint the harness wrote)


def load_teacher(source: TeacherFile, model_cfg: Section, runtime: Runtime) -> nn.Module:
    """The teacher network with the weights in `source.path`, ready to run forward only.

    A file the user gives is still checked against its .sha256 whenever that is there. Weights that do
    not fit the teacher's network, or that are not all finite, are refused before any training. The
    outputs equal the unfolded network's up to float rounding, with one pass over each activation fewer.
    """
    path = source.path
    model = build_model(model_cfg)
    try:
        state = checkpoint.load_file(path, verify=source.verify)
    except checkpoint.CheckpointError as error:
        first = (str(error).splitlines() or [""])[0]
        raise RunError(f"teacher checkpoint {path}: {first}") from None
    weights = state.get("model", state)
    remedy = _remedy(source)
    mismatch = _mismatch(model.state_dict(), weights)
    if mismatch:
        raise RunError(f"teacher checkpoint {path}: not the network of the {source.variant} ({mismatch}); {remedy}")
    not_finite = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not_finite:
        raise RunError(
            f"teacher checkpoint {path}: {len(not_finite)} of its {len(weights)} tensors hold NaN or infinite "
            f"values ({_names(not_finite)}), the weights of a run that diverged; {remedy}"
        )
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as error:
        first = (str(error).splitlines() or [""])[0]
        raise RunError(f"teacher checkpoint {path}: {first}; {remedy}") from None
    model = runtime.model(fold_batchnorm(model.eval()))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _mismatch(expected: dict[str, torch.Tensor], given: Any) -> str:
    """What keeps `given` from loading into a network with state `expected`, counted; "" if nothing does."""
    if not isinstance(given, dict) or not all(isinstance(v, torch.Tensor) for v in given.values()):
        return "it holds no state dict of tensors under 'model' or at its top level"
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k}: {list(given[k].shape)} in the file, {list(v.shape)} in the network"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    parts = [
        f"{len(found)} {kind} ({_names(found)})"
        for kind, found in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
        if found
    ]
    return ", ".join(parts)


def _names(found: list[str]) -> str:
    return ", ".join(found[:SHOWN]) + (", ..." if len(found) > SHOWN else "")


def _remedy(source: TeacherFile) -> str:
    if source.given_by:
        return (
            f"give {source.given_by} the final.pt of a complete run of that variant, "
            "or leave it out and the harness trains the teacher first"
        )
    return f"delete the teacher run's record and checkpoints to train it again ({source.path.parent})"
