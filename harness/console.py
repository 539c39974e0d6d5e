"""How events reach a terminal: messages on stdout, progress bars (tqdm, with rate and ETA) on stderr.

Part of the CLI: the library reports through `events.Events` and never prints.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from harness.events import Advance


class ConsoleEvents:
    """Messages on stdout; a progress bar per long step on stderr (none with `quiet`)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def message(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stdout)
        sys.stdout.flush()

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Advance]:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=description, file=sys.stderr, leave=False, disable=self.quiet, dynamic_ncols=True)

        def advance(n: int, **postfix: str) -> None:
            bar.update(n)
            bar.set_postfix(postfix, refresh=False)

        try:
            yield advance
        finally:
            bar.close()


def note(text: str) -> None:
    """A line about work in progress, on stderr (stdout stays for results)."""
    print(text, file=sys.stderr)


class PlainEvents:
    """Messages as plain lines on stdout, no progress bars: what a sweep's job writes to its log."""

    def message(self, text: str) -> None:
        print(text, flush=True)

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Advance]:
        yield lambda n, **postfix: None
