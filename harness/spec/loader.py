"""Loading a report spec: TOML -> validated, frozen, hashable variants, every problem reported at once.

A spec holds the report's metadata, every claim it makes, a base recipe (model, data, augment, train,
eval) and named variants that override the base. Specs are data: nothing in them is executed.
"""

from __future__ import annotations

import tomllib
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.common.registry import did_you_mean
from harness.spec.grid import expand_grids
from harness.spec.problems import Problem, SpecError, problems_from
from harness.spec.report import Claim, Header, Report
from harness.spec.sections import RECIPE_KEYS, Recipe, content_hash, long_name, recipe_hash, shorten
from harness.spec.variants import Variant, build_variant


@dataclass(frozen=True)
class Spec:
    """A report: its metadata, its claims and its variants (with any teacher specs they distil from)."""

    path: Path
    report: Report
    claims: tuple[Claim, ...]
    variants: Mapping[str, Variant]
    default_variant: str
    teacher_specs: Mapping[Path, Spec] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.report.name

    def variant(self, name: str | None = None) -> Variant:
        name = name or self.default_variant
        if name not in self.variants:
            raise SpecError(
                [
                    Problem(
                        str(self.path),
                        "variants",
                        f"no variant {name!r}{did_you_mean(name, list(self.variants))}; "
                        f"this spec has: {', '.join(self.variants)}",
                    )
                ]
            )
        return self.variants[name]

    def role(self, variant: str) -> str:
        """model, reference (shown for comparison), or teacher (another variant distils from it)."""
        if any(v.teacher == (self.path, variant) for v in self.variants.values()):
            return "teacher"
        return self.variants[variant].role

    def claims_for(self, variant: str) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if variant in c.variants)

    def headline(self, variant: str) -> Claim | None:
        """The accuracy the report leads with for a variant (the first accuracy claim if none is marked)."""
        claims = [c for c in self.claims_for(variant) if c.metric == "accuracy"]
        return next((c for c in claims if c.headline), claims[0] if claims else None)

    def params_claim(self, variant: str) -> Claim | None:
        """The most precisely stated parameter count for a variant."""
        claims = [c for c in self.claims_for(variant) if c.metric == "params"]
        return min(claims, key=lambda c: c.step) if claims else None

    def teacher_of(self, variant: Variant) -> tuple[Spec, Variant] | None:
        if variant.teacher is None:
            return None
        path, name = variant.teacher
        spec = self if path == self.path else self.teacher_specs[path]
        return spec, spec.variants[name]


