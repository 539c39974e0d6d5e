"""Validation errors translated into one-line `FILE:KEY: problem (did you mean X?)` problems.

Tested on the spec's own section types and on tiny ones, so that each kind of pydantic error is seen
with the key the user wrote and the wording every bad input gets.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import pytest
from pydantic import Field, ValidationError

from harness.common.schema import Section
from harness.spec.problems import Problem, all_keys, format_key, is_key_of, key_parts, problems_from
from harness.spec.sections import Recipe


class Crop(Section):
    op: Literal["crop"]
    size: int = Field(32, gt=0)


class Flip(Section):
    op: Literal["flip"]
    p: float = 0.5


class Pipeline(Section):
    ops: tuple[Annotated[Union[Crop, Flip], Field(discriminator="op")], ...] = ()  # noqa: UP007
    mode: Literal["fast", "exact"] = "fast"
    batch: int = Field(1, gt=0)


def problems(raw: dict, root: type = Pipeline, **kwargs) -> list[str]:
    with pytest.raises(ValidationError) as error:
        root.model_validate(raw)
    return [str(p) for p in problems_from(error.value, root, "f.toml", **kwargs)]


def test_unknown_key_with_a_suggestion() -> None:
    assert problems({"bacth": 2}) == ["f.toml:bacth: unknown key (did you mean batch?)"]


def test_a_key_inside_a_list_of_tagged_tables_is_named_by_its_index() -> None:
    found = problems({"ops": ({"op": "crop", "sise": 3},)})
    assert found == ["f.toml:ops[0].sise: unknown key (did you mean size?)"]
    assert problems({"ops": ({"op": "flip"}, {"op": "crop", "size": 0})}) == [
        "f.toml:ops[1].size: Input should be greater than 0 (got 0)"
    ]


def test_an_unknown_registry_name_lists_the_known_ones() -> None:
    assert problems({"ops": ({"op": "flp"},)}) == [
        "f.toml:ops[0]: unknown augment op 'flp' (did you mean flip?); known: crop, flip"
    ]
    assert problems({"ops": ({"size": 3},)}) == ["f.toml:ops[0]: missing required key 'op'"]


def test_a_literal_lists_its_choices_and_a_type_error_shows_the_input() -> None:
    assert problems({"mode": "exakt"}) == ["f.toml:mode: 'exakt' is not one of 'fast', 'exact' (did you mean exact?)"]
    assert problems({"batch": "2"}) == ["f.toml:batch: Input should be a valid integer (got '2')"]


def test_every_problem_at_once_and_under_a_prefix() -> None:
    found = problems({"bacth": 1, "mode": "x"}, prefix="variants.v")
    assert sorted(found) == sorted(
        [
            "f.toml:variants.v.bacth: unknown key (did you mean batch?)",
            "f.toml:variants.v.mode: 'x' is not one of 'fast', 'exact'",
        ]
    )


def test_keys_round_trip_and_recipe_keys_are_known() -> None:
    assert format_key(key_parts("augment.train[2].p")) == "augment.train[2].p"
    assert is_key_of(Recipe, "train.optimizer.momentum") and is_key_of(Recipe, "augment.train")
    assert not is_key_of(Recipe, "train.optimiser")
    assert "train.lookahead.first_sync" in all_keys(Recipe)
    assert str(Problem("f.toml", "", "no such spec file")) == "f.toml: no such spec file"
