"""Grids: a base variant crossed with named axes, expanded at load time into ordinary variants.

`[grids.NAME]` names the variant every cell extends (`base`), a name template (`"{model}-{optimizer}-{lr}"`)
and its axes; an axis maps each value's name to the recipe keys it sets, and may re-base the cells it is in
(`extends`), give them a `role` or add `deviations`. Every combination becomes a raw variant table before
variants are built, so hashing, running, sweeps and `--variant` see ordinary variants. A cell that a
hand-written variant already runs is listed in `explicit`: the grid makes no second variant for it, checks
that the hand-written one has the cell's recipe, and marks it as the grid's cell.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationError

from harness.common.registry import did_you_mean
from harness.common.schema import Section
from harness.spec.problems import Problem, all_keys, depth, is_key_of, key_parts, problems_from
from harness.spec.report import Deviation
from harness.spec.sections import NAME_MAX, NAME_PATTERN, RECIPE_KEYS, Recipe, long_name, shorten
from harness.spec.variants import Variant, merge

AXIS_PATTERN = r"^[a-z][a-z0-9_]*$"  # an axis is a {placeholder} of the name template
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
VALUE_META_KEYS = ("extends", "role", "deviations")
NAME_RULE = "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"


class GridTable(Section):
    """`[grids.NAME]`: what a grid declares (each axis value is checked by `_axis_value`)."""

    description: str = Field("", description="the cells' description; {axis} is the cell's value of that axis")
    base: str | None = Field(None, pattern=NAME_PATTERN, description="the variant every cell extends; none: the base")
    name: str = Field(min_length=1, description="the cells' variant names, with every axis as {axis}")
    axes: dict[str, dict[str, dict[str, Any]]] = Field(min_length=1)
    deviations: tuple[Deviation, ...] = ()
    explicit: dict[str, str] = Field(default_factory=dict, description="cell name -> the variant that runs it")


class ValueMeta(Section):
    """The keys of an axis value that are not recipe keys."""

    extends: str | None = Field(None, pattern=NAME_PATTERN)
    role: Literal["model", "reference"] | None = None
    deviations: tuple[Deviation, ...] = ()


@dataclass(frozen=True)
class AxisValue:
    key: str  # where the user wrote it: grids.NAME.axes.AXIS.VALUE
    name: str
    meta: ValueMeta
    recipe: dict[str, Any]  # nested recipe overrides


@dataclass(frozen=True)
class Cell:
    grid: str
    name: str
    coords: tuple[tuple[str, str], ...]  # (axis, value name), in axis order
    values: tuple[AxisValue, ...]
    explicit: str | None  # the hand-written variant that runs this cell


@dataclass
class Expansion:
    """Every grid of a spec: its cells, their raw variant tables (only for grids without problems)."""

    cells: dict[str, Cell] = field(default_factory=dict)
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    deviations: dict[str, tuple[Deviation, ...]] = field(default_factory=dict)  # cell name -> what the grid adds
    problems: list[Problem] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The variant names the grids declare (valid or not): claims may name them."""
        return [cell.explicit or name for name, cell in self.cells.items()]

    def relocate(self, problem: Problem) -> Problem:
        """A generated cell's problem, moved to the axis value that wrote the key (the user never wrote the cell)."""
        owners = [n for n in self.cells if problem.key == f"variants.{n}" or problem.key.startswith(f"variants.{n}.")]
        if not owners:
            return problem  # a hand-written variant's, reported (and de-duplicated) there
        cell = self.cells[max(owners, key=len)]
        rest = problem.key[len(f"variants.{cell.name}.") :]
        parts = key_parts(rest)
        depths = [depth(v.recipe, parts) for v in cell.values]
        if not rest or max(depths) == 0:
            message = f"cell {cell.name!r}: {rest}: {problem.message}"
            return problem._replace(key=f"grids.{_part(cell.grid)}", message=message)
        best = max(range(len(depths)), key=lambda i: (depths[i], -i))
        return problem._replace(key=f"{cell.values[best].key}.{rest}")

    def finish(self, file: str, variants: dict[str, Variant]) -> tuple[dict[str, Variant], list[Problem]]:
        """Mark each cell's variant with its grid; an explicit cell's stand-in is checked, then dropped."""
        out, problems = dict(variants), []
        for name, cell in self.cells.items():
            if cell.explicit is None:
                if name in out:
                    out[name] = dataclasses.replace(out[name], grid=cell.grid, cell=cell.coords)
                continue
            stand_in, hand = out.pop(name, None), out.get(cell.explicit)
            if stand_in is None or hand is None:
                continue  # not built: its problems are reported where they are
            if diff := _difference(stand_in.recipe, hand.recipe):
                key, mine, theirs = diff
                message = f"variant {cell.explicit!r} is not this cell: its {key} is {theirs!r}, the cell's {mine!r}"
                problems.append(Problem(file, f"grids.{_part(cell.grid)}.explicit.{_part(name)}", message))
            extra = tuple(d for d in self.deviations.get(name, ()) if d not in hand.deviations)
            changes = {"grid": cell.grid, "cell": cell.coords, "deviations": hand.deviations + extra}
            out[cell.explicit] = dataclasses.replace(hand, **changes)
        return out, problems


