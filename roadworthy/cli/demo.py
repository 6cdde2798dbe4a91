"""``roadworthy demo`` (the README's main job) and ``roadworthy example-policies``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from roadworthy.cli.common import handle_errors, progress, stage_printer, stdout, styled, table, write_json

DEMO_MARKER = ".roadworthy-demo"


@handle_errors
def example_policies(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to copy the policy files to.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace policy files already there.")] = False,
) -> None:
    """Copy the example ONNX policies shipped with roadworthy to a folder and list them."""
    from roadworthy.cli.common import guard_outputs
    from roadworthy.data.sim.policies import EXAMPLES, example_policy_path

    targets = {spec.name: out / f"{spec.name}.onnx" for spec in EXAMPLES}
    guard_outputs([], overwrite, **{f"out {name}": path for name, path in targets.items()})
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in EXAMPLES:
        target = out / f"{spec.name}.onnx"
        shutil.copyfile(example_policy_path(spec.name), target)
        rows.append([spec.name, "gaussian" if spec.std else "deterministic", spec.description, str(target)])
    stdout().print(table("Example policies", ["name", "kind", "what it does", "file"], rows))


@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for everything the demo writes.")] = Path(
        "runs/demo"
    ),
    episodes: Annotated[int, typer.Option(help="Logged episodes to collect.")] = 200,
    rollout_episodes: Annotated[int, typer.Option(help="Closed-loop episodes per example policy.")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the whole run.")] = 0,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
    quick: Annotated[bool, typer.Option(help="Small estimator settings, for smoke tests (numbers are rough).")] = False,
) -> None:
    """The main job on the embedded default: collect logs, validate them, fit the behaviour model,
    flag out-of-distribution actions, evaluate the example policies from the logs, check against rollouts,
    and gate each policy against the autopilot clone."""
    from roadworthy import api
    from roadworthy.cli.data_commands import print_summary
    from roadworthy.data.errors import UsageError
    from roadworthy.data.sim.policies import EXAMPLES, example_policy_path

    if out.exists() and any(out.iterdir()) and not (out / DEMO_MARKER).exists():
        raise UsageError(f"{out} exists and was not made by `roadworthy demo`", "pick another --out folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).touch()
    console = stdout()
    logs, policies = out / "logs", out / "policies"

    console.rule("1. collect fleet logs from the embedded simulator")
    with progress(episodes, "simulating episodes") as advance:
        collected = api.collect(
            logs, episodes, seed=seed, workers=workers, overwrite=True, on_episode=lambda r: advance(1)
        )

    console.rule("2. validate them against the log contract")
    print_summary(collected.summary, console)
    write_json(collected.summary.to_dict(), out / "summary.json")

    policies.mkdir(exist_ok=True)
    paths = []
    for spec in EXAMPLES:
        paths.append(policies / f"{spec.name}.onnx")
        shutil.copyfile(example_policy_path(spec.name), paths[-1])

    console.rule("3. fit the behaviour density model and flag out-of-distribution actions")
    flags = _fit_and_flag(logs, out / "model", paths, seed, console, quick)
    write_json(flags, out / "flags.json")

    console.rule("4. conservative off-policy evaluation of the example policies, from the logs alone")
    config = demo_config(seed, quick)
    report = _evaluate(logs, paths, out, config, console)

    console.rule("5. closed-loop ground truth of the example policies")
    _ground_truth(paths, report, rollout_episodes, seed, workers, out, console)

    console.rule("6. the CI gate: each example policy against the autopilot clone")
    verdicts = _gate_examples(report, config, out / "gate", console)

    console.rule("done")
    console.print(
        f"logs: {logs}\nsummary: {out / 'summary.json'}\nbehaviour model: {out / 'model'}\n"
        f"OOD flags: {out / 'flags.json'}\nevaluation: {out / 'evaluation.json'} and {out / 'evaluation.md'}\n"
        f"ground truth: {out / 'rollout.json'}\ngate verdicts: {out / 'gate'} "
        f"({sum(v['passed'] for v in verdicts.values())} of {len(verdicts)} pass)\npolicies: {policies}\n\n"
        f"next: open the dashboards (pip install -e '.[dashboard]'):\n"
        f"  roadworthy dashboard {logs} --report {out / 'evaluation.json'} --model {out / 'model'} "
        f"--truth {out / 'rollout.json'}\n"
        f"or gate a policy yourself: roadworthy gate {logs} --model {out / 'model'} "
        f"--candidate {policies / 'fast.onnx'} --baseline {policies / 'autopilot-clone.onnx'} --json verdict.json"
    )


def demo_config(seed: int, quick: bool):
    """The evaluation settings of the demo (``quick``: small, for smoke tests)."""
    from dataclasses import replace

    from roadworthy.evaluator.evaluate import EvaluateConfig
    from roadworthy.evaluator.fqe import FQEConfig
    from roadworthy.evaluator.importance import ISConfig
    from roadworthy.evaluator.model_based import ModelConfig

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


def _evaluate(logs: Path, paths: list[Path], out: Path, config, console) -> dict:
    from roadworthy import api
    from roadworthy.evaluator.report import markdown, table_rows

    report = api.evaluate(logs, paths, model=out / "model", config=config).report
    cols, rows = table_rows(report)
    console.print(table("Off-policy evaluation (gamma 0.99, 95 % bounds)", cols, rows))
    write_json(report, out / "evaluation.json")
    (out / "evaluation.md").write_text(markdown(report))
    return report


def _ground_truth(paths, report: dict, episodes: int, seed: int, workers, out: Path, console) -> None:
    from roadworthy import api
    from roadworthy.cli.data_commands import print_rollout

    with progress(episodes * len(paths), "rolling out") as advance:
        # A seed apart from the logs', so ground truth is not measured on the logged starts alone.
        truth = api.rollout(paths, episodes, seed=seed + 1, workers=workers, on_episode=lambda r: advance(1)).report
    print_rollout(truth, console)
    write_json(truth, out / "rollout.json")
    est = {p["name"]: p["value"] for p in report["policies"]}
    rows = [
        [
            p["name"],
            p["value"]["estimate"],
            est[p["name"]]["estimate"],
            est[p["name"]]["lower"],
            est[p["name"]]["upper"],
        ]
        for p in truth["policies"]
    ]
    cols = ["policy", "truth", "estimate", "lower", "upper"]
    console.print(table("Estimated from logs against closed-loop truth", cols, rows))


BASELINE = "autopilot-clone"


def _gate_examples(report: dict, config, folder: Path, console) -> dict[str, dict]:
    """Gate verdicts (default thresholds) of every example policy against the clone, from ``report``."""
    from dataclasses import replace

    from roadworthy.data.writer import AtomicFile
    from roadworthy.evaluator.gate import verdict
    from roadworthy.evaluator.gate_config import EvaluationSection, GateConfig
    from roadworthy.evaluator.gate_render import junit_xml

    # The verdict records the evaluation settings actually used (smaller with --quick).
    cfg = replace(GateConfig(), evaluation=EvaluationSection.of(config))
    folder.mkdir(parents=True, exist_ok=True)
    verdicts, rows = {}, []
    for p in report["policies"]:
        if p["name"] == BASELINE:
            continue
        v = verdict(report, p["name"], BASELINE, cfg)
        verdicts[p["name"]] = v
        write_json(v, folder / f"{p['name']}.json")
        with AtomicFile(folder / f"{p['name']}.junit.xml") as f:
            f.tmp.write_text(junit_xml(v))
        rows.append(
            [
                p["name"],
                styled("pass", "green") if v["passed"] else styled("FAIL", "bold red"),
                ", ".join(v["failed_checks"]) or "-",
            ]
        )
    console.print(
        table(
            f"roadworthy gate against {BASELINE} (default thresholds)", ["candidate", "verdict", "failed checks"], rows
        )
    )
    console.print(
        "the same by hand, with exit code 0 pass / 1 fail: roadworthy gate LOGS --candidate C.onnx "
        f"--baseline {BASELINE}.onnx --json verdict.json --junit junit.xml",
        style="dim",
    )
    return verdicts


def _fit_and_flag(logs: Path, model_dir: Path, policies: list[Path], seed: int, console, quick: bool) -> dict:
    """Fit the default behaviour model, then the OOD rate of the logs and of each policy."""
    from roadworthy.cli.density_commands import print_fit
    from roadworthy.data.policy import OnnxPolicy
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel
    from roadworthy.evaluator.model_io import driving_path, fit_and_save_driving

    params = {"random_state": seed, **({"epochs": 5} if quick else {})}
    model = BehaviorModel.fit(logs, BehaviorConfig(seed=seed, model_params=params))
    model.save(model_dir)
    print_fit(model, console)
    # The learned driving model beside it, as `roadworthy fit` saves it: the evaluation below and
    # `roadworthy gate --model` reuse it.
    fit_and_save_driving(logs, driving_path(model_dir), demo_config(seed, quick), on_stage=stage_printer())
    out = {"model": str(model_dir), "alpha": model.config.alpha, "logged": {}, "policies": {}}
    for t in model.iter_scores(logs):
        for src in set(t.column("source").to_pylist()):
            sel = np.asarray(t.column("source").to_pylist()) == src
            c = out["logged"].setdefault(src, {"rows": 0, "is_ood": 0})
            c["rows"] += int(sel.sum())
            c["is_ood"] += int(t.column("is_ood").to_numpy()[sel].sum())
    rows = [[f"logged {s}", c["rows"], c["is_ood"] / max(c["rows"], 1)] for s, c in sorted(out["logged"].items())]
    for path in policies:
        pol = OnnxPolicy.load(path, obs_names=model.obs_names, action_names=model.action_names)
        n = flagged = state = 0
        for t in model.iter_scores(logs, policy=pol):
            n += t.num_rows
            flagged += int(t.column("is_ood").to_numpy().sum())
            state += int(t.column("state_is_ood").to_numpy().sum())
        out["policies"][pol.name] = {"rows": n, "ood_rate": flagged / max(n, 1)}
        rows.append([f"policy {pol.name}", n, flagged / max(n, 1)])
    console.print(
        table(
            "Share of actions flagged out of distribution on the logged states", ["actions", "rows", "OOD rate"], rows
        )
    )
    return out
