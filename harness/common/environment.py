"""The software a record or a report was made with: the harness's commit and the library versions.

Read without importing torchvision or timm, which a run that needs neither never loads.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.common.lazy import lazy


def git_state(start: Path) -> dict[str, Any]:
    """The commit the harness ran from and whether its tree had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=start, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


TORCHVISION, TIMM = lazy("torchvision"), lazy("timm")  # imported only where their version.py cannot be read


def package_version(package: ModuleType) -> str:
    """The package's `__version__` with its build tag (torchvision 0.29.1+cu130, where its metadata says
    0.29.1), read from its version.py: importing torchvision or timm to ask would cost a run that never
    needed them seconds. A lazy module's name is read without importing it."""
    spec = importlib.util.find_spec(package.__name__)  # finds a top-level package without importing it
    found = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations)), "version.py")
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        found = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", text, flags=re.MULTILINE)
    return found.group(1) if found else package.__version__


def versions() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": package_version(TORCHVISION),
        "timm": package_version(TIMM),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "platform": platform.platform(),
    }
