"""Reading a CIFAR-10 source defensively: an archive's members only from inside its root, and a damaged
torchvision folder's files named (torchvision itself only says "You can use download=True").

No PyTorch here: torchvision is imported only to name the files of a folder it has refused.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path, PurePosixPath

SHOWN = 10  # refused members named in the one warning; the rest are counted


def _outside(path: str) -> bool:
    """Whether an archive path names a place outside the archive's root (absolute, or with a `..` part)."""
    return path.startswith("/") or ".." in PurePosixPath(path).parts


def outside_root(member: tarfile.TarInfo) -> bool:
    """Whether a member is named, or (a link) points, outside the archive's root. `train/../train/x` counts
    as outside too: no archive of images needs `..`, and a reader should not have to resolve it."""
    if _outside(member.name):
        return True
    if member.issym():  # relative to the link's own folder (an absolute target stays absolute)
        target = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
        return target.startswith("/") or target.split("/")[0] == ".."
    return member.islnk() and _outside(member.linkname)  # a hard link: relative to the root


def member_bytes(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | None:
    """A file member's bytes, or a link's (its target read from the archive, never from the disk); None for
    a link to no file of the archive (or a loop of links)."""
    try:
        handle = archive.extractfile(member)
    except (KeyError, RecursionError):
        return None
    return handle.read() if handle else None


def refused_text(source: Path, refused: list[str]) -> str:
    """One warning naming the members an archive's reading refused."""
    shown = ", ".join(refused[:SHOWN]) + (f" and {len(refused) - SHOWN} more" if len(refused) > SHOWN else "")
    return (
        f"{source}: {len(refused)} archive member(s) named or linked outside the archive's root (or links to "
        f"nothing in it) refused, not read: {shown}"
    )


def torchvision_damage(batches: Path) -> str | None:
    """Which files of a cifar-10-batches-py folder are missing or not the published bytes (by their MD5s),
    e.g. `missing: data_batch_5; damaged (truncated or altered): data_batch_1`; None when all are intact."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    expected = [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], CIFAR10.meta["md5"])]
    missing = [name for name, _ in expected if not (batches / name).is_file()]
    damaged = [name for name, md5 in expected if name not in missing and not check_integrity(str(batches / name), md5)]
    parts = [f"missing: {', '.join(missing)}"] if missing else []
    parts += [f"damaged (truncated or altered): {', '.join(damaged)}"] if damaged else []
    return "; ".join(parts) or None


def damaged_text(batches: Path, download: bool) -> str:
    """One line: which files of a torchvision CIFAR-10 folder are missing or damaged, and what to do."""
    found = torchvision_damage(batches) or "not a readable CIFAR-10 folder"
    if download:  # the cache's own copy: a fresh download replaces it
        return f"{batches}: {found}: delete {batches} and re-run with network access, or pass --data ARCHIVE"
    return (
        f"{batches}: {found}: pass --data with an intact copy (e.g. a .tar.gz), or delete {batches} "
        "and re-run without --data, with network access, to download CIFAR-10"
    )
