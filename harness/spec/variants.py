"""A spec's variants: each a set of overrides merged over the base recipe (and what it extends),
validated where the user wrote each value, with the deviations it inherits."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.common.registry import did_you_mean
from harness.spec.problems import DISCRIMINATORS, Problem, all_keys, depth, is_key_of, key_parts, problems_from
from harness.spec.report import VARIANT_META_KEYS, Deviation, VariantMeta
from harness.spec.sections import RECIPE_KEYS, Recipe


@dataclass(frozen=True)
class Variant:
    """One runnable configuration of a report."""

    name: str
    description: str
    deviations: tuple[Deviation, ...]
    recipe: Recipe
    role: str = "model"
    spec_hash: str = ""
    teacher: tuple[Path, str] | None = None
    protocol: str = "own"  # the declared `[protocol] name` whose recipe replaced the report's, or own
    grid: str | None = None  # the `[grids.NAME]` this variant is a cell of (grid.py)
    cell: tuple[tuple[str, str], ...] = ()  # its (axis, value) coordinates in that grid


def build_variant(
    file: str, name: str, base: dict[str, Any], raw_variants: dict[str, dict[str, Any]], base_messages: set[str]
) -> tuple[Variant | None, list[Problem]]:
    """Validate one variant merged over the base; problems the base already has are not repeated."""
    prefix = f"variants.{name}"
    raw = raw_variants[name]
    problems: list[Problem] = []
    try:
        meta = VariantMeta.model_validate({k: raw[k] for k in VARIANT_META_KEYS if k in raw})
    except ValidationError as error:
        return None, problems_from(error, VariantMeta, file, prefix, RECIPE_KEYS + VARIANT_META_KEYS)

    chain = [name]  # this variant, then what it extends, most specific first
    while (parent := raw_variants[chain[-1]].get("extends")) is not None:
        if parent not in raw_variants:
            return None, [
                Problem(
                    file,
                    f"variants.{chain[-1]}.extends",
                    f"no variant {parent!r}{did_you_mean(parent, list(raw_variants))}",
                )
            ]
        if parent in chain:
            return None, [Problem(file, f"{prefix}.extends", f"circular: {' -> '.join(chain + [parent])}")]
        chain.append(parent)
    overrides = [{k: v for k, v in raw_variants[v].items() if k not in VARIANT_META_KEYS} for v in chain]
    merged = base
    for override in reversed(overrides):
        merged = merge(merged, override)

    def located(found: list[Problem]) -> list[Problem]:
        # Report a problem where the user wrote the value: the deepest variant table that sets it.
        out = []
        for problem in found:
            parts = key_parts(problem.key)
            depths = [depth(o, parts) for o in overrides]
            best = max(range(len(chain)), key=lambda i: (depths[i], -i))
            if depths[best] < len(parts) and problem.message in base_messages:
                continue  # the value comes from the base, which is already reported
            out.append(problem._replace(key=f"variants.{chain[best] if depths[best] else name}.{problem.key}"))
        return out

    try:
        recipe = Recipe.model_validate(merged)
    except ValidationError as error:
        return None, located(problems_from(error, Recipe, file))
    problems += located([Problem(file, key, msg) for key, msg in recipe.problems()])
    for i, deviation in enumerate(meta.deviations):
        if not is_key_of(Recipe, deviation.key):
            problems.append(
                Problem(
                    file,
                    f"{prefix}.deviations[{i}].key",
                    f"{deviation.key!r} is not a recipe key{did_you_mean(deviation.key, all_keys(Recipe))}",
                )
            )
    return Variant(
        name, meta.description, _inherited_deviations(meta, chain, raw_variants), recipe, meta.role
    ), problems


def _inherited_deviations(
    meta: VariantMeta, chain: list[str], raw_variants: dict[str, dict[str, Any]]
) -> tuple[Deviation, ...]:
    """A variant's deviations: those of the variants it extends, then its own.

    A variant inherits its parent's recipe, so it inherits the parent's departures from the report too,
    except where it changes them: a deviation is dropped by a descendant that restates its key or sets
    that recipe value itself (e.g. a variant that follows the text's 1x1 shortcut no longer carries its
    parent's note that the code uses 3x3).
    """
    kept: list[Deviation] = []
    for level in reversed(chain):  # the root first
        raw = raw_variants[level]
        try:
            level_meta = (
                meta
                if level == chain[0]
                else VariantMeta.model_validate({k: raw[k] for k in VARIANT_META_KEYS if k in raw})
            )
        except ValidationError:
            continue  # reported where that variant is validated
        changed = {d.key for d in level_meta.deviations} | set(
            _leaf_keys({k: v for k, v in raw.items() if k not in VARIANT_META_KEYS})
        )
        kept = [d for d in kept if not any(d.key == key or d.key.startswith(f"{key}.") for key in changed)]
        kept += list(level_meta.deviations)
    return tuple(kept)


def _leaf_keys(table: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of every value a variant sets (tables merge key by key, so only leaves replace)."""
    keys = []
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        keys += _leaf_keys(value, f"{dotted}.") if isinstance(value, dict) and value else [dotted]
    return keys


def merge(base: Any, override: Any) -> Any:
    """Deep-merge tables; arrays and scalars replace; a table naming another registry entry replaces."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    if any(k in base and k in override and base[k] != override[k] for k in DISCRIMINATORS):
        return copy.deepcopy(override)
    merged = dict(base)
    for key, value in override.items():
        merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
    return merged