def expand_grids(file: str, raw_grids: Any, raw_variants: Mapping[str, Any]) -> Expansion:
    """Every cell of every `[grids.NAME]`, as a raw variant table that extends the grid's base."""
    out = Expansion()
    if raw_grids is None:
        return out
    if not isinstance(raw_grids, dict):
        out.problems.append(Problem(file, "grids", "expected tables [grids.NAME]"))
        return out
    for name, table in raw_grids.items():
        _expand(file, name, table, raw_variants, out)
    return out


def _expand(file: str, gname: str, table: Any, raw_variants: Mapping[str, Any], out: Expansion) -> None:
    prefix = f"grids.{_part(gname)}"
    if not isinstance(table, dict):
        out.problems.append(Problem(file, prefix, "expected a table"))
        return
    try:
        grid = GridTable.model_validate(table)
    except ValidationError as error:
        out.problems += problems_from(error, GridTable, file, prefix)
        return
    problems = [] if re.fullmatch(NAME_PATTERN, gname) else [Problem(file, prefix, f"a grid's name: {NAME_RULE}")]
    if grid.base is not None and grid.base not in raw_variants:
        problems.append(Problem(file, f"{prefix}.base", _no_variant(grid.base, raw_variants)))
    problems += _deviation_problems(file, prefix, grid.deviations)
    axes: dict[str, list[AxisValue]] = {}
    for axis, values in grid.axes.items():
        where = f"{prefix}.axes.{_part(axis)}"
        if not re.fullmatch(AXIS_PATTERN, axis):
            problems.append(Problem(file, where, "an axis name is a lowercase identifier (letters, digits, '_')"))
        if not values:
            problems.append(Problem(file, where, "an axis needs at least one value"))
        axes[axis] = []
        for value, raw in values.items():
            parsed, found = _axis_value(file, f"{where}.{_part(value)}", value, raw, raw_variants)
            problems += found
            if parsed is not None:
                axes[axis].append(parsed)
    template = _template_problems(file, prefix, grid, list(axes))
    problems += template + _clashes(file, list(axes.values()))
    if template:  # the cells' names are not known: checking them would only echo this
        out.problems += problems
        return
    cells = _cells(gname, grid, axes)
    problems += _name_problems(file, prefix, grid, cells, raw_variants, out)
    out.problems += problems
    for cell in cells:
        out.cells[cell.name] = cell
        if not problems:  # a grid with a problem makes no variants: one report, not one per cell
            out.raw[cell.name] = _raw_cell(grid, cell)
            out.deviations[cell.name] = grid.deviations + tuple(d for v in cell.values for d in v.meta.deviations)


