"""Specs: one TOML file per report -> validated, frozen, hashable variants.

A spec holds the report's metadata, every claim it makes, a base recipe (model, data, augment, train,
eval) and named variants that override the base. Every problem in a file is collected and reported at
once as `FILE:KEY: problem (did you mean X?)`. Specs are data: nothing in them is executed or imported.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import re
import tomllib
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError

from harness.augment import OPS
from harness.data import CLASSES, SPLIT_SIZES
from harness.models import MODELS
from harness.optim import OPTIMIZERS, SCHEDULES
from harness.registry import Registry, did_you_mean
from harness.schema import Optional, Section

# ----------------------------------------------------------------------------------------------
# Problems


class Problem(NamedTuple):
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.key}: {self.message}" if self.key else f"{self.file}: {self.message}"


class SpecError(Exception):
    """Raised with every problem found; `str()` gives one line per problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# ----------------------------------------------------------------------------------------------
# Sections


def _dispatch(registry: Registry[type[Section]], tag: str) -> Any:
    """A union of a registry's sections, told apart by the `tag` key (e.g. `name = "sgd"`)."""
    members = tuple(registry[name] for name in registry.names())
    if len(members) == 1:
        return members[0]
    return Annotated[Union[members], Field(discriminator=tag)]  # noqa: UP007 - a runtime tuple


_MODEL_CONFIGS = Registry[type[Section]]("model")
for _name, _entry in MODELS.items():
    _MODEL_CONFIGS.register(_name)(_entry.config)
ModelSection = _dispatch(_MODEL_CONFIGS, "arch")
OpSection = _dispatch(OPS, "op")
OptimizerSection = _dispatch(OPTIMIZERS, "name")
ScheduleSection = _dispatch(SCHEDULES, "name")

