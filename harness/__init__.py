"""The harness: reproduce and compare compact CIFAR-10 ResNet reports from declarative specs.

`harness.load_results()` gives the leaderboard (or the raw records) as a pandas DataFrame.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # PEP 562: `import harness` (every command, --help included) stays free of pandas and the specs
    if name == "load_results":
        from harness.results.dataframe import load_results

        return load_results
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
