"""Checkpoints that survive a kill at any instant: atomic files, verified by hash, the previous one kept.

Each save writes `epoch-NNNN.pt` through a temporary file (fsync, then rename) with a `.sha256` beside
it, and removes all but the newest two. Loading verifies the hash and falls back to the older file when
the newest is truncated or corrupt. Files are read with `weights_only=True`: a checkpoint cannot run code.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.common.errors import HarnessError, WriteError
from harness.common.files import atomic_write_bytes, remove_stale_temporaries, same_file
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
    sidecar = path.with_name(path.name + ".sha256")
    atomic_write_bytes(sidecar, f"{digest}  {path.name}\n".encode())
    try:
        atomic_write_bytes(path, data)
    except WriteError:
        sidecar.unlink(missing_ok=True)  # a full disk leaves neither half of the pair
        raise
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


LOCK_NAME = "run.lock"
LOCK_TRIES = 1000  # each retry means another process let go of the lock meanwhile: it never loops idle


@contextlib.contextmanager
def run_lock(directory: Path, root: Path) -> Iterator[None]:
    """Hold an exclusive flock on `directory/run.lock` while a run writes there.

    A second process on the same run stops with LockError (naming the holder's pid, which the holder
    writes into the file for that message only) instead of interleaving its checkpoints and record with
    ours. The operating system lets go of a flock when its process ends, however it ends: a lock left by
    a dead process is simply free. Temporary files a killed write left in `directory` are removed. Empty
    folders are removed on exit, up to (not including) `root`, so a run that fails before writing
    anything leaves nothing behind.
    """
    root_existed = root.exists()
    lock = directory / LOCK_NAME
    fd = _take_lock(directory, lock)
    try:
        remove_stale_temporaries(directory)
        yield
    finally:
        # Removed while still held: a process that opened this file meanwhile finds, once it has the
        # flock, that the name no longer leads to it, and starts again (see _take_lock).
        lock.unlink(missing_ok=True)
        os.close(fd)
        _remove_empty(directory, root)
        if not root_existed:
            with contextlib.suppress(OSError):
                root.rmdir()  # only if empty: a results folder this failed run created


def _take_lock(directory: Path, lock: Path) -> int:
    """An open descriptor of `lock`, flocked by us and still at that name; LockError if another holds it."""
    for _ in range(LOCK_TRIES):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except (FileNotFoundError, FileExistsError):
            if directory.is_file():
                raise LockError(
                    f"{directory}: a file where the run's checkpoint folder belongs; move it away"
                ) from None
            continue  # a finishing run removed an empty folder of the path as we made it or opened the lock
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LockError(f"{directory}: this run is already in progress ({holder})") from None
        except OSError as error:
            os.close(fd)
            raise LockError(
                f"{lock}: cannot take a file lock here ({error.strerror}); "
                "put --results on a file system with file locks (a local disk, or NFS with locking)"
            ) from None
        if same_file(fd, lock):
            with contextlib.suppress(OSError):  # the pid is for LockError's message only
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)  # its holder removed it as we opened it: take the file now at that name
    raise LockError(f"{directory}: could not take the run lock ({LOCK_TRIES} tries, each lost to another process)")


def _holder(fd: int) -> str:
    """Who holds the lock, for the message: the pid its holder wrote into the file."""
    try:
        pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError):
        return "process unknown: it has only just taken the lock"
    if not _alive(pid):  # its children (forked, holding the file open) outlive it for a moment
        return f"process {pid}, which has ended; a child of it still holds the lock: try again shortly"
    return f"process {pid}"


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
