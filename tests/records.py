"""Result records as `harness run` writes them, made by hand for the tests of the layers that read them."""

from __future__ import annotations

from typing import Any

from harness.results.identity import RESULTS_VERSION, Identity
from harness.spec import Spec, load_protocol, load_specs, with_protocol
from harness.train.request import make_budget
from tests.conftest import COMMON, SPEC_FILES

SPECS: dict[str, Spec] = {s.name: s for s in load_specs(SPEC_FILES)[0]}
OFFICIAL_SHA, JPEG_SHA = "a" * 64, "b" * 64


def record_json(report: str, variant: str, seed: int, acc: float, **given: Any) -> dict[str, Any]:
    """A finished record of the variant's current recipe; `given` overrides its identity's settings (epochs,
    train_images, profile, protocol, precision, device_type, channels_last, ...) and `official`,
    `best_test`, `finished_at`, `spec_hash`, `results_version` and `status`."""
    spec = SPECS[report]
    v = spec.variant(variant)
    protocol = given.pop("protocol", "own")
    if protocol == "common":
        v = with_protocol(spec, v, load_protocol(COMMON))
    official = given.pop("official", True)
    best_test = given.pop("best_test", None)
    finished_at = given.pop("finished_at", "2026-12-01T00:00:00+00:00")
    status = given.pop("status", "complete")
    epochs = given.get("epochs", v.recipe.train.epochs)
    train_images = given.get("train_images")
    identity = {
        "report": report,
        "variant": variant,
        "spec_hash": v.spec_hash,
        "protocol": protocol,
        "seed": seed,
        "profile": "full",
        "epochs": epochs,
        "train_images": train_images,
        # a subset's split sizes as a run of it takes them (not what these tests check)
        "val_images": make_budget(v.recipe, "full", epochs, train_images).val_images,
        "test_images": make_budget(v.recipe, "full", epochs, train_images).test_images,
        "full_budget": epochs == v.recipe.train.epochs and train_images is None,
        "data_sha256": OFFICIAL_SHA if official else JPEG_SHA,
        "device_type": "cuda",
        "precision": "fp32",
        "channels_last": True,
        "augment": "batched",
        "workers": 0,
        "compile": False,
        "deterministic": False,
        "track_test": best_test is not None,
        "robustness": True,
        "teacher": None,
        "results_version": RESULTS_VERSION,
        **given,
    }
    rules = {"last-epoch": acc, "best-val": acc - 0.2, "best-epoch-test": best_test}
    return {
        "schema": "harness.result/2",
        "report": report,
        "variant": variant,
        "seed": seed,
        "profile": identity["profile"],
        "protocol": protocol,
        "status": status,
        "spec_hash": identity["spec_hash"],
        "identity": identity,
        "run_id": Identity(**identity).run_id,
        "test_acc": acc if status == "complete" else None,
        "selection": "last",
        "test_acc_by_rule": rules if status == "complete" else {},
        "data_source": "cifar10" if official else "jpeg copy (not the official CIFAR-10 pixels)",
        "data": {"official": official, "sha256": identity["data_sha256"]},
        "budget": {
            "epochs": epochs,
            "spec_epochs": v.recipe.train.epochs,
            "train_images": train_images or 45_000,
            "test_images": identity["test_images"] or 10_000,
        },
        "device_hours": 2.0,
        "device": {"name": "NVIDIA H100", "type": identity["device_type"]},
        "robustness": {"mean": max(acc - 20, 0.0)},  # an accuracy: never below 0 (results/validate.py)
        "finished_at": finished_at,
        "history": [
            {"epoch": e, "train_loss": 2.0 / (e + 1), "val_acc": max(acc - 5 + e, 0.0), "seconds": 60.0}
            for e in range(3)
        ],
    }
