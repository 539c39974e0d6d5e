"""Stage 1, specs. Takes one TOML file per report (and protocol files); gives validated, frozen, hashable
variants, each a recipe with its claims. Names in a spec are checked against the registries of the stages
they configure (models, augmentation ops, optimizers and schedules).

- sections.py: the training-facing sections (model, data, augment, train, eval), shared by report specs
  and protocol files, and the recipe hash;
- report.py: the report, its claims and the variants' deviations;
- loader.py: reading a report spec, linking teachers;
- variants.py: each variant merged over the base recipe, with its deviations;
- problems.py: validation errors as one line each, `FILE:KEY: problem (did you mean X?)`;
- protocol.py: common protocols, one recipe applied to any variant's network.
"""

from harness.spec.loader import Spec, Variant, as_tuples, is_protocol_file, load_spec, load_specs
from harness.spec.problems import Problem, SpecError
from harness.spec.protocol import Protocol, load_protocol, resolve_protocol, with_protocol
from harness.spec.report import TEST_SELECTION, Claim, Deviation, Report
from harness.spec.sections import Distill, Lookahead, Mix, Phase, Recipe, TrainingSections, content_hash, recipe_hash

__all__ = [
    "TEST_SELECTION",
    "Claim",
    "Deviation",
    "Distill",
    "Lookahead",
    "Mix",
    "Phase",
    "Problem",
    "Protocol",
    "Recipe",
    "Report",
    "Spec",
    "SpecError",
    "TrainingSections",
    "Variant",
    "as_tuples",
    "content_hash",
    "is_protocol_file",
    "load_protocol",
    "load_spec",
    "load_specs",
    "recipe_hash",
    "resolve_protocol",
    "with_protocol",
]