def is_protocol_file(path: str | Path) -> bool:
    """Whether a TOML file is a protocol (it has `[protocol]` and no `[report]`)."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return "protocol" in raw and "report" not in raw


def load_spec(path: str | Path) -> Spec:
    """Read and validate one spec; raises SpecError listing every problem in it."""
    return _load(Path(path), stack=())


def load_specs(paths: Iterable[str | Path]) -> tuple[list[Spec], list[Problem]]:
    """Load many specs (skipping protocol files), collecting the problems of all of them at once."""
    specs, problems = [], []
    for path in paths:
        if is_protocol_file(path):
            continue  # a common protocol, not a report: see load_protocol
        try:
            specs.append(load_spec(path))
        except SpecError as error:
            problems.extend(error.problems)
    return specs, problems


def _load(path: Path, stack: tuple[Path, ...]) -> Spec:
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError([Problem(file, "", "no such spec file")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(file, "", "is a directory, expected a .toml spec file")]) from None
    except UnicodeDecodeError:
        raise SpecError([Problem(file, "", "is not UTF-8 text, expected a TOML spec")]) from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError([Problem(file, "", f"invalid TOML: {error}")]) from None
    raw = as_tuples(raw)
    if "protocol" in raw and "report" not in raw:
        raise SpecError([Problem(file, "protocol", "this is a protocol, not a report spec: use it with --protocol")])

    problems: list[Problem] = []
    known = list(RECIPE_KEYS) + list(Header.model_fields) + ["grids"]  # grids: grid.py
    for key in raw:
        if key not in known:
            problems.append(Problem(file, key, f"unknown key{did_you_mean(key, known)}"))
    header_raw = {k: raw[k] for k in Header.model_fields if k in raw}
    base = {k: raw[k] for k in RECIPE_KEYS if k in raw}
    top = base_recipe = None
    try:
        top = Header.model_validate(header_raw)
        problems += _long_names(file, top)
    except ValidationError as error:
        problems += problems_from(error, Header, file)
    try:
        base_recipe = Recipe.model_validate(base)
        problems += [Problem(file, key, msg) for key, msg in base_recipe.problems()]
    except ValidationError as error:
        problems += problems_from(error, Recipe, file)
    if top is None or base_recipe is None:
        raise SpecError(problems)

    variants: dict[str, Variant] = {}
    raw_variants = top.variants or {"default": {}}
    base_messages = {p.message for p in problems}
    grids = expand_grids(file, raw.get("grids"), raw_variants)
    problems += grids.problems
    every = {**raw_variants, **grids.raw}  # a hand-written variant may extend a cell
    for name, table in every.items():
        parent = table.get("extends")
        if name in grids.raw and parent is not None and parent not in variants:
            continue  # a cell over a variant that failed: that variant's problems say why
        variant, found = build_variant(file, name, base, every, base_messages)
        if name in grids.raw:  # reported once, where the grid wrote the key
            found = [p for p in map(grids.relocate, found) if p not in problems]
        problems += found
        if variant is not None:
            variants[name] = variant
    variants, mismatched = grids.finish(file, variants)
    problems += mismatched

    declared = {**raw_variants, **dict.fromkeys(grids.names)}  # valid or not: claims may name them
    default = top.default_variant or next(iter(raw_variants))
    if default not in declared:
        problems.append(
            Problem(file, "default_variant", f"no variant {default!r}{did_you_mean(default, list(declared))}")
        )
    found = _check_claims(file, top.claims, declared)
    if grids.problems or mismatched:  # a grid with a problem: claims on its cells would only echo it
        found = [p for p in found if not (p.key.endswith(".variants") and p.message.startswith("no variant"))]
    problems += found

    spec, found = _link_teachers(
        Spec(path, top.report, top.claims, variants, default), stack + (path.resolve(),), set(declared)
    )
    if problems or found:
        raise SpecError(problems + found)
    return spec


def _long_names(file: str, top: Header) -> list[Problem]:
    """The report's and the variants' names that would not fit in a file name (grid cells: grid.py)."""
    named = [("report.name", top.report.name, "report name")]
    named += [(f"variants.{shorten(name)}", name, "variant name") for name in top.variants or {}]
    return [Problem(file, key, message) for key, name, what in named if (message := long_name(name, what))]


def _check_claims(file: str, claims: tuple[Claim, ...], variants: Mapping[str, Any]) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    headlines: dict[str, str] = {}
    for i, claim in enumerate(claims):
        key = f"claims[{i}]"
        if claim.id in seen:
            problems.append(Problem(file, f"{key}.id", f"duplicate claim id {claim.id!r}"))
        problems += [Problem(file, f"{key}.{field}", message) for field, message in claim.problems()]
        seen.add(claim.id)
        for name in claim.variants:
            if name not in variants:
                problems.append(
                    Problem(file, f"{key}.variants", f"no variant {name!r}{did_you_mean(name, list(variants))}")
                )
        if claim.metric == "params" and (claim.split, claim.selection) != ("n/a", "n/a"):
            problems.append(Problem(file, f"{key}.split", 'a params claim has split = "n/a" and selection = "n/a"'))
        if claim.metric == "accuracy" and "n/a" in (claim.split, claim.selection):
            problems.append(Problem(file, f"{key}.split", "an accuracy claim needs a split and a selection rule"))
        if claim.headline:
            for name in claim.variants:
                if name in headlines:
                    problems.append(
                        Problem(
                            file, f"{key}.headline", f"variant {name!r} already has headline claim {headlines[name]!r}"
                        )
                    )
                headlines[name] = claim.id
    return problems


def _link_teachers(spec: Spec, stack: tuple[Path, ...], declared: set[str]) -> tuple[Spec, list[Problem]]:
    """Resolve each distilling variant's teacher, then hash every variant with its teacher's hash.

    `declared` names every variant in the file, valid or not, so that a teacher that failed its own
    checks is not reported a second time as missing.
    """
    problems: list[Problem] = []
    teacher_specs: dict[Path, Spec] = {}
    linked: dict[str, Variant] = {}
    for name, variant in spec.variants.items():
        own_hash = recipe_hash(variant.recipe)
        if variant.recipe.train.distill is None:
            linked[name] = _replace(variant, spec_hash=own_hash)
            continue
        teacher, found = _teacher(spec, name, stack, declared, teacher_specs)
        problems += found
        if teacher is not None:
            path, teacher_variant = teacher
            teacher_hash = recipe_hash(teacher_variant.recipe)
            linked[name] = _replace(
                variant, spec_hash=content_hash([own_hash, teacher_hash]), teacher=(path, teacher_variant.name)
            )
    views = types.MappingProxyType(linked), spec.default_variant, types.MappingProxyType(teacher_specs)
    return Spec(spec.path, spec.report, spec.claims, *views), problems


def _teacher(
    spec: Spec, name: str, stack: tuple[Path, ...], declared: set[str], teacher_specs: dict[Path, Spec]
) -> tuple[tuple[Path, Variant] | None, list[Problem]]:
    """The (spec path, variant) a variant distils from, loading another spec file when it names one."""
    file, key = str(spec.path), f"variants.{name}.train.distill"
    distill = spec.variants[name].recipe.train.distill
    teacher_path, teacher_spec = spec.path, spec
    if distill.teacher_spec is not None:
        teacher_path = _inside(spec.path.parent, distill.teacher_spec)
        if teacher_path is None:
            message = f"{distill.teacher_spec!r} must be a relative path inside {spec.path.parent}"
            return None, [Problem(file, f"{key}.teacher_spec", message)]
        if teacher_path.resolve() in stack:
            return None, [Problem(file, f"{key}.teacher_spec", "circular teacher reference")]
        try:
            teacher_spec = teacher_specs.setdefault(teacher_path, _load(teacher_path, stack))
        except SpecError as error:
            message = f"teacher spec {distill.teacher_spec!r} is not usable: {error.problems[0]}"
            return None, [Problem(file, f"{key}.teacher_spec", message)]
    problems = []
    if distill.teacher_checkpoint is not None and _inside(spec.path.parent.parent, distill.teacher_checkpoint) is None:
        problems.append(Problem(file, f"{key}.teacher_checkpoint", "must be a relative path inside the project"))
    teacher = teacher_spec.variants.get(distill.teacher_variant)
    if teacher is None:
        names = declared if teacher_spec is spec else set(teacher_spec.variants)
        if distill.teacher_variant not in names:
            suggestion = did_you_mean(distill.teacher_variant, sorted(names))
            message = f"no variant {distill.teacher_variant!r} in {teacher_path}{suggestion}"
            problems.append(Problem(file, f"{key}.teacher_variant", message))
        return None, problems
    if teacher.recipe.train.distill is not None:
        message = f"teacher {distill.teacher_variant!r} distils itself; chains are not supported"
        return None, [*problems, Problem(file, f"{key}.teacher_variant", message)]
    return (teacher_path, teacher), problems


def _replace(variant: Variant, **changes: Any) -> Variant:
    return Variant(**{**variant.__dict__, **changes})


def _inside(root: Path, relative: str) -> Path | None:
    """`root / relative` if it stays inside root (no absolute paths, no `..` escapes), else None."""
    candidate = Path(relative)
    if candidate.is_absolute():
        return None
    resolved = (root / candidate).resolve()
    return resolved if resolved.is_relative_to(root.resolve()) else None


def as_tuples(value: Any) -> Any:
    """Lists to tuples, recursively: TOML and JSON arrays load as lists, strict frozen sections want tuples."""
    if isinstance(value, dict):
        return {k: as_tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(as_tuples(v) for v in value)
    return value