def _axis_value(
    file: str, key: str, value: str, raw: dict[str, Any], raw_variants: Mapping[str, Any]
) -> tuple[AxisValue | None, list[Problem]]:
    """One axis value: its meta keys and its recipe overrides (dotted keys as nested tables)."""
    problems = [] if re.fullmatch(NAME_PATTERN, value) else [Problem(file, key, f"a value's name: {NAME_RULE}")]
    try:
        meta = ValueMeta.model_validate({k: raw[k] for k in VALUE_META_KEYS if k in raw})
    except ValidationError as error:
        return None, problems + problems_from(error, ValueMeta, file, key)
    recipe: dict[str, Any] = {}
    for dotted, setting in raw.items():
        if dotted in VALUE_META_KEYS:
            continue
        parts = dotted.split(".")  # `"train.optimizer.lr" = 0.1` is `train.optimizer.lr = 0.1`
        if parts[0] not in RECIPE_KEYS:
            known = [*RECIPE_KEYS, *VALUE_META_KEYS]
            problems.append(Problem(file, f"{key}.{dotted}", f"unknown key{did_you_mean(parts[0], known)}"))
            continue
        nested: Any = setting
        for part in reversed(parts):
            nested = {part: nested}
        if _leaves(recipe) & _leaves(nested):
            problems.append(Problem(file, f"{key}.{dotted}", "set twice in this value"))
        recipe = merge(recipe, nested)
    if meta.extends is not None and meta.extends not in raw_variants:
        problems.append(Problem(file, f"{key}.extends", _no_variant(meta.extends, raw_variants)))
    problems += _deviation_problems(file, key, meta.deviations)
    return AxisValue(key, value, meta, recipe), problems


def _deviation_problems(file: str, key: str, deviations: tuple[Deviation, ...]) -> list[Problem]:
    return [
        Problem(
            file,
            f"{key}.deviations[{i}].key",
            f"{d.key!r} is not a recipe key{did_you_mean(d.key, all_keys(Recipe))}",
        )
        for i, d in enumerate(deviations)
        if not is_key_of(Recipe, d.key)
    ]


def _template_problems(file: str, prefix: str, grid: GridTable, axes: list[str]) -> list[Problem]:
    """Every placeholder is an axis, and the name has every axis (else two cells would share a name)."""
    problems = []
    for key, text in (("name", grid.name), ("description", grid.description)):
        for unknown in dict.fromkeys(p for p in PLACEHOLDER.findall(text) if p not in axes):
            message = f"{{{unknown}}} is not an axis{did_you_mean(unknown, axes)}; axes: {', '.join(axes)}"
            problems.append(Problem(file, f"{prefix}.{key}", message))
    for axis in axes:
        if f"{{{axis}}}" not in grid.name:
            message = f"no {{{axis}}}: cells that differ only in {axis} would share a name"
            problems.append(Problem(file, f"{prefix}.name", message))
    return problems


def _clashes(file: str, axes: list[list[AxisValue]]) -> list[Problem]:
    """Two axes must not set the same key: which one wins would depend on the order they are written in."""
    problems = []
    for i, first in enumerate(axes):
        for second in axes[i + 1 :]:
            for a, b in itertools.product(first, second):
                shared = sorted(_leaves(a.recipe) & _leaves(b.recipe))
                shared += [k for k in ("extends", "role") if getattr(a.meta, k) and getattr(b.meta, k)]
                problems += [Problem(file, f"{b.key}.{k}", f"also set by {a.key}") for k in shared]
    return problems


def _cells(gname: str, grid: GridTable, axes: dict[str, list[AxisValue]]) -> list[Cell]:
    cells = []
    for combo in itertools.product(*axes.values()):
        coords = tuple(zip(axes, (v.name for v in combo), strict=True))
        name = _fill(grid.name, dict(coords))
        cells.append(Cell(gname, name, coords, combo, grid.explicit.get(name)))
    return cells