Split = Literal["cifar10-test", "validation", "validation-augmented", "kaggle-hidden", "train", "train-mixed", "n/a"]
Selection = Literal["last-epoch", "best-epoch-test", "test-early-stop", "best-val", "unknown", "n/a"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
MAX_EPOCHS = 100_000  # far beyond any recipe: a larger count is a typo, not a plan
MAX_BATCH = 65_536


class Report(Section):
    """`[report]`: where the claims come from."""

    id: str = Field(pattern=r"^[0-9]{3}$")
    name: str = Field(pattern=NAME_PATTERN)
    title: str = Field(min_length=1)
    authors: tuple[str, ...] = Field(min_length=1)
    year: int = Field(ge=1990, le=2100)
    seed: str = Field(min_length=1, description="the report's file name in shared/seeds/")
    code_url: str = ""
    code_read: str = Field("", description="repository and commit the as-coded values were read from")
    param_budget: int = Field(5_000_000, gt=0)


class Claim(Section):
    """`[[claims]]`: one figure as the report states it, where, on what split, chosen how."""

    id: str = Field(pattern=NAME_PATTERN)
    quantity: str = Field(pattern=NAME_PATTERN, description="claims of one quantity must agree")
    metric: Literal["accuracy", "params"]
    value: float = Field(ge=0)
    text: str = Field(min_length=1, description="the figure verbatim, e.g. '4.98M' or '96.14%'")
    resolution: float | None = Field(None, gt=0, description="the step the figure is stated to")
    upper: float | None = Field(None, description="for a stated range: its upper end (value is the lower)")
    stated_in: tuple[str, ...] = Field(min_length=1)
    split: Split
    selection: Selection
    runs_compared_on_test: bool = False
    variants: tuple[str, ...]
    headline: bool = False
    note: str = ""

    @property
    def step(self) -> float:
        return self.resolution or (1.0 if self.metric == "params" else 0.01)

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.metric == "accuracy" and not (self.value <= 100 and (self.upper is None or self.upper <= 100)):
            found.append(("value", f"an accuracy is a percentage in [0, 100], got {self.value}"))
        if self.upper is not None and self.upper < self.value:
            found.append(("upper", f"the range's upper end {self.upper} is below its lower end {self.value}"))
        return found

    def agreement(self, measured: float) -> Literal["exact", "rounded", "truncated", "in range"] | None:
        """How `measured` agrees with the stated figure at its resolution, or None if it does not."""
        if self.upper is not None:
            return "in range" if self.value <= measured <= self.upper else None
        if measured == self.value:
            return "exact"
        units, stated = measured / self.step, round(self.value / self.step)
        if round(units) == stated:
            return "rounded"
        if int(units) == stated:
            return "truncated"
        return None


class Deviation(Section):
    """Where a variant departs from the report's text, or fills a gap in it, and of what kind.

    code-differs: the released code does something other than the text says (or leaves out).
    unstated: the text is silent here; the value comes from the code or is a stated guess.
    inferred: the run is not in the released code; this part of its recipe is inferred.
    harness: the harness's protocol departs from the report and its code (e.g. a held-out split).
    """

    kind: Literal["code-differs", "unstated", "inferred", "harness"]
    key: str = Field(min_length=1)
    note: str = Field(min_length=1)


class Data(Section):
    """`[data]`: the dataset, the held-out validation split and the normalisation constants."""

    dataset: Literal["cifar10"] = "cifar10"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    val_size: int = Field(5000, ge=0, lt=SPLIT_SIZES["train"])
    val_seed: int = 0
    val_transform: Literal["eval", "train"] = "eval"

    @property
    def train_size(self) -> int:
        """Training images left after the validation split."""
        return SPLIT_SIZES["train"] - self.val_size

    def problems(self) -> list[tuple[str, str]]:
        return [("std", "every std must be > 0")] if min(self.std) <= 0 else []


class Augment(Section):
    """`[augment]`: the per-sample training ops, in order; normalisation follows them."""

    train: tuple[OpSection, ...] = ()  # type: ignore[valid-type]
    pipeline: Literal["auto", "batched", "torchvision"] = Field(
        "auto",
        description="batched on the device (the default when every op has a batched form), or "
        "torchvision's exact per-sample pipeline",
    )


class Lookahead(Section):
    """Lookahead (Zhang et al. 2019): every k steps the slow weights move alpha of the way to the fast ones.

    first_sync: when the slow weights are taken. "after-step-k" is timm's Lookahead (slow weights from
    the weights after step k, syncs after steps k, 2k, ...). "after-step-1" is the lookahead.py of
    Thakur et al. that 000 and its teacher paste (slow weights from the weights after step 1, syncs after
    steps 1, 1 + k, 1 + 2k, ...).
    """

    k: int = Field(5, gt=0, le=1000)
    alpha: float = Field(0.5, gt=0, le=1)
    first_sync: Literal["after-step-k", "after-step-1"] = "after-step-k"


class Mix(Section):
    """Batch mixing: mixup, cutmix, or a per-batch choice between them (002)."""

    mode: Literal["mixup", "cutmix", "mixup_or_cutmix"]
    mixup_alpha: float = Field(1.0, gt=0)
    cutmix_alpha: float = Field(1.0, gt=0)
    switch_prob: float = Field(0.5, ge=0, le=1, description="P(cutmix) when mode is mixup_or_cutmix")
    prob: float = Field(1.0, ge=0, le=1, description="P(mixing) for each batch or epoch")
    per: Literal["batch", "epoch"] = "batch"


class Distill(Section):
    """Knowledge distillation: loss = kd_weight * [T^2] * KL(reduction) + ce_weight * CE."""

    teacher_variant: str = Field(pattern=NAME_PATTERN)
    teacher_spec: str | None = Field(None, description="another spec file, relative to this one")
    teacher_checkpoint: str | None = Field(None, description="weights to load instead of training")
    temperature: float = Field(gt=0)
    kd_weight: float = Field(ge=0)
    ce_weight: float = Field(ge=0)
    kl_reduction: Literal["mean", "batchmean"] = "batchmean"
    scale_by_t2: bool = True


class Phase(Section):
    name: str = Field(pattern=NAME_PATTERN)
    epochs: int = Field(gt=0, le=MAX_EPOCHS)
    mix: bool = True


class Train(Section):
    """`[train]`: optimizer, schedule and every regulariser of the recipe."""

    epochs: int = Field(gt=0, le=MAX_EPOCHS)
    batch_size: int = Field(gt=0, le=MAX_BATCH)
    optimizer: OptimizerSection  # type: ignore[valid-type]
    schedule: ScheduleSection  # type: ignore[valid-type]
    lookahead: Optional[Lookahead] = None
    grad_clip_value: Optional[float] = Field(None, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mix: Optional[Mix] = None
    distill: Optional[Distill] = None
    phases: tuple[Phase, ...] = ()
    allow_bf16: bool = Field(True, description="bf16 autocast on CUDA (recorded as a deviation)")
    allow_channels_last: bool = Field(True, description="channels_last on CUDA (recorded as a deviation)")

    def problems(self) -> list[tuple[str, str]]:
        found = [(f"schedule.{key}", msg) for key, msg in self.schedule.problems()]
        if self.phases:
            total = sum(p.epochs for p in self.phases)
            if total != self.epochs:
                found.append(("phases", f"phase epochs add up to {total}, but epochs is {self.epochs}"))
            names = [p.name for p in self.phases]
            if len(set(names)) != len(names):
                found.append(("phases", f"phase names must be unique, got {names}"))
        return found


class Eval(Section):
    """`[eval]`: how the harness picks the model it tests, and what the report itself validated on."""

    batch_size: int = Field(256, gt=0, le=MAX_BATCH)
    select: Literal["last", "best-val"] = "last"
    report_validation: Literal["test-set", "held-out", "held-out-augmented", "none"]


class Recipe(Section):
    """Everything that decides a training run: the part of a variant that is hashed."""

    model: ModelSection  # type: ignore[valid-type]
    data: Data
    augment: Augment = Augment()
    train: Train
    eval: Eval

    def problems(self) -> list[tuple[str, str]]:
        found = [(f"model.{k}", m) for k, m in self.model.problems()]
        found += [(f"data.{k}", m) for k, m in self.data.problems()]
        found += [(f"train.{k}", m) for k, m in self.train.problems()]
        found += [(f"augment.train[{i}].{k}", m) for i, op in enumerate(self.augment.train) for k, m in op.problems()]
        if self.eval.select == "best-val" and self.data.val_size == 0:
            found.append(("eval.select", "best-val needs a validation split (data.val_size > 0)"))
        # CIFAR-10 is 32x32 images of 10 classes: the model and the crops must fit them.
        size = getattr(self.model, "input_size", IMAGE_SIZE)
        if size != IMAGE_SIZE:
            found.append(("model.input_size", f"CIFAR-10 images are {IMAGE_SIZE}x{IMAGE_SIZE}, got {size}"))
        if getattr(self.model, "num_classes", 10) < len(CLASSES):
            found.append(("model.num_classes", f"CIFAR-10 has {len(CLASSES)} classes, got {self.model.num_classes}"))
        for i, op in enumerate(self.augment.train):
            if getattr(op, "size", IMAGE_SIZE) != IMAGE_SIZE:
                found.append(
                    (f"augment.train[{i}].size", f"crops must keep the {IMAGE_SIZE}x{IMAGE_SIZE} size, got {op.size}")
                )
        found += self._schedule_fits()
        return found

    def _schedule_fits(self) -> list[tuple[str, str]]:
        """A OneCycle with explicit total_steps must cover every step of the run (PyTorch raises after it)."""
        total = getattr(self.train.schedule, "total_steps", None)
        steps = self.train.epochs * -(-self.data.train_size // self.train.batch_size)
        if total is not None and total < steps:
            return [("train.schedule.total_steps", f"{total} is fewer than the run's {steps} optimizer steps")]
        return []


RECIPE_KEYS = tuple(Recipe.model_fields)
IMAGE_SIZE = 32
VARIANT_META_KEYS = ("description", "extends", "deviations", "role")


class VariantMeta(Section):
    role: Literal["model", "reference"] = Field("model", description="reference: shown for comparison only")
    description: str = ""
    extends: str | None = Field(None, pattern=NAME_PATTERN)
    deviations: tuple[Deviation, ...] = ()


class Header(Section):
    """The rest of the file: report, claims and variants (the base recipe is validated apart)."""

    default_variant: str | None = None
    report: Report
    claims: tuple[Claim, ...] = ()
    variants: dict[Annotated[str, Field(pattern=NAME_PATTERN)], dict[str, Any]] = Field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Loaded specs


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


@dataclass(frozen=True)
class Spec:
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

    def teacher_of(self, variant: Variant) -> tuple[Spec, Variant] | None:
        if variant.teacher is None:
            return None
        path, name = variant.teacher
        spec = self if path == self.path else self.teacher_specs[path]
        return spec, spec.variants[name]


# ----------------------------------------------------------------------------------------------
# Loading


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
    known = list(RECIPE_KEYS) + list(Header.model_fields)
    for key in raw:
        if key not in known:
            problems.append(Problem(file, key, f"unknown key{did_you_mean(key, known)}"))
    header_raw = {k: raw[k] for k in Header.model_fields if k in raw}
    base = {k: raw[k] for k in RECIPE_KEYS if k in raw}
    top = base_recipe = None
    try:
        top = Header.model_validate(header_raw)
    except ValidationError as error:
        problems += _problems(error, Header, file, header_raw)
    try:
        base_recipe = Recipe.model_validate(base)
        problems += [Problem(file, key, msg) for key, msg in base_recipe.problems()]
    except ValidationError as error:
        problems += _problems(error, Recipe, file, base)
    if top is None or base_recipe is None:
        raise SpecError(problems)

    variants: dict[str, Variant] = {}
    raw_variants = top.variants or {"default": {}}
    base_messages = {p.message for p in problems}
    for name in raw_variants:
        variant, found = _variant(file, name, base, raw_variants, base_messages)
        problems += found
        if variant is not None:
            variants[name] = variant

    default = top.default_variant or next(iter(raw_variants))
    if default not in raw_variants:
        problems.append(
            Problem(file, "default_variant", f"no variant {default!r}{did_you_mean(default, list(raw_variants))}")
        )
    problems += _check_claims(file, top.claims, raw_variants)

    spec, found = _link_teachers(
        Spec(path, top.report, top.claims, variants, default), stack + (path.resolve(),), set(raw_variants)
    )
    if problems or found:
        raise SpecError(problems + found)
    return spec


def _variant(
    file: str, name: str, base: dict[str, Any], raw_variants: dict[str, dict[str, Any]], base_messages: set[str]
) -> tuple[Variant | None, list[Problem]]:
    """Validate one variant merged over the base; problems the base already has are not repeated."""
    prefix = f"variants.{name}"
    raw = raw_variants[name]
    problems: list[Problem] = []
    try:
        meta = VariantMeta.model_validate({k: raw[k] for k in VARIANT_META_KEYS if k in raw})
    except ValidationError as error:
        return None, _problems(error, VariantMeta, file, raw, prefix)

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
        merged = _merge(merged, override)

    def located(found: list[Problem]) -> list[Problem]:
        # Report a problem where the user wrote the value: the deepest variant table that sets it.
        out = []
        for problem in found:
            parts = _key_parts(problem.key)
            depths = [_depth(o, parts) for o in overrides]
            best = max(range(len(chain)), key=lambda i: (depths[i], -i))
            if depths[best] < len(parts) and problem.message in base_messages:
                continue  # the value comes from the base, which is already reported
            out.append(problem._replace(key=f"variants.{chain[best] if depths[best] else name}.{problem.key}"))
        return out

    try:
        recipe = Recipe.model_validate(merged)
    except ValidationError as error:
        return None, located(_problems(error, Recipe, file, merged))
    problems += located([Problem(file, key, msg) for key, msg in recipe.problems()])
    for i, deviation in enumerate(meta.deviations):
        if not _is_recipe_key(deviation.key):
            problems.append(
                Problem(
                    file,
                    f"{prefix}.deviations[{i}].key",
                    f"{deviation.key!r} is not a recipe key{did_you_mean(deviation.key, _all_recipe_keys())}",
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
    file = str(spec.path)
    problems: list[Problem] = []
    teacher_specs: dict[Path, Spec] = {}
    linked: dict[str, Variant] = {}
    for name, variant in spec.variants.items():
        distill = variant.recipe.train.distill
        own_hash = recipe_hash(variant.recipe)
        if distill is None:
            linked[name] = _replace(variant, spec_hash=own_hash)
            continue
        key = f"variants.{name}.train.distill"
        teacher_path = spec.path
        teacher_spec = spec
        if distill.teacher_spec is not None:
            teacher_path = _inside(spec.path.parent, distill.teacher_spec)
            if teacher_path is None:
                problems.append(
                    Problem(
                        file,
                        f"{key}.teacher_spec",
                        f"{distill.teacher_spec!r} must be a relative path inside {spec.path.parent}",
                    )
                )
                continue
            if teacher_path.resolve() in stack:
                problems.append(Problem(file, f"{key}.teacher_spec", "circular teacher reference"))
                continue
            try:
                teacher_spec = teacher_specs.setdefault(teacher_path, _load(teacher_path, stack))
            except SpecError as error:
                problems.append(
                    Problem(
                        file,
                        f"{key}.teacher_spec",
                        f"teacher spec {distill.teacher_spec!r} is not usable: {error.problems[0]}",
                    )
                )
                continue
        if (
            distill.teacher_checkpoint is not None
            and _inside(spec.path.parent.parent, distill.teacher_checkpoint) is None
        ):
            problems.append(Problem(file, f"{key}.teacher_checkpoint", "must be a relative path inside the project"))
        teacher = teacher_spec.variants.get(distill.teacher_variant)
        if teacher is None:
            names = declared if teacher_spec is spec else set(teacher_spec.variants)
            if distill.teacher_variant not in names:
                problems.append(
                    Problem(
                        file,
                        f"{key}.teacher_variant",
                        f"no variant {distill.teacher_variant!r} in "
                        f"{teacher_path}{did_you_mean(distill.teacher_variant, sorted(names))}",
                    )
                )
            continue
        if teacher.recipe.train.distill is not None:
            problems.append(
                Problem(
                    file,
                    f"{key}.teacher_variant",
                    f"teacher {distill.teacher_variant!r} distils itself; chains are not supported",
                )
            )
            continue
        teacher_hash = recipe_hash(teacher.recipe)
        linked[name] = _replace(
            variant, spec_hash=content_hash([own_hash, teacher_hash]), teacher=(teacher_path, teacher.name)
        )
    linked_spec = Spec(
        spec.path,
        spec.report,
        spec.claims,
        types.MappingProxyType(linked),
        spec.default_variant,
        types.MappingProxyType(teacher_specs),
    )
    return linked_spec, problems


# ----------------------------------------------------------------------------------------------
# Helpers


def _replace(variant: Variant, **changes: Any) -> Variant:
    return Variant(**{**variant.__dict__, **changes})


def recipe_hash(recipe: Recipe) -> str:
    """The identity of a recipe: its values, with defaults left out so that adding an optional key to
    the format later does not change the hash of any existing recipe."""
    return content_hash(recipe.model_dump(mode="json", exclude_defaults=True))


def content_hash(data: Any) -> str:
    """A short SHA-256 of JSON-able data (sorted keys): identifies a recipe, whatever its file says."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


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


DISCRIMINATORS = ("arch", "op", "name")


def _merge(base: Any, override: Any) -> Any:
    """Deep-merge tables; arrays and scalars replace; a table naming another registry entry replaces."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    if any(k in base and k in override and base[k] != override[k] for k in DISCRIMINATORS):
        return copy.deepcopy(override)
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
    return merged


def _key_parts(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def _depth(raw: Any, parts: list[str | int]) -> int:
    """How many leading parts of a key exist in a raw (unvalidated) table."""
    depth = 0
    for part in parts:
        if (
            isinstance(part, str)
            and isinstance(raw, dict)
            and part in raw
            or isinstance(part, int)
            and isinstance(raw, tuple)
            and part < len(raw)
        ):
            raw = raw[part]
        else:
            break
        depth += 1
    return depth


def _format_key(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _members(tp: Any) -> list[Any]:
    """The concrete types behind Annotated / Optional / Union wrappers."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) if arg is not type(None) for m in _members(arg)]
    return [tp]


def _models(types_: list[Any]) -> list[type[BaseModel]]:
    return [t for t in types_ if inspect.isclass(t) and issubclass(t, BaseModel)]


def _tag(model: type[BaseModel]) -> str | None:
    for key in DISCRIMINATORS:
        info = model.model_fields.get(key)
        if info is not None and get_origin(info.annotation) is Literal:
            return get_args(info.annotation)[0]
    return None


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[str | int], list[Any]]:
    """Follow a pydantic error location through the section types: (display key, types at the end).

    Discriminated unions put the chosen tag into the location; it is dropped from the display key.
    """
    display: list[str | int] = []
    current: list[Any] = [root]
    for part in loc:
        models = _models(current)
        if isinstance(part, int):
            current = [m for t in current if get_origin(t) in (tuple, list) for m in _members(get_args(t)[0])]
            display.append(part)
            continue
        tagged = {_tag(m): m for m in models}
        if len(models) > 1 and part in tagged:
            current = [tagged[part]]
            continue
        dicts = [t for t in current if get_origin(t) is dict]
        display.append(part)
        if dicts and not models:
            current = _members(get_args(dicts[0])[1])
            continue
        current = next((_members(m.model_fields[part].annotation) for m in models if part in m.model_fields), [])
    return display, current


def _is_recipe_key(key: str) -> bool:
    parts = [p for p in _key_parts(key) if isinstance(p, str)]
    current: list[Any] = [Recipe]
    for part in parts:
        models = _models(current)
        nxt = [
            m for model in models if part in model.model_fields for m in _members(model.model_fields[part].annotation)
        ]
        if not nxt:
            return False
        current = [m for t in nxt for m in (_members(get_args(t)[0]) if get_origin(t) in (tuple, list) else [t])]
    return True


def _all_recipe_keys() -> list[str]:
    keys: list[str] = []

    def visit(prefix: str, tp_list: list[Any]) -> None:
        for model in _models(tp_list):
            for name, info in model.model_fields.items():
                key = f"{prefix}.{name}" if prefix else name
                keys.append(key)
                inner = _members(info.annotation)
                inner = [
                    m for t in inner for m in (_members(get_args(t)[0]) if get_origin(t) in (tuple, list) else [t])
                ]
                visit(key, inner)

    visit("", [Recipe])
    return sorted(set(keys))


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _problems(error: ValidationError, root: type[BaseModel], file: str, raw: Any, prefix: str = "") -> list[Problem]:
    """Turn pydantic's errors into one-line `FILE:KEY: problem (did you mean X?)` problems."""
    problems = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        display, _ = _walk(root, loc)
        kind = item["type"]
        ctx = item.get("ctx") or {}
        if kind == "extra_forbidden":
            _, parent = _walk(root, loc[:-1])
            known = sorted({f for m in _models(parent) for f in m.model_fields})
            if not _models(parent) and prefix and len(loc) == 1:
                known = list(RECIPE_KEYS + VARIANT_META_KEYS)
            message = f"unknown key{did_you_mean(str(loc[-1]), known)}"
        elif kind == "missing":
            message = "missing required key"
        elif kind == "union_tag_invalid":
            names = _quoted(ctx.get("expected_tags", ""))
            what = "augment op" if ctx.get("discriminator") == "'op'" else str(display[-1])
            message = f"unknown {what} {ctx.get('tag')!r}{did_you_mean(str(ctx.get('tag')), names)}; known: {', '.join(names)}"
        elif kind == "union_tag_not_found":
            message = f"missing required key {ctx.get('discriminator', '').strip(chr(39))!r}"
        elif kind == "literal_error":
            choices = _quoted(str(ctx.get("expected", "")))
            message = f"{item['input']!r} is not one of {', '.join(repr(c) for c in choices)}{did_you_mean(str(item['input']), choices)}"
        else:
            message = item["msg"].removeprefix("Value error, ")
            if not isinstance(item.get("input"), dict):
                message += f" (got {item['input']!r})"
        key = _format_key(display)
        problems.append(Problem(file, f"{prefix}.{key}" if prefix and key else (prefix or key), message))
    return problems


# ----------------------------------------------------------------------------------------------
# Common protocols: one recipe applied to every architecture


class ProtocolInfo(Section):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=1)


class ProtocolFile(Section):
    """A file with `[protocol]` instead of `[report]`: data, augment, train and eval, but no model."""

    protocol: ProtocolInfo
    data: Data
    augment: Augment = Augment()
    train: Train
    eval: Eval


@dataclass(frozen=True)
class Protocol:
    path: Path
    name: str
    description: str
    body: ProtocolFile


def is_protocol_file(path: str | Path) -> bool:
    """Whether a TOML file is a protocol (it has `[protocol]` and no `[report]`)."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return "protocol" in raw and "report" not in raw


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol file; raises SpecError listing every problem."""
    path = Path(path)
    file = str(path)
    try:
        raw = as_tuples(tomllib.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise SpecError([Problem(file, "", "no such protocol file")]) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SpecError([Problem(file, "", f"not a readable TOML protocol: {error}")]) from None
    try:
        body = ProtocolFile.model_validate(raw)
    except ValidationError as error:
        raise SpecError(_problems(error, ProtocolFile, file, raw)) from None
    problems = [Problem(file, f"train.{k}", m) for k, m in body.train.problems()]
    if body.train.distill is not None:
        problems.append(Problem(file, "train.distill", "a common protocol cannot distil: it has no teacher"))
    if problems:
        raise SpecError(problems)
    return Protocol(path, body.protocol.name, body.protocol.description, body)


def resolve_protocol(spec: Spec, name: str) -> Protocol | None:
    """'own' (None: the report's recipe), a protocol name beside the spec (common.toml), or a path."""
    if name == "own":
        return None
    candidate = spec.path.parent / f"{name}.toml"
    return load_protocol(candidate if candidate.exists() and "/" not in name else Path(name))


def with_protocol(spec: Spec, variant: Variant, protocol: Protocol | None) -> Variant:
    """The variant's architecture under another protocol's recipe (unchanged for the report's own)."""
    if protocol is None:
        return variant
    body = protocol.body
    recipe = Recipe(model=variant.recipe.model, data=body.data, augment=body.augment, train=body.train, eval=body.eval)
    problems = [Problem(str(protocol.path), key, msg) for key, msg in recipe.problems()]
    if problems:
        raise SpecError(problems)
    note = (
        f"the '{protocol.name}' protocol ({protocol.path.name}) replaces the report's data, augmentation, "
        "training and evaluation; only the architecture is the report's"
    )
    return Variant(
        name=variant.name,
        description=f"{variant.description} Under the {protocol.name} protocol.",
        deviations=(Deviation(kind="harness", key="train", note=note),),
        recipe=recipe,
        role=spec.role(variant.name),
        spec_hash=content_hash([f"protocol:{protocol.name}", recipe.model_dump(mode="json", exclude_defaults=True)]),
    )
