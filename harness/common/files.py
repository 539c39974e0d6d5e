"""Atomic file writes: a reader sees the old file or the new one, never half of either. Records, caches,
checkpoints, studies and plots are all written through here.

Each write goes to `.NAME.<random>.tmp` beside the file, held under an exclusive flock while it is written,
then fsynced and renamed into place. A failed write (a full disk, a quota) removes its temporary file and
raises WriteError, one line saying how much space the file needed and how much there was. A temporary file
whose writer was killed is no longer locked: remove_stale_temporaries tells it from one being written, and
the next write of the same file removes it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import io
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from harness.common.errors import WriteError

SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # the file does not fit: space, quota, size limit


class Figure(Protocol):  # a matplotlib Figure, without importing matplotlib here
    def savefig(self, fname: Any, **kwargs: Any) -> None: ...


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # the rename is done; a folder that cannot be synced (some file systems) is not a failed write
    finally:
        os.close(fd)


class _Sink(io.RawIOBase):
    """A write-only stream onto a file descriptor that writes everything it is given (os.write may write less)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd, self.written = fd, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            count = os.write(self.fd, view)
            self.written += count
            view = view[count:]
        return total


def _temporary(path: Path) -> tuple[int, Path]:
    """A new `.NAME.<random>.tmp` beside `path`, open for writing; the mode is the umask's, as open() gives."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_file(path: Path, needed: int | None = None) -> Iterator[BinaryIO]:
    """A binary stream whose bytes become `path` when the block ends, or nothing if it fails; `needed` (the
    payload's size, when known) goes into the WriteError a full disk raises."""
    fd, tmp, sink = -1, None, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent, path.name)  # a killed writer's, of this very file
        fd, tmp = _temporary(path)
        fcntl.flock(fd, fcntl.LOCK_EX)  # "being written": remove_stale_temporaries leaves it alone
        sink = _Sink(fd)
        yield sink  # type: ignore[misc]  # a RawIOBase is a binary stream
        os.fsync(fd)
        os.replace(tmp, path)  # before the close: the lock covers the file until it has its name
        tmp = None
        _fsync_dir(path.parent)
    except OSError as error:
        raise WriteError(_failure(path, error, needed, sink.written if sink else 0)) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if fd >= 0:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix."""
    with atomic_file(path, needed=len(memoryview(data).cast("B"))) as sink:
        sink.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """`text` as UTF-8, written atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    """`payload` as indented JSON, written atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_figure(fig: Figure, path: Path, **options: Any) -> None:
    """fig.savefig(path, **options) written atomically (rendered in memory: a PNG is small), then the figure
    closed, as pyplot otherwise keeps every figure it made."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", **options)
    finally:
        import matplotlib.pyplot as plt  # here only: the rest of this module is read without matplotlib

        plt.close(fig)
    atomic_write_bytes(path, buffer.getbuffer())


def remove_stale_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the temporary files (of `name`, or of every file) in `folder` whose writer is gone: a killed
    process's. One still being written is locked by its writer and stays. Returns what was removed."""
    removed: list[Path] = []
    pattern = f".{glob.escape(name)}.*.tmp" if name else ".*.tmp"
    for candidate in sorted(folder.glob(pattern)) if folder.is_dir() else []:
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # renamed into place or removed meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if same_file(fd, candidate):  # not renamed into place since we opened it
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue  # locked: its writer is alive
        finally:
            os.close(fd)
    return removed


def same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd` (not removed or replaced since it was opened)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _failure(path: Path, error: OSError, needed: int | None, written: int) -> str:
    """One line: the file, why, how much it needed, how much was free, what to do."""
    size = human_bytes(needed) if needed is not None else f"at least {human_bytes(written)}"
    free = _free_space(path.parent)
    where = f"{human_bytes(free)} free in {_existing(path.parent)}" if free is not None else "free space unknown"
    reason = error.strerror or str(error)
    if error.errno in SPACE_ERRORS:
        advice = "free some space (or write to another folder) and run the command again"
    else:
        advice = "check that the folder exists and is writable, then run the command again"
    return f"{path}: could not write it: {reason} (it needs {size}; {where}); {advice}"


def _existing(folder: Path) -> Path:
    """`folder`, or its nearest parent that exists (a folder a full disk kept from being made)."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def _free_space(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(_existing(folder)).free
    except OSError:
        return None


def human_bytes(count: int) -> str:
    """A size as people read it: 950 B, 31.2 MB, 1.5 GB (powers of 1000, as df -H)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
