"""Running the gate end to end: evaluate candidate and baseline on the logs, then judge.

:func:`run_gate` is what ``roadworthy gate`` and :func:`roadworthy.gate` call; the
checks themselves are the pure :func:`roadworthy.evaluator.gate.verdict`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from roadworthy.data.errors import UsageError, check_seed
from roadworthy.evaluator.gate_config import GateConfig, load_gate_config


def _check_names(names: list[str], candidate: str, baseline: str) -> None:
    if "behavior" in names:
        raise UsageError(
            f"a policy calls itself 'behavior', the name reserved for the logged behaviour ({candidate}, {baseline})",
            "rename it in its roadworthy metadata",
        )
    if len(names) == 2 and names[0] == names[1]:
        raise UsageError(
            f"candidate {candidate} and baseline {baseline} both call themselves '{names[0]}'",
            "give them different names in their roadworthy metadata",
        )


def run_gate(
    logs: str | Path,
    candidate: str | Path,
    baseline: str | Path = "behavior",
    *,
    config: GateConfig | str | Path | None = None,
    model: str | Path | None = None,
    seed: int | None = None,
    allow_code: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[dict, dict]:
    """Evaluate ``candidate`` (and ``baseline``, unless ``"behavior"``) on ``logs`` and judge.

    Parameters
    ----------
    logs : path
        The driving logs (contract v1).
    candidate, baseline : path or str
        Policy files; ``baseline="behavior"`` compares with the logged behaviour itself.
    config : GateConfig, path or None
        Gate settings, or a TOML file of them (defaults when None).
    model : path, optional
        A behaviour model folder (default: one is fitted on ``logs``).
    seed : int, optional
        Overrides ``[evaluation].seed``.

    Returns
    -------
    (verdict, report) : (dict, dict)
        The JSON verdict (:func:`~roadworthy.evaluator.gate.verdict`) and the evaluation report.
    """
    from roadworthy.evaluator.evaluate import evaluate
    from roadworthy.evaluator.gate import verdict

    cfg = config if isinstance(config, GateConfig) else load_gate_config(config)
    if seed is not None:
        cfg = replace(cfg, evaluation=replace(cfg.evaluation, seed=check_seed(seed)))
    eval_config = cfg.evaluate_config()
    eval_config.validate()
    policies = [candidate] if str(baseline) == "behavior" else [candidate, baseline]
    # Names first (they come from the files' metadata): a clash is refused before minutes of fitting.
    from roadworthy.data.policy_code import load_policy

    names = [load_policy(p, allow_code=allow_code).name for p in policies]
    _check_names(names, str(candidate), str(baseline))
    rep = evaluate(logs, policies, model=model, config=eval_config, on_stage=on_stage, allow_code=allow_code)
    out = verdict(rep, names[0], names[1] if len(names) == 2 else "behavior", cfg)
    return out, rep


def append_step_summary(markdown: str) -> Path | None:
    """Append the Markdown summary to ``$GITHUB_STEP_SUMMARY`` when GitHub Actions sets it."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as f:
        f.write(markdown + "\n")
    return Path(target)
