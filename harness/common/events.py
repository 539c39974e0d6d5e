"""How a long task reports progress: messages and progress bars, shown by the CLI (console.py), or not."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

Advance = Callable[..., None]  # advance(n, **postfix): n more units done, with figures to show beside


class Events(Protocol):
    """What a run (or a sweep, an eval, a table) tells its user while it works."""

    def message(self, text: str) -> None: ...

    def progress(
        self, total: int, description: str, unit: str = "it"
    ) -> contextlib.AbstractContextManager[Advance]: ...


class Silent:
    """Events that go nowhere: for tests and library use."""

    def message(self, text: str) -> None:
        pass

    @contextlib.contextmanager
    def progress(self, total: int, description: str, unit: str = "it") -> Iterator[Advance]:
        yield lambda n, **postfix: None
