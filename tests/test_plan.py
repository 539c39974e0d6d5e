"""`harness plan`: what settling each claim costs, checked against figures recomputed here from the specs'
TOML, NVIDIA's datasheet peaks and scipy's noncentral t, never against what the planner printed."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as scipy_stats

from harness.cli import main
from harness.measure.size import size_of
from harness.spec import load_spec
from tests.conftest import SPECS_DIR
from tests.records import record_json

H100_BF16, A100_BF16 = 989e12, 312e12  # dense tensor-core peaks, NVIDIA's H100 SXM and A100 datasheets
ASSUMED_UTILISATION, STEP_FLOOR_S = 0.25, 0.003  # README, "What the estimates rest on"
CIFAR10_TRAIN = 50_000  # a spec's validation images are held out of these


@pytest.fixture(autouse=True)
def no_measured_rate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every test plans against the datasheet peaks, whatever gpu_rates.json the checkout holds."""
    from harness.measure import gpu

    absent = tmp_path / "no-gpu-rates.json"
    monkeypatch.setattr(gpu, "GPU_RATES", absent)
    monkeypatch.setattr(gpu.gpu_rate, "__defaults__", (absent,))  # harness run's figure, for comparison
    return absent


def plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(["plan", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(out, parse_constant=refuse)


def row(result: dict[str, Any], variant: str, claim: str) -> dict[str, Any]:
    return next(r for r in result["rows"] if (r["variant"], r["claim_id"]) == (variant, claim))


def toml_setting(raw: dict[str, Any], variant: str, section: str, key: str) -> Any:
    """A recipe value as the TOML gives it: the variant's, else that of the variant it extends, else the base's."""
    name: str | None = variant
    while name is not None:
        table = raw["variants"][name]
        if key in table.get(section, {}):
            return table[section][key]
        name = table.get("extends")
    return raw[section][key]


def recipe_hours(spec_file: str, variant: str, flops_per_image: float, peak: float) -> float:
    """One seed's hours from the TOML itself: epochs x images x FLOPs at the rate, or the step floor."""
    raw = tomllib.loads((SPECS_DIR / spec_file).read_text())
    epochs, batch = (toml_setting(raw, variant, "train", key) for key in ("epochs", "batch_size"))
    images = CIFAR10_TRAIN - toml_setting(raw, variant, "data", "val_size")
    steps = epochs * math.ceil(images / batch)
    by_flops = epochs * images * flops_per_image / (ASSUMED_UTILISATION * peak)
    return max(by_flops, steps * STEP_FLOOR_S) / 3600


def write_records(folder: Path, report: str, variant: str, accs: list[float], **given: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, acc in enumerate(accs, start=given.pop("first_seed", 0)):
        record = record_json(report, variant, seed, acc, **given)
        (folder / f"{report}-{variant}-{seed}-{given.get('official', True)}.json").write_text(json.dumps(record))


def test_hours_per_seed_are_the_recipes_steps_at_the_devices_rate_never_below_the_floor(capsys) -> None:
    from harness.measure.gpu import gpu_estimate

    for device, peak in (("h100", H100_BF16), ("a100", A100_BF16)):
        result = plan_json(capsys, str(SPECS_DIR / "resnet443-se.toml"), "--device", device)
        spec = load_spec(SPECS_DIR / "resnet443-se.toml")
        flops = 6 * size_of(spec.variant("as-coded").recipe.model).macs
        got = row(result, "as-coded", "test-acc")
        assert got["hours_per_seed"] == pytest.approx(recipe_hours("resnet443-se.toml", "as-coded", flops, peak))
        assert got["estimate"] == "estimate (assumed rate)" and "datasheet peak" in got["rate_basis"]
    # on the default device, the figure `harness run` prints before a full run
    result = plan_json(capsys, str(SPECS_DIR / "resnet443-se.toml"))
    expected = gpu_estimate(spec.variant("as-coded").recipe, "resnet443-se/as-coded", flops)["hours_gpu"]
    assert row(result, "as-coded", "test-acc")["hours_per_seed"] == pytest.approx(expected)
    # ResNet-12 of report 003: too few FLOPs to keep an H100 busy, so the floor of each step sets the time
    result = plan_json(capsys, str(SPECS_DIR / "resnet10.toml"), "--variants", "resnet12-grid")
    grid = row(result, "resnet12-grid", "resnet12-acc")
    flops = 6 * size_of(load_spec(SPECS_DIR / "resnet10.toml").variant("resnet12-grid").recipe.model).macs
    assert grid["floor_bound"]
    assert grid["hours_per_seed"] == pytest.approx(recipe_hours("resnet10.toml", "resnet12-grid", flops, H100_BF16))


def test_two_full_budget_runs_on_the_official_pixels_give_their_sample_std(capsys, tmp_path: Path) -> None:
    write_records(tmp_path, "resnet443-se", "as-coded", [85.0, 86.5])
    write_records(tmp_path, "resnet443-se", "as-coded", [60.0, 70.0], first_seed=2, official=False)  # JPEG copy
    write_records(tmp_path, "resnet443-se", "as-written", [84.0], official=True)  # one seed: no spread
    result = plan_json(capsys, str(SPECS_DIR / "resnet443-se.toml"), "--results", str(tmp_path))
    measured = row(result, "as-coded", "test-acc")  # a last-epoch claim: each run's last-epoch figure
    assert measured["spread"] == pytest.approx(1.5 / math.sqrt(2))  # n - 1 in the denominator
    assert measured["spread_seeds"] == 2 and measured["spread_source"].startswith("measured")
    lone = row(result, "as-written", "test-acc")
    assert lone["spread"] == 0.15 and lone["spread_source"] == "assumed prior 0.15 points (no measured spread)"


def test_an_unknown_device_is_one_line_naming_the_known_ones_and_exit_2(capsys) -> None:
    code = main(["plan", str(SPECS_DIR / "resnet443-se.toml"), "--device", "b300"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("harness: error: --device: unknown device 'b300'")
    assert all(name in err for name in ("h100", "a100", "l4", "t4"))


def test_the_json_is_strict_with_one_row_per_variant_and_test_set_accuracy_claim(capsys) -> None:
    files = ("resnet443-se.toml", "se-resnet3343.toml")
    result = plan_json(capsys, *(str(SPECS_DIR / f) for f in files), "--gap", "0.2")
    expected = set()
    for name in files:  # from the TOML: accuracy claims on the official test split, per variant they name
        raw = tomllib.loads((SPECS_DIR / name).read_text())
        for claim in raw["claims"]:
            if claim["metric"] == "accuracy" and claim["split"] == "cifar10-test":
                expected |= {(raw["report"]["name"], v, claim["id"]) for v in claim["variants"]}
    assert {(r["spec"], r["variant"], r["claim_id"]) for r in result["rows"]} == expected
    assert len(result["rows"]) == len(expected)
    # 0.2 points lies inside the band of a claim stated to 1 point (95% covers 94.5-95.5): no seeds settle it
    assert row(result, "as-coded", "test-acc-abstract")["seeds_needed"] is None
    # a variant's runs judge all its claims at once: the totals take its most seeds, never their sum
    for spec_total in result["totals"]["per_spec"]:
        mine = [r for r in result["rows"] if r["spec"] == spec_total["spec"] and r["seeds_needed"]]
        by_variant = {r["variant"]: r for r in mine}
        most = {v: max(r["seeds_needed"] for r in mine if r["variant"] == v) for v in by_variant}
        assert spec_total["hours"] == pytest.approx(sum(most[v] * by_variant[v]["hours_per_seed"] for v in most))


def first_powerful_n(effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """The fewest seeds whose two-sided one-sample t-test at `alpha` finds `effect` std with `power`."""
    for n in range(2, 10_000):
        dof, shift = n - 1, effect * math.sqrt(n)
        critical = scipy_stats.t.ppf(1 - alpha / 2, dof)
        if scipy_stats.nct.sf(critical, dof, shift) + scipy_stats.nct.cdf(-critical, dof, shift) >= power:
            return n
    raise AssertionError("no n found")


def test_seeds_needed_match_an_independent_noncentral_t_power_computation(capsys, tmp_path: Path) -> None:
    write_records(tmp_path, "se-resnet3343", "as-coded", [95.0, 95.0 + math.sqrt(2)])  # sample std 1.0
    result = plan_json(capsys, str(SPECS_DIR / "se-resnet3343.toml"), "--results", str(tmp_path))
    assert result["alpha"] == 0.05 and result["power"] == 0.8
    # the gap is measured from the edge of the claim's band, claim +- half its stated precision
    for claim, precision, std in (("test-acc", 0.01, 1.0), ("test-acc-abstract", 1.0, 1.0)):
        got = row(result, "as-coded", claim)
        assert got["spread"] == pytest.approx(std)
        assert got["seeds_needed"] == max(3, first_powerful_n((1.0 - precision / 2) / std))
    assert row(result, "as-coded", "test-acc-abstract")["seeds_needed"] > 20  # half a point at a 1-point spread
    prior = row(result, "as-written", "test-acc")
    assert prior["seeds_needed"] == max(3, first_powerful_n((1.0 - 0.005) / 0.15))
    code = main(["plan", str(SPECS_DIR / "se-resnet3343.toml"), "--results", str(tmp_path)])
    assert code == 0 and "alpha 0.05" in capsys.readouterr().out


def test_a_distilled_variant_counts_its_teacher_once_per_seed_for_all_its_students(capsys, broken_spec: Path) -> None:
    spec = load_spec(SPECS_DIR / "dmsresnet.toml")
    student, teacher = (size_of(spec.variant(v).recipe.model).macs for v in ("as-coded", "teacher"))
    result = plan_json(capsys, str(SPECS_DIR / "dmsresnet.toml"), "--variants", "as-coded,as-written")
    coded, written = row(result, "as-coded", "kd-acc"), row(result, "as-written", "kd-acc")
    # the student's step runs the teacher's forward; the teacher's own run is its forward and backward
    student_h = recipe_hours("dmsresnet.toml", "as-coded", 6 * student + 2 * teacher, H100_BF16)
    teacher_h = recipe_hours("dmsresnet.toml", "teacher", 6 * teacher, H100_BF16)
    assert coded["hours_per_seed"] == pytest.approx(student_h)
    assert coded["teacher"] == "dmsresnet/teacher" and coded["teacher_hours_per_seed"] == pytest.approx(teacher_h)
    seeds = coded["seeds_needed"]
    assert coded["hours_total"] == pytest.approx(seeds * (student_h + teacher_h))
    # two students of one teacher: each seed trains the teacher once for both
    assert written["seeds_needed"] == seeds
    total = seeds * (coded["hours_per_seed"] + written["hours_per_seed"] + teacher_h)
    assert result["totals"]["hours"] == pytest.approx(total)
    assert result["totals"]["runs"] == 3 * seeds
    # a teacher loaded from a checkpoint (the fixture gives as-written one) is not trained, though its forward
    # still runs in every step
    loaded = row(plan_json(capsys, str(broken_spec), "--variants", "as-written"), "as-written", "kd-acc")
    written_h = recipe_hours("dmsresnet.toml", "as-written", 6 * student + 2 * teacher, H100_BF16)
    assert loaded["teacher"] is None and loaded["hours_per_seed"] == pytest.approx(written_h)
    assert loaded["hours_total"] == pytest.approx(loaded["seeds_needed"] * written_h)
