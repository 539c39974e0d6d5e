"""Checkpoints that survive a kill at any instant: atomic files, verified by hash, the previous one kept.

Each save writes `epoch-NNNN.pt` through a temporary file (fsync, then rename) with a `.sha256` beside
it, and removes all but the newest two. Loading verifies the hash and falls back to the older file when
the newest is truncated or corrupt. Files are read with `weights_only=True`: a checkpoint cannot run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.common.errors import HarnessError
from harness.common.files import atomic_write_bytes
from harness.common.lazy import lazy

torch = lazy("torch")  # loaded on first use: records are written and read without PyTorch

KEEP = 2
PATTERN = re.compile(r"^epoch-(\d{4,})\.pt$")


class CheckpointError(HarnessError):
    """No usable checkpoint; the message says what was found and why it was rejected."""


def save_file(path: Path, state: dict[str, Any]) -> str:
    """torch.save `state` to `path` atomically, with its sha256 beside it; returns the hash."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()  # hashed in memory, not read back from disk
    # The sidecar first: a crash between the two leaves a checkpoint that fails its check, never one
    # that passes it wrongly.
    atomic_write_bytes(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n".encode())
    atomic_write_bytes(path, data)
    return digest


def load_file(path: Path, verify: bool = True) -> dict[str, Any]:
    """Load a file written by save_file, after checking its hash (optional for files from elsewhere)."""
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a checkpoint file (expected a run's final.pt or epoch-NNNN.pt)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.exists() or verify:
        if not sidecar.exists():
            raise CheckpointError(f"{path}: no {sidecar.name} to verify it against")
        expected = (sidecar.read_text(encoding="utf-8").split() or [""])[0]
        if file_sha256(path) != expected:
            raise CheckpointError(f"{path}: hash mismatch (truncated or corrupt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means an unusable file
        # PyTorch's message is a paragraph; its first line says what failed.
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{path}: unreadable, not a PyTorch checkpoint ({type(error).__name__}: {first})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, expected a checkpoint dictionary")
    return state


def save(directory: Path, epoch: int, state: dict[str, Any]) -> Path:
    """Save the state reached after `epoch` (0-based) and prune all but the newest KEEP checkpoints."""
    path = directory / f"epoch-{epoch:04d}.pt"
    save_file(path, state)
    for old in _checkpoints(directory)[KEEP:]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
    return path


@dataclass(frozen=True)
class TrainState:
    """What a checkpoint holds: exactly what a resumed run reads back, and the model card `harness eval` reads."""

    identity: dict[str, Any]  # the run this state belongs to (identity.Identity.as_dict)
    epoch: int  # the last finished epoch, 0-based
    model: dict[str, Any]
    optimizer: dict[str, Any]  # Lookahead's slow weights and step count included
    scheduler: dict[str, Any]
    history: list[dict[str, Any]]
    best: dict[str, Any] | None  # {"epoch", "val_acc", "model"} of the best validation epoch so far
    wall_time_s: float
    model_card: dict[str, Any]  # spec_hash, model_config, normalization: enough to rebuild and score the model

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # not asdict: it would copy every tensor

    @classmethod
    def from_dict(cls, state: dict[str, Any], path: Path) -> TrainState:
        missing = [f.name for f in fields(cls) if f.name not in state]
        if missing:
            raise CheckpointError(f"{path}: not a training checkpoint of this harness (no {', '.join(missing)})")
        return cls(**{f.name: state[f.name] for f in fields(cls)})


def save_state(directory: Path, state: TrainState) -> Path:
    """Save the state reached after `state.epoch` and prune all but the newest KEEP checkpoints."""
    return save(directory, state.epoch, state.to_dict())


def load_state(directory: Path) -> tuple[TrainState, list[str]]:
    """The newest checkpoint that verifies and reads as a TrainState, and a line for each rejected one."""
    rejected: list[str] = []
    for path in _checkpoints(directory):
        try:
            return TrainState.from_dict(load_file(path), path), rejected
        except CheckpointError as error:
            rejected.append(str(error))
    found = "; ".join(rejected) if rejected else "none found"
    raise CheckpointError(f"{directory}: no usable checkpoint to resume from ({found})")


class LockError(CheckpointError):
    """Another live process is running the same run."""


@contextlib.contextmanager
def run_lock(directory: Path, root: Path) -> Iterator[None]:
    """Hold `directory/run.lock` (with this process's pid) while a run writes there.

    A second process on the same run stops with LockError instead of interleaving its checkpoints and
    record with ours; a lock left by a dead process is taken over. Empty folders are removed on exit,
    up to (not including) `root`, so a run that fails before writing anything leaves nothing behind.
    """
    root_existed = root.exists()
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / "run.lock"
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None and owner != os.getpid() and _alive(owner):
                raise LockError(f"{directory}: this run is already in progress (process {owner})") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        break
    else:
        raise LockError(f"{directory}: could not take the run lock")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        _remove_empty(directory, root)
        if not root_existed:
            with contextlib.suppress(OSError):
                root.rmdir()  # only if empty: a results folder this failed run created


def _lock_owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_empty(directory: Path, root: Path) -> None:
    """Remove `directory` and its parents below `root` while they are empty."""
    root = root.resolve()
    current = directory.resolve()
    while current != root and current.is_relative_to(root):
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def has_checkpoint(directory: Path) -> bool:
    return bool(_checkpoints(directory))


def _checkpoints(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(PATTERN.match(p.name).group(1)), reverse=True)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
