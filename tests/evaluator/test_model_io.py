"""The driving model `roadworthy fit` saves, and when `evaluate` and `gate` may reuse it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from roadworthy.evaluator.evaluate_config import EvaluateConfig
from roadworthy.evaluator.logdata import load_eval_data
from roadworthy.evaluator.model_io import driving_path, fit_and_save_driving, load_driving, saved_driving
from roadworthy.evaluator.settings import FQEConfig, ModelConfig

SMALL = EvaluateConfig(
    heads=2,
    model=ModelConfig(steps=60, hidden=(16, 16), components=2),
    fqe=FQEConfig(hidden=(16, 16), iterations=5, steps_per_iteration=5),
)


@pytest.fixture(scope="module")
def saved(sim_logs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    key = fit_and_save_driving(sim_logs, driving_path(folder), SMALL)
    return folder, key


def test_a_saved_model_is_reused_only_for_the_same_log_and_settings(sim_logs, saved):
    folder, key = saved
    data = load_eval_data(sim_logs)
    model, note, checks = saved_driving(folder, data, SMALL)
    assert model is not None and note.startswith("loaded from") and "value" in checks["fqe"]
    loaded, saved_key, _ = load_driving(driving_path(folder))
    assert saved_key == key and loaded.heads == 2
    for other, why in ((replace(SMALL, seed=1), "another seed"), (replace(SMALL, heads=3), "other heads")):
        model, note, _ = saved_driving(folder, data, other)
        assert model is None and why in note
    assert saved_driving(None, data, SMALL)[1] == "fitted on the fly"


def test_a_setting_a_later_release_dropped_does_not_make_the_model_stale(sim_logs, saved, tmp_path):
    import shutil

    folder, _ = saved
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    meta_path = next(p for p in driving_path(copy).iterdir() if p.suffix == ".json")
    meta = json.loads(meta_path.read_text())
    meta["key"]["model"]["particles"] = 2  # ModelConfig.particles, never used, was removed
    meta["config"]["particles"] = 2
    meta_path.write_text(json.dumps(meta))
    model, note, _ = saved_driving(copy, load_eval_data(sim_logs), SMALL)
    assert model is not None and note.startswith("loaded from")
    assert np.isfinite(model.terminal_reward)
