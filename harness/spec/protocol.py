"""Common protocols: one recipe (data, augment, train, eval) applied to any variant's network."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, ValidationError

from harness.common.schema import Section
from harness.spec.loader import Spec, Variant, as_tuples, is_protocol_file  # noqa: F401 - re-exported
from harness.spec.problems import Problem, SpecError, problems_from
from harness.spec.report import Deviation
from harness.spec.sections import NAME_MAX, NAME_PATTERN, Recipe, TrainingSections, recipe_hash


class ProtocolInfo(Section):
    name: str = Field(pattern=NAME_PATTERN, max_length=NAME_MAX)  # it becomes part of file names
    description: str = Field(min_length=1)


class ProtocolFile(TrainingSections):
    """A file with `[protocol]` instead of `[report]`: the training sections, but no model."""

    protocol: ProtocolInfo


@dataclass(frozen=True)
class Protocol:
    path: Path
    name: str
    description: str
    body: ProtocolFile


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
        raise SpecError(problems_from(error, ProtocolFile, file)) from None
    problems = [Problem(file, key, message) for key, message in body.problems()]
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
        spec_hash=recipe_hash(recipe, f"protocol:{protocol.name}"),
        protocol=protocol.name,
    )
