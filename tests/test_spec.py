"""Specs: every shipped spec validates; every kind of mistake is reported as FILE:KEY with a hint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.spec import Claim, SpecError, load_spec, load_specs
from tests.conftest import REFERENCE_FILES, SPEC_FILES, SPECS_DIR

DMS = (SPECS_DIR / "dmsresnet.toml").read_text(encoding="utf-8")


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return [str(p) for p in caught.value.problems]


def edited(text: str, old: str, new: str) -> str:
    assert old in text, f"test set-up: {old!r} not in spec"
    return text.replace(old, new, 1)


def test_five_reports_ship_as_specs() -> None:
    specs, problems = load_specs(SPEC_FILES)
    assert problems == []
    assert sorted(s.report.id for s in specs) == ["000", "001", "002", "003", "004"]
    assert (SPECS_DIR / "dmsresnet.toml").exists()


@pytest.mark.parametrize("path", SPEC_FILES + REFERENCE_FILES, ids=[p.stem for p in SPEC_FILES + REFERENCE_FILES])
def test_every_spec_is_complete(path: Path) -> None:
    spec = load_spec(path)
    assert spec.report.name == path.stem
    if path in REFERENCE_FILES:  # not a seed report: its paper or README is named instead
        assert spec.report.seed is None and spec.report.url.startswith("https://")
        assert all(v.role == "reference" for v in spec.variants.values())
    else:
        seed_text = (SPECS_DIR.parent.parent / "shared" / "seeds" / spec.report.seed).read_text(encoding="utf-8")
        for author in spec.report.authors:  # the spec's report is the seed file's report
            assert author.split()[-1] in seed_text, (spec.report.seed, author)
        assert spec.report.title.split(":")[0].lower() in seed_text.lower()
    assert spec.default_variant in spec.variants
    for name, variant in spec.variants.items():
        assert variant.description, f"{name} has no description"
        assert variant.deviations, f"{name} lists no deviations from the report text"
        assert re.fullmatch(r"[0-9a-f]{16}", variant.spec_hash)
    headlines = [c for c in spec.claims if c.headline]
    assert headlines, "every report has a headline claim"
    assert len({v.spec_hash for v in spec.variants.values()}) == len(spec.variants)


def test_a_report_with_text_and_code_differences_has_both_variants() -> None:
    for stem in ("dmsresnet", "resnet443-se", "se-resnet3343", "resnet4323-se"):
        assert {"as-coded", "as-written"} <= set(load_spec(SPECS_DIR / f"{stem}.toml").variants)


def test_misspelled_key_names_file_key_and_suggestion(spec_copy) -> None:
    path = spec_copy(edited(DMS, "momentum = 0.9", "momentun = 0.9"))
    assert problems_of(path) == [f"{path}:train.optimizer.momentun: unknown key (did you mean momentum?)"]


def test_all_problems_are_reported_at_once(spec_copy) -> None:
    text = edited(DMS, "epochs = 200", "epochs = -3")
    text = edited(text, 'op = "hflip", p = 0.5', 'op = "hflp", p = 0.5')
    text = edited(text, 'name = "cosine"', 'name = "cosin"')
    text = edited(text, 'name = "sgd"', 'name = "sdg"')
    text = edited(text, "dropout_fc = 0.1", "dropout_fc = 1.5")
    text = edited(text, "batch_size = 128", 'batch_size = "128"')
    text = edited(text, 'arch = "cifar_resnet"', 'arch = "cifar_resnt"')
    found = problems_of(path := spec_copy(text))
    expected = {
        f"{path}:train.epochs: Input should be greater than 0 (got -3)",
        f"{path}:augment.train[1]: unknown augment op 'hflp' (did you mean hflip?)",
        f"{path}:train.schedule: unknown schedule 'cosin' (did you mean cosine?)",
        f"{path}:train.optimizer: unknown optimizer 'sdg' (did you mean sgd?)",
        f"{path}:model.dropout_fc: Input should be less than 1 (got 1.5)",
        f"{path}:train.batch_size: Input should be a valid integer (got '128')",
        f"{path}:model.arch: 'cifar_resnt' is not one of 'cifar_resnet' (did you mean cifar_resnet?)",
    }
    assert {re.sub(r"; known: .*", "", p) for p in found} == expected


def test_unknown_top_level_and_report_keys(spec_copy) -> None:
    text = edited(DMS, "[report]", "[reprot]\nid = '000'\n[report]")
    assert f"{(path := spec_copy(text))}:reprot: unknown key (did you mean report?)" in problems_of(path)
    text = edited(DMS, "year = 2024", "yaer = 2024")
    assert set(problems_of(path := spec_copy(text))) == {
        f"{path}:report.yaer: unknown key (did you mean year?)",
        f"{path}:report.year: missing required key",
    }


def test_problem_in_a_variant_is_located_in_the_variant(spec_copy) -> None:
    text = edited(DMS, "mixup_alpha = 0.9", "mixup_alfa = 0.9")
    text = edited(text, "model.se_sites = []", 'model.se_sites = ["stam"]')
    found = problems_of(path := spec_copy(text))
    assert found == [
        f"{path}:variants.teacher.train.mix.mixup_alfa: unknown key (did you mean mixup_alpha?)",
        f"{path}:variants.baseline.model.se_sites[0]: 'stam' is not one of 'stem', 'block' (did you mean stem?)",
    ]


def test_unknown_variant_section_key(spec_copy) -> None:
    text = edited(DMS, "train.distill = false\n\n[variants.se]", "trian.distill = false\n\n[variants.se]")
    assert f"{(path := spec_copy(text))}:variants.se-mixup.trian: unknown key (did you mean train?)" in problems_of(
        path
    )


def test_a_base_problem_is_not_repeated_for_every_variant(spec_copy) -> None:
    path = spec_copy(edited(DMS, "pool_kernel = 8 ", "pool_kernel = 7 "))
    assert problems_of(path) == [f"{path}:model.pool_kernel: 7 does not cover the final 8x8 map (use 8)"]


def test_cross_field_problems(spec_copy) -> None:
    text = edited(DMS, "widths = [64, 128, 256]", "widths = [64, 128]")
    assert problems_of(path := spec_copy(text)) == [f"{path}:model.widths: has 2 entries but blocks has 3"]
    text = edited((SPECS_DIR / "resnet4323-se.toml").read_text(), "epochs = 50", "epochs = 49")
    assert problems_of(path := spec_copy(text)) == [
        f"{path}:train.phases: phase epochs add up to 449, but epochs is 450"
    ]


def test_unknown_init_scheme(spec_copy) -> None:
    path = spec_copy(edited(DMS, 'init = "pytorch_default"', 'init = "kaiming_fan_ot"'))
    assert problems_of(path) == [
        f"{path}:model.init: unknown init scheme 'kaiming_fan_ot' (did you mean kaiming_fan_out?)"
    ]


def test_claims_must_name_existing_variants_and_be_unique(spec_copy) -> None:
    text = edited(DMS, 'variants = ["se"]', 'variants = ["sse"]')
    text = edited(text, 'id = "se-train"', 'id = "se-val"')
    found = problems_of(path := spec_copy(text))
    assert f"{path}:claims[7].variants: no variant 'sse' (did you mean se?)" in found
    assert f"{path}:claims[8].id: duplicate claim id 'se-val'" in found


def test_missing_teacher_variant_and_spec(spec_copy) -> None:
    text = edited(
        DMS,
        'teacher_variant = "teacher", temperature = 6.0, kd_weight = 0.95',
        'teacher_variant = "teachr", temperature = 6.0, kd_weight = 0.95',
    )
    assert problems_of(path := spec_copy(text)) == [
        f"{path}:variants.as-written.train.distill.teacher_variant: no variant 'teachr' in {path} (did you mean teacher?)"
    ]
    text = edited(DMS, 'teacher_variant = "teacher"\n', 'teacher_variant = "teacher"\nteacher_spec = "missing.toml"\n')
    found = problems_of(spec_copy(text))
    assert any(
        "train.distill.teacher_spec: teacher spec 'missing.toml' is not usable" in p and "no such spec file" in p
        for p in found
    )


def test_teacher_spec_cannot_escape_the_spec_folder(spec_copy) -> None:
    text = edited(
        DMS, 'teacher_variant = "teacher"\n', 'teacher_variant = "teacher"\nteacher_spec = "../../etc/x.toml"\n'
    )
    found = problems_of(spec_copy(text))
    assert any("teacher_spec: '../../etc/x.toml' must be a relative path inside" in p for p in found)


def test_teacher_in_another_spec_file(spec_copy) -> None:
    spec_copy(DMS, name="teachers.toml")
    text = edited(DMS, 'teacher_variant = "teacher"\n', 'teacher_variant = "teacher"\nteacher_spec = "teachers.toml"\n')
    spec = load_spec(spec_copy(text))
    teacher_spec, teacher = spec.teacher_of(spec.variant("as-coded"))
    assert teacher_spec.path.name == "teachers.toml" and teacher.name == "teacher"


def test_extends_cycles_and_unknown_parents(spec_copy) -> None:
    original = (SPECS_DIR / "resnet10.toml").read_text(encoding="utf-8")
    text = edited(original, 'extends = "resnet10-grid"', 'extends = "resnet12-as-written"')  # resnet12-grid
    found = problems_of(spec_copy(text))
    assert any(p.endswith("extends: circular: resnet12-grid -> resnet12-as-written -> resnet12-grid") for p in found)
    text = edited(original, 'extends = "resnet12-grid"', 'extends = "resnet12-grd"')
    assert problems_of(path := spec_copy(text)) == [
        f"{path}:variants.resnet12-as-written.extends: no variant 'resnet12-grd' (did you mean resnet12-grid?)"
    ]


def test_deviation_keys_must_be_recipe_keys(spec_copy) -> None:
    path = spec_copy(
        edited(DMS, 'key = "train.lookahead", note = "Lookahead(k=5', 'key = "train.lookahed", note = "Lookahead(k=5')
    )
    assert problems_of(path) == [
        f"{path}:variants.as-coded.deviations[0].key: 'train.lookahed' is not a recipe key (did you mean train.lookahead?)"
    ]


def test_unknown_default_variant(spec_copy) -> None:
    path = spec_copy(edited(DMS, 'default_variant = "as-coded"', 'default_variant = "as-code"'))
    assert problems_of(path) == [f"{path}:default_variant: no variant 'as-code' (did you mean as-coded?)"]


def test_syntax_error_missing_file_and_directory(spec_copy, tmp_path: Path) -> None:
    path = spec_copy("[model\narch = 1")
    assert problems_of(path)[0].startswith(f"{path}: invalid TOML: ")
    assert problems_of(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: no such spec file"]
    assert problems_of(tmp_path) == [f"{tmp_path}: is a directory, expected a .toml spec file"]


def test_unknown_variant_lookup() -> None:
    spec = load_spec(SPECS_DIR / "dmsresnet.toml")
    with pytest.raises(SpecError, match=r"variants: no variant 'as-writen' \(did you mean as-written\?\)"):
        spec.variant("as-writen")


def test_variant_false_switches_an_inherited_table_off() -> None:
    spec = load_spec(SPECS_DIR / "dmsresnet.toml")
    assert spec.variant("as-coded").recipe.train.lookahead is not None
    written = spec.variant("as-written").recipe.train
    assert written.lookahead is None and written.grad_clip_value is None
    assert written.distill.kl_reduction == "batchmean" and written.distill.kd_weight == 0.95


def test_variant_overrides_merge_deeply_and_replace_other_registry_entries() -> None:
    spec = load_spec(SPECS_DIR / "resnet10.toml")
    grid14 = spec.variant("resnet14-4-grid").recipe
    assert grid14.train.optimizer.name == "adam" and not hasattr(grid14.train.optimizer, "momentum")
    assert grid14.train.epochs == 70  # inherited from resnet10-grid through `extends`
    assert spec.variant("resnet12-as-written").recipe.model.shortcut_kernel == 1


def test_spec_hash_is_stable_and_tracks_the_teacher(spec_copy) -> None:
    first = load_spec(SPECS_DIR / "dmsresnet.toml").variant("as-coded").spec_hash
    assert load_spec(spec_copy(DMS)).variant("as-coded").spec_hash == first
    changed_teacher = edited(DMS, "mixup_alpha = 0.9", "mixup_alpha = 0.8")
    assert load_spec(spec_copy(changed_teacher)).variant("as-coded").spec_hash != first
    cosmetic = edited(DMS, 'title = "DMSResNet: a Tiny Robust ResNet"', 'title = "DMSResNet"')
    assert load_spec(spec_copy(cosmetic)).variant("as-coded").spec_hash == first


@pytest.mark.parametrize(
    ("value", "resolution", "measured", "expected"),
    [
        (4_697_742, None, 4_697_742, "exact"),
        (4_980_000, 10_000, 4_980_234, "rounded"),
        (190_000, 10_000, 195_738, "truncated"),
        (1_000_000, 1_000_000, 195_738, None),
        (11_700_000, 100_000, 11_178_762, None),
        (93.5, 0.1, 93.54, "rounded"),
        (96.14, None, 96.24, None),
    ],
)
def test_claim_agreement(value: float, resolution: float | None, measured: float, expected: str | None) -> None:
    claim = Claim(
        id="c",
        quantity="q",
        metric="params" if value > 1000 else "accuracy",
        value=value,
        text="t",
        resolution=resolution,
        stated_in=("x",),
        split="n/a" if value > 1000 else "cifar10-test",
        selection="n/a" if value > 1000 else "last-epoch",
        variants=(),
    )
    assert claim.agreement(measured) == expected


def test_range_claim() -> None:
    claim = Claim(
        id="c",
        quantity="q",
        metric="accuracy",
        value=50,
        upper=60,
        text="50-60%",
        stated_in=("x",),
        split="train-mixed",
        selection="unknown",
        variants=(),
    )
    assert claim.agreement(55.5) == "in range" and claim.agreement(61) is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('id = "003"', 'id = "my-report-2025"', None),
        ('id = "003"', 'id = "My Report"', "report.id: String should match pattern"),
        ('seed = "003_02149a40bb0973b8.txt"\n', "", None),  # a report without a seed file
        ('seed = "003_02149a40bb0973b8.txt"\n', 'seed = "003.txt"\nurl = "https://example.org/paper.pdf"\n', None),
        (
            'arch = "cifar_resnet"',
            'arch = "cifar_resnet"\nshortcut = "identity"',
            "model.shortcut: 'identity' is not one of",
        ),
        (
            'block = "basic"',
            'block = "preact"',
            "model.block: 'preact' is not one of 'basic', 'bottleneck', 'preact_basic'",
        ),
        (
            'arch = "cifar_resnet"',
            'arch = "cifar_resnet"\ndropout_between = 1.0',
            "model.dropout_between: Input should be less than 1",
        ),
        (
            'arch = "cifar_resnet"',
            'arch = "cifar_resnet"\nfinal_norm = true',
            "model.final_norm: a post-activation network",
        ),
    ],
)
def test_the_new_keys_check_with_file_key_errors(spec_copy, old: str, new: str, expected: str | None) -> None:
    text = edited((SPECS_DIR / "resnet10.toml").read_text(), old, new)
    path = spec_copy(text)
    if expected is None:
        assert load_spec(path).report.name == "resnet10"
        return
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert any(
        str(p).startswith(f"{path}:{expected.split(':')[0]}") and expected in str(p) for p in error.value.problems
    ), error.value


def test_the_spec_hash_covers_defaults(spec_copy, monkeypatch) -> None:
    # A recipe is every value it resolves to: a changed default changes the hash of every recipe that
    # relies on it, so that no record made under the old default is taken for the new recipe; and writing
    # a default out explicitly changes nothing.
    from harness.spec import sections

    text = (SPECS_DIR / "resnet10.toml").read_text()
    first = load_spec(SPECS_DIR / "resnet10.toml").variant("resnet12-grid")
    assert "val_seed" not in text and first.recipe.data.val_seed == 0  # the spec relies on the default
    explicit = text.replace("[data]", "[data]\nval_seed = 0", 1)
    assert load_spec(spec_copy(explicit)).variant("resnet12-grid").spec_hash == first.spec_hash
    monkeypatch.setattr(sections.Data.model_fields["val_seed"], "default", 1)
    for section in (sections.Data, sections.Recipe):
        section.model_rebuild(force=True)
    try:
        changed = load_spec(SPECS_DIR / "resnet10.toml").variant("resnet12-grid")
        assert changed.recipe.data.val_seed == 1 and changed.spec_hash != first.spec_hash
    finally:
        monkeypatch.undo()
        for section in (sections.Data, sections.Recipe):
            section.model_rebuild(force=True)
    assert load_spec(SPECS_DIR / "resnet10.toml").variant("resnet12-grid").spec_hash == first.spec_hash
