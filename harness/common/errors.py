"""The one kind of error a user can fix: bad input or state, reported as one line with exit status 2.

Each domain raises its own subclass (SpecError, DataError, BudgetError, CheckpointError, RunError); the
CLI catches `HarnessError` in one place. Anything else that escapes is a bug.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Bad input or state; the message names the file or argument, the key and what was expected."""


class RunError(HarnessError):
    """A run that cannot start or continue; the message says why and what to do."""


class Stopped(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM) stopped the work; `reached` says how far it got, for the one line the CLI
    prints. A KeyboardInterrupt, so that no `except Exception` on the way swallows it."""

    def __init__(self, signum: int, reached: str = "") -> None:
        super().__init__(signum)
        self.signum, self.reached = signum, reached


class WriteError(HarnessError):
    """A file that could not be written (a full disk, a quota, permissions); nothing of it is left behind."""
