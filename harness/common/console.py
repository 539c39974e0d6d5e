"""How events reach a terminal: messages on stdout, progress bars (tqdm, with rate and ETA) on stderr.

Part of the CLI: the library reports through `events.Events` and never prints.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from harness.common.errors import Stopped
from harness.common.events import Advance


class ConsoleEvents:
    """Messages on stdout; progress on stderr: a bar (with rate and ETA) on a terminal, a plain line every
    `PLAIN_EVERY_S` seconds elsewhere (a log file wants whole lines, not redrawn ones); none with `quiet`.
    Progress that ends within `after_s` seconds shows nothing."""

    def __init__(
        self, quiet: bool = False, after_s: float = 0.0, messages_on_stderr: bool = False, preface: str = ""
    ) -> None:
        self.quiet = quiet
        self.after_s = after_s
        self.messages_on_stderr = messages_on_stderr  # when stdout is the command's result (eval)
        self.preface = preface  # a note for stderr once the work starts: a usage error stays one line

    def message(self, text: str) -> None:
        from tqdm import tqdm

        if self.preface:
            note(self.preface)
            self.preface = ""

        stream = sys.stderr if self.messages_on_stderr else sys.stdout
        tqdm.write(text, file=stream)
        stream.flush()

    @contextlib.contextmanager
    def progress(self, total: int, description: str, unit: str = "it") -> Iterator[Advance]:
        from tqdm import tqdm

        if self.quiet or not sys.stderr.isatty():
            with _plain_progress(total, description, unit, self.after_s, self.quiet) as advance:
                yield advance
            return
        bar = tqdm(
            total=total,
            desc=description,
            unit=unit,
            unit_scale=unit == "img",
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
            delay=self.after_s,
        )

        def advance(n: int, **postfix: str) -> None:
            bar.update(n)
            bar.set_postfix(postfix, refresh=False)

        try:
            yield advance
        finally:
            bar.close()


PLAIN_EVERY_S = 30.0


@contextlib.contextmanager
def _plain_progress(total: int, description: str, unit: str, after_s: float, quiet: bool) -> Iterator[Advance]:
    """`description: 40/100 [00:20<00:30, 2.00it/s] at=...` lines (tqdm's own format), at most every 30 s."""
    from tqdm import tqdm

    start = time.monotonic()
    state = {"n": 0, "shown": start + max(after_s, PLAIN_EVERY_S) - PLAIN_EVERY_S}

    def advance(n: int, **postfix: str) -> None:
        state["n"] += n
        now = time.monotonic()
        if not quiet and now - state["shown"] >= PLAIN_EVERY_S:
            line = tqdm.format_meter(
                state["n"], total, now - start, prefix=description, unit=unit, postfix=_postfix(postfix)
            )
            print(line, file=sys.stderr, flush=True)
            state["shown"] = now

    yield advance


def _postfix(values: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def note(text: str) -> None:
    """A line about work in progress, on stderr (stdout stays for results)."""
    print(text, file=sys.stderr)


class PlainEvents:
    """Messages as plain lines on stdout, no progress bars: what a sweep's job writes to its log."""

    def message(self, text: str) -> None:
        print(text, flush=True)

    @contextlib.contextmanager
    def progress(self, total: int, description: str, unit: str = "it") -> Iterator[Advance]:
        yield lambda n, **postfix: None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Stopped` (once: a second signal while the work stops is ignored), so that a
    run can say how far it got; the previous handlers come back after. A signal the process was started with
    ignored (`nohup`, a script's background job) stays ignored. Only the main thread can set handlers."""
    held = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        for s in held:
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {s: signal.getsignal(s) for s in held}
    for s in held:
        if previous[s] is not signal.SIG_IGN:
            signal.signal(s, stop)
    try:
        yield
    finally:
        for s, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be restored from here
                signal.signal(s, handler)
