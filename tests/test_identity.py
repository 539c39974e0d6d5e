"""Run identity: every option that changes a run's numbers or record makes another run; cohorts pool."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.common.events import Silent
from harness.results.identity import cohort_id, comparison_key
from harness.spec import load_spec, resolve_protocol, with_protocol
from harness.train.loop import run
from harness.train.request import RunOptions, identify, make_budget
from tests.conftest import SPECS_DIR

R10 = load_spec(SPECS_DIR / "resnet10.toml")
R4323 = load_spec(SPECS_DIR / "resnet4323-se.toml")
SHA = "ab" * 32


def identity(options: RunOptions, spec=R10, variant: str = "resnet12-grid", data: str = SHA, device: str = "cpu"):
    v = with_protocol(spec, spec.variant(variant), resolve_protocol(spec, options.protocol))
    budget = make_budget(v.recipe, options.profile, options.epochs, options.subset)
    return identify(spec, v, options, budget, data, device)


BASE = RunOptions(profile="smoke")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seed": 1}, "seed"),
        ({"precision": "bf16"}, "precision"),
        ({"channels_last": "off"}, "channels_last"),
        ({"augment": "torchvision"}, "augment"),
        ({"compile": True}, "compile"),
        ({"deterministic": True}, "deterministic"),
        ({"track_test": True}, "track_test"),
        ({"robustness": True}, "robustness"),
        ({"epochs": 3}, "epochs"),
        ({"subset": 512}, "train_images"),
        ({"protocol": "common"}, "protocol"),
        ({"profile": "short"}, "profile"),
    ],
)
def test_every_option_that_changes_a_run_changes_its_identity(change: dict, field: str) -> None:
    base, changed = identity(BASE), identity(dataclasses.replace(BASE, **change))
    assert base.run_id != changed.run_id and base.stem != changed.stem
    assert any(d.startswith(f"{field}:") for d in base.differences(changed.as_dict()))


def test_data_and_device_are_part_of_the_identity() -> None:
    assert identity(BASE).run_id != identity(BASE, data="cd" * 32).run_id
    assert identity(BASE).run_id != identity(BASE, device="cuda").run_id


def test_requests_that_run_the_same_way_are_one_run() -> None:
    # `auto` resolved: on the CPU, auto precision is fp32 and auto layout channels_last
    spelled_out = dataclasses.replace(
        BASE, precision="fp32", channels_last="on", augment="batched", epochs=1, subset=1024
    )
    assert identity(BASE) == identity(spelled_out)
    assert identity(BASE).precision == "fp32" and identity(BASE, device="cuda").precision == "bf16"


def test_a_test_chosen_claim_tracks_the_test_set_at_the_full_budget() -> None:
    # report 004's 97.0% is chosen on the test curve: its full-budget runs record that curve without being asked.
    assert identity(RunOptions(profile="full"), R4323, "as-coded").track_test is True
    assert identity(RunOptions(profile="smoke"), R4323, "as-coded").track_test is False  # never judged there
    assert identity(RunOptions(profile="full", track_test=False), R4323, "as-coded").track_test is False
    assert identity(RunOptions(profile="full", protocol="common"), R4323, "as-coded").track_test is False
    assert identity(RunOptions(profile="full"), R10, "resnet10-onecycle").track_test is False  # best-val claims
    assert identity(RunOptions(profile="full"), R10, "resnet10-onecycle").robustness is True


def test_cohorts_pool_seeds_and_kernel_settings_but_not_budgets_or_precision() -> None:
    base = identity(BASE)
    for same in ({"seed": 3}, {"channels_last": "off"}, {"track_test": True}, {"deterministic": True}):
        assert cohort_id(identity(dataclasses.replace(BASE, **same)).cohort) == cohort_id(base.cohort), same
    for other in ({"precision": "bf16"}, {"epochs": 2}, {"subset": 2048}, {"protocol": "common"}):
        assert cohort_id(identity(dataclasses.replace(BASE, **other)).cohort) != cohort_id(base.cohort), other


def test_the_budget_in_a_cohort_is_what_ran_not_the_profiles_name() -> None:
    # report 003's ResNet-12 grid is 70 epochs: `short` asked for 70 epochs on all images is the full budget
    # (one cohort with `full`), and `full` cut to 5 epochs is not (the issue's `--profile full --epochs 5`)
    full = identity(RunOptions(profile="full"))
    long_short = identity(RunOptions(profile="short", epochs=70))
    cut_full = identity(RunOptions(profile="full", epochs=5))
    assert full.full_budget and long_short.full_budget and not cut_full.full_budget
    assert cohort_id(long_short.cohort) == cohort_id(full.cohort) and long_short.run_id != full.run_id
    assert comparison_key(cut_full.cohort) != comparison_key(full.cohort)
    assert comparison_key(cut_full.cohort) == comparison_key(identity(RunOptions(profile="short", epochs=5)).cohort)


def test_entries_compare_at_the_full_budget_whatever_their_epochs() -> None:
    full_a = identity(RunOptions(profile="full"), R10, "resnet10-onecycle").cohort
    full_b = identity(RunOptions(profile="full"), R4323, "as-coded").cohort
    assert comparison_key(full_a) == comparison_key(full_b)  # 100 and 450 epochs: each recipe's own
    smoke_a, smoke_b = identity(BASE).cohort, identity(dataclasses.replace(BASE, epochs=2)).cohort
    assert comparison_key(smoke_a) != comparison_key(smoke_b)


def test_a_changed_option_runs_anew_and_the_same_one_is_reused(jpeg_archive: Path, tmp_path: Path) -> None:
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    first = run(R10, "resnet12-grid", options, tmp_path, Silent())
    tracked = run(R10, "resnet12-grid", dataclasses.replace(options, track_test=True), tmp_path, Silent())
    assert tracked.record_path != first.record_path and tracked.identity["track_test"] is True
    assert all("test_acc_monitor" in h for h in tracked.history)
    assert tracked.test_acc_by_rule["best-epoch-test"] is not None
    messages: list[str] = []

    class Heard(Silent):
        def message(self, text: str) -> None:
            messages.append(text)

    again = run(R10, "resnet12-grid", options, tmp_path, Heard())
    assert again == first and "already complete" in messages[0]
    assert len(list(tmp_path.glob("resnet10/resnet12-grid/*.json"))) == 2


def test_a_protocol_file_is_named_by_its_declared_name_not_its_file_name(tmp_path: Path) -> None:
    """The identity, the record's file name and the plots all carry the `[protocol] name` a file declares."""
    renamed = tmp_path / "my-copy.toml"
    renamed.write_text((SPECS_DIR / "common.toml").read_text())  # declares name = "common"
    by_name = identity(dataclasses.replace(BASE, protocol="common"))
    by_file = identity(dataclasses.replace(BASE, protocol=str(renamed)))
    assert by_file.protocol == "common" and by_file.stem.startswith("common-smoke-")
    assert by_file.run_id == by_name.run_id  # the same recipe under the same protocol is one run
