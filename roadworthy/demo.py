"""The README's main job, as a sequence of :mod:`roadworthy.api` calls (:func:`roadworthy.api.demo`).

Collect fleet logs from the embedded simulator, fit the behaviour model (and the learned
driving model beside it), score the logged actions and each example policy's, evaluate
the example policies from the logs alone, measure their closed-loop ground truth, and
judge each against the autopilot clone as the gate would. Nothing here prints; the
command renders the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from roadworthy.data.errors import UsageError

if TYPE_CHECKING:
    from roadworthy.evaluator.evaluate_config import EvaluateConfig

#: Marks a folder as the demo's own, so that a rerun may replace it and nothing else.
DEMO_MARKER = ".roadworthy-demo"
#: Every example policy is judged against this one.
BASELINE = "autopilot-clone"
#: The stages, in order (``on_stage`` receives each title as it starts).
STAGES = (
    "1. collect fleet logs from the embedded simulator",
    "2. validate them against the log contract",
    "3. fit the behaviour density model and flag out-of-distribution actions",
    "4. conservative off-policy evaluation of the example policies, from the logs alone",
    "5. closed-loop ground truth of the example policies",
    "6. the CI gate: each example policy against the autopilot clone",
)


def demo_config(seed: int, quick: bool) -> EvaluateConfig:
    """The evaluation settings of the demo (``quick``: small, for smoke tests)."""
    from roadworthy.evaluator.evaluate_config import EvaluateConfig
    from roadworthy.evaluator.importance import ISConfig
    from roadworthy.evaluator.settings import FQEConfig, ModelConfig

    config = EvaluateConfig(seed=seed)
    if not quick:
        return config
    return replace(
        config,
        heads=3,
        model=ModelConfig(hidden=(32, 32), steps=60, components=2),
        fqe=FQEConfig(hidden=(32, 32), iterations=20, steps_per_iteration=10),
        importance=ISConfig(bootstrap=20),
    )


def run_demo(
    out: str | Path,
    *,
    episodes: int = 200,
    rollout_episodes: int = 40,
    seed: int = 0,
    workers: int | None = None,
    quick: bool = False,
    on_stage: Callable[[str], None] | None = None,
    on_progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> dict:
    """Run every stage into ``out``; the results of each (see :class:`roadworthy.results.Demo`).

    ``on_progress(what, total)`` is called before a long stage and returns the callback
    to call once per finished unit (episode).
    """
    from roadworthy import api
    from roadworthy.evaluator.gate import verdict
    from roadworthy.evaluator.gate_config import EvaluationSection, GateConfig
    from roadworthy.evaluator.gate_render import junit_xml
    from roadworthy.evaluator.report import markdown

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / DEMO_MARKER).exists():
        raise UsageError(f"`out` {out} exists and was not made by `roadworthy demo`", "pick another `out` folder")
    stage = on_stage or (lambda s: None)
    ticker = on_progress or (lambda what, total: lambda: None)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).touch()
    logs, model_dir = out / "logs", out / "model"

    stage(STAGES[0])
    tick = ticker("simulating episodes", episodes)
    collected = api.collect(logs, episodes, seed=seed, workers=workers, overwrite=True, on_episode=lambda r: tick())
    stage(STAGES[1])
    _write_json(collected.summary.to_dict(), out / "summary.json")
    policies = api.example_policies(out / "policies", overwrite=True)
    paths = [Path(p["file"]) for p in policies.policies]

    stage(STAGES[2])
    config = demo_config(seed, quick)
    # With the learned driving model of the demo's settings beside it: the evaluation
    # below and `roadworthy gate --model` reuse it.
    epochs = 5 if quick else None
    fitted = api.fit(logs, model_dir, seed=seed, epochs=epochs, evaluation=config, overwrite=True, on_stage=stage)
    flags_dir = out / "flags"
    logged = api.score(logs, model_dir, flags_dir / "logged.parquet", overwrite=True)
    scored = {
        p.stem: api.score(logs, model_dir, flags_dir / f"{p.stem}.parquet", policy=p, overwrite=True) for p in paths
    }
    flags = {
        "model": str(model_dir),
        "alpha": fitted.model.config.alpha,
        "logged": logged.counts["by_source"],
        "policies": {name: {"rows": s.counts["rows"], "ood_rate": s.ood_rate} for name, s in scored.items()},
    }
    _write_json(flags, out / "flags.json")

    stage(STAGES[3])
    report = api.evaluate(logs, paths, model=model_dir, config=config, on_stage=stage).report
    _write_json(report, out / "evaluation.json")
    _write_text(markdown(report), out / "evaluation.md")

    stage(STAGES[4])
    tick = ticker("rolling out", rollout_episodes * len(paths))
    # A seed apart from the logs', so ground truth is not measured on the logged starts alone.
    truth = api.rollout(paths, rollout_episodes, seed=seed + 1, workers=workers, on_episode=lambda r: tick()).report
    _write_json(truth, out / "rollout.json")

    stage(STAGES[5])
    # One evaluation serves every verdict; it records the settings actually used.
    cfg = replace(GateConfig(), evaluation=EvaluationSection.of(config))
    verdicts = {}
    for p in report["policies"]:
        if p["name"] != BASELINE:
            v = verdicts[p["name"]] = verdict(report, p["name"], BASELINE, cfg)
            _write_json(v, out / "gate" / f"{p['name']}.json")
            _write_text(junit_xml(v), out / "gate" / f"{p['name']}.junit.xml")
    return {
        "out": out,
        "collected": collected,
        "fit": fitted,
        "flags": flags,
        "report": report,
        "truth": truth,
        "verdicts": verdicts,
    }


def _write_text(text: str, path: Path) -> None:
    from roadworthy.data.writer import AtomicFile

    path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(path) as f:
        f.tmp.write_text(text)


def _write_json(obj: object, path: Path) -> None:
    from roadworthy.data.jsonio import dumps

    _write_text(dumps(obj), path)
