"""The base for every spec section: strict types, unknown keys rejected, frozen and hashable."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

T = TypeVar("T")


class Section(BaseModel):
    """A validated, immutable part of a spec."""

    # allow_inf_nan=False: a NaN or infinite value in a spec is a mistake, caught here rather than in training.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


def _false_is_none(value: Any) -> Any:
    # A variant switches an inherited table off with `key = false`; TOML has no null.
    return None if value is False else value


Optional = Annotated[T | None, BeforeValidator(_false_is_none)]
"""An optional table or value that a spec or variant can switch off with `false`."""
