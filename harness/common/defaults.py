"""Names the command line offers before anything heavy loads: the training profiles, and the default
folders of specs and results (relative to the project root, where the commands run)."""

from __future__ import annotations

from typing import Literal

Profile = Literal["full", "short", "demo", "smoke"]
PROFILES: tuple[Profile, ...] = ("full", "short", "demo", "smoke")  # what each means: train/request.py
DEFAULT_SPECS = "reproductions"
SHIPPED_RESULTS = "results"  # the committed records: changed only on purpose (--results results)
DEFAULT_RESULTS = "runs"  # where `run` and `sweep` write unless told otherwise (git-ignored)
