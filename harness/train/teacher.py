"""A distillation teacher, frozen: its weights loaded, its BatchNorms folded, eval mode, no gradients."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from harness.common.device import Runtime
from harness.common.errors import RunError
from harness.common.schema import Section
from harness.models import build_model, fold_batchnorm
from harness.train import checkpoint


def load_teacher(path: Path, model_cfg: Section, runtime: Runtime, verify: bool) -> nn.Module:
    """The teacher network with the weights in `path`, ready to run forward only.

    `verify`: require the .sha256 beside the file (a checkpoint the harness wrote); a file the user
    gives is still checked whenever its .sha256 is there. The outputs equal the unfolded network's up to
    float rounding, with one pass over each activation fewer.
    """
    model = build_model(model_cfg)
    try:
        state = checkpoint.load_file(path, verify=verify)
        model.load_state_dict(state.get("model", state))
    except (checkpoint.CheckpointError, RuntimeError, KeyError) as error:
        first = (str(error).splitlines() or [""])[0]
        raise RunError(f"teacher checkpoint {path}: {first}") from None
    model = runtime.model(fold_batchnorm(model.eval()))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
