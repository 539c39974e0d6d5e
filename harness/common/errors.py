"""The one kind of error a user can fix: bad input or state, reported as one line with exit status 2.

Each domain raises its own subclass (SpecError, DataError, BudgetError, CheckpointError, RunError); the
CLI catches `HarnessError` in one place. Anything else that escapes is a bug.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Bad input or state; the message names the file or argument, the key and what was expected."""


class RunError(HarnessError):
    """A run that cannot start or continue; the message says why and what to do."""
