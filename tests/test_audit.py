"""The claims audit: each report's flags are the ones seed-facts.md documents, computed from the specs."""

from __future__ import annotations

import pytest

from harness.results.audit import FLAGS, audit, consistent
from harness.spec import load_spec
from tests.conftest import SPECS_DIR

# What ../shared/notes/seed-facts.md records, per variant (sections 3-7).
EXPECTED = {
    ("dmsresnet", "as-coded"): {
        "test-selection",
        "no-val",
        "inconsistent",
        "code-differs",
    },  # 96.14/96.3; Lookahead, KD
    ("dmsresnet", "as-written"): {"test-selection", "no-val", "inconsistent"},
    ("dmsresnet", "se-mixup"): {"test-selection", "no-val", "unreleased"},  # Table 1 rows not in the repository
    ("dmsresnet", "teacher"): {"no-val", "unreleased"},
    ("resnet443-se", "as-coded"): {"test-selection", "no-val", "inconsistent", "code-differs", "schedule-cut-short"},
    ("resnet443-se", "resnet18"): {"no-val", "code-differs", "schedule-cut-short"},
    ("se-resnet3343", "as-coded"): {
        "aug-val",
        "code-differs",
    },  # the only claim measured once, chosen without test data
    ("resnet10", "resnet10-onecycle"): {"test-selection", "code-differs"},
    ("resnet10", "resnet12-grid"): {"test-selection", "inconsistent", "params-mismatch", "code-differs", "unreleased"},
    # 1x1: 175,258; the grid's recipe it extends has an inferred init
    ("resnet10", "resnet12-as-written"): {"test-selection", "inconsistent", "params-mismatch", "unreleased"},
    ("resnet10", "resnet18-grid"): {"test-selection", "inconsistent", "params-mismatch", "unreleased"},  # "11.7M"
    ("resnet4323-se", "as-coded"): {
        "test-selection",
        "no-val",
        "inconsistent",
        "code-differs",
        "schedule-restarts",
        "unreleased",
    },  # 96.5/97.4/97.0; T_max 400 of 450; phase 2 inferred
    ("resnet4323-se", "early-443"): {"test-selection", "no-val", "unreleased"},
}


@pytest.mark.parametrize(("spec", "variant"), list(EXPECTED), ids=[f"{s}/{v}" for s, v in EXPECTED])
def test_flags_match_seed_facts(spec: str, variant: str) -> None:
    found = {f.flag.name for f in audit(load_spec(SPECS_DIR / f"{spec}.toml"), variant)}
    assert found == EXPECTED[(spec, variant)]


def test_findings_carry_their_evidence() -> None:
    spec = load_spec(SPECS_DIR / "resnet4323-se.toml")
    details = {f.flag.name: f.detail for f in audit(spec, "as-coded")}
    assert "97.0% (results text" in details["inconsistent"] and "97.4%" in details["inconsistent"]
    assert "450 epochs on a cosine with T_max = 400" == details["schedule-restarts"]
    details = {f.flag.name: f.detail for f in audit(load_spec(SPECS_DIR / "resnet10.toml"), "resnet12-grid")}
    assert details["params-mismatch"].startswith("measured 195,738; stated 1M (analysis text)")


def test_over_budget_only_for_candidate_models(spec_copy) -> None:
    text = (SPECS_DIR / "resnet10.toml").read_text().replace('role = "reference"   #', "#", 1)
    spec = load_spec(spec_copy(text))
    assert "over-budget" in {f.flag.name for f in audit(spec, "resnet18-grid")}


def test_consistency_allows_rounding_and_truncation() -> None:
    spec = load_spec(SPECS_DIR / "resnet10.toml")
    claims = {c.id: c for c in spec.claims}
    assert consistent(claims["resnet10-onecycle-acc"], claims["resnet10-onecycle-acc-abstract"])  # 93.54 / 93.5
    assert consistent(claims["resnet10-params"], claims["resnet10-params-results"])  # 4.98M / 4.9M
    assert not consistent(claims["resnet12-acc"], claims["resnet12-acc-analysis"])  # 89.03 / 88


def test_every_flag_has_a_unique_code() -> None:
    assert len({f.code for f in FLAGS.values()}) == len(FLAGS)


def test_a_variant_inherits_the_deviations_of_what_it_extends_unless_it_changes_them() -> None:
    spec = load_spec(SPECS_DIR / "resnet10.toml")
    grid = {(d.kind, d.key) for d in spec.variants["resnet12-grid"].deviations}
    assert ("unstated", "train.schedule") in grid  # resnet10-grid's StepLR note: the same schedule runs
    written = {(d.kind, d.key) for d in spec.variants["resnet12-as-written"].deviations}
    assert ("unstated", "train.schedule") in written and ("inferred", "model.init") in written
    # it sets the text's 1x1 shortcut itself, so the note that the code uses 3x3 is not carried over
    assert ("code-differs", "model.shortcut_kernel") not in written
    assert ("harness", "model.stem_width") in written and ("code-differs", "model.stem_width") not in written