def _name_problems(
    file: str, prefix: str, grid: GridTable, cells: list[Cell], raw_variants: Mapping[str, Any], out: Expansion
) -> list[Problem]:
    """Cell names are valid, new names; `explicit` pairs cells with hand-written variants, one to one."""
    problems, names = [], [c.name for c in cells]
    long = [name for name in dict.fromkeys(names) if long_name(name, "variant name")]
    if long:  # one line for the grid: its template or its values make every one of these too long
        longest = max(long, key=len)
        message = (
            f"gives {len(long)} cell names longer than {NAME_MAX} characters (the longest {shorten(longest)!r}, "
            f"{len(longest)} characters); a cell's name becomes a folder and file name, so it has at most "
            f"{NAME_MAX}: shorten the name template or the axis values"
        )
        problems.append(Problem(file, f"{prefix}.name", message))
    for name in dict.fromkeys(names):
        if name in long:
            continue
        if not re.fullmatch(NAME_PATTERN, name):
            problems.append(Problem(file, f"{prefix}.name", f"gives {name!r}; a variant name: {NAME_RULE}"))
        elif name in out.cells:
            problems.append(
                Problem(file, f"{prefix}.name", f"cell {name!r} is also a cell of grid {out.cells[name].grid!r}")
            )
        elif name in raw_variants and name not in grid.explicit:
            message = f"cell {name!r} is also a [variants] table: list it in explicit if that variant runs this cell"
            problems.append(Problem(file, f"{prefix}.name", message))
    seen: set[str] = set()
    for cell_name, variant in grid.explicit.items():
        key = f"{prefix}.explicit.{_part(cell_name)}"
        if cell_name not in names:
            problems.append(Problem(file, key, f"no cell {cell_name!r}{did_you_mean(cell_name, names)}"))
        if variant not in raw_variants:
            problems.append(Problem(file, key, _no_variant(variant, raw_variants)))
        elif variant in seen or variant in names:
            problems.append(Problem(file, key, f"variant {variant!r} cannot run two cells"))
        seen.add(variant)
    return problems


def _raw_cell(grid: GridTable, cell: Cell) -> dict[str, Any]:
    """The cell as a hand-written variant table: the axis values' overrides, over the base (or `extends`)."""
    overrides: dict[str, Any] = {}
    for value in cell.values:
        overrides = merge(overrides, value.recipe)
    coords = dict(cell.coords)
    described = ", ".join(f"{axis} {value}" for axis, value in cell.coords)
    raw: dict[str, Any] = {
        **overrides,
        "description": _fill(grid.description, coords) if grid.description else f"Grid {cell.grid}: {described}.",
        "deviations": grid.deviations + tuple(d for v in cell.values for d in v.meta.deviations),
    }
    extends = next((v.meta.extends for v in cell.values if v.meta.extends), grid.base)
    role = next((v.meta.role for v in cell.values if v.meta.role), None)
    return raw | ({"extends": extends} if extends else {}) | ({"role": role} if role else {})


def _difference(mine: Recipe, theirs: Recipe) -> tuple[str, Any, Any] | None:
    """The first key at which two recipes differ, with both values (None if they are the same recipe)."""

    def walk(a: Any, b: Any, key: str) -> tuple[str, Any, Any] | None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in dict.fromkeys([*a, *b]):
                if (found := walk(a.get(k), b.get(k), f"{key}.{k}" if key else k)) is not None:
                    return found
            return None
        return None if a == b else (key, a, b)

    return walk(mine.model_dump(mode="json"), theirs.model_dump(mode="json"), "")


def _leaves(table: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        keys |= _leaves(value, f"{dotted}.") if isinstance(value, dict) and value else {dotted}
    return keys


def _fill(template: str, coords: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: coords.get(m.group(1), m.group(0)), template)


def _no_variant(name: str, raw_variants: Mapping[str, Any]) -> str:
    return f"no variant {name!r}{did_you_mean(name, list(raw_variants))}"


def _part(name: str) -> str:
    """A key as TOML writes it inside a dotted key: bare, or quoted (`lr."0.1"`)."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'
