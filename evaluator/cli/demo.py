"""``roadworthy demo`` (the README's main job) and ``roadworthy example-policies``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from evaluator.cli.common import handle_errors, progress, stdout, table, write_json

DEMO_MARKER = ".roadworthy-demo"


@handle_errors
def example_policies(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to copy the policy files to.")],
) -> None:
    """Copy the example ONNX policies shipped with roadworthy to a folder and list them."""
    from data.sim.policies import EXAMPLES, example_policy_path

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
) -> None:
    """The main job on the embedded default: collect logs, validate them, roll out the example policies."""
    from data.errors import UsageError
    from data.sim.collect import collect_highway
    from data.sim.policies import EXAMPLES, example_policy_path
    from data.sim.rollout import rollout_highway
    from data.validate import validate_logs
    from evaluator.cli.data_commands import print_rollout, print_summary

    if out.exists() and any(out.iterdir()) and not (out / DEMO_MARKER).exists():
        raise UsageError(f"{out} exists and was not made by `roadworthy demo`", "pick another --out folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).touch()
    console = stdout()
    logs, policies = out / "logs", out / "policies"

    console.rule("1. collect fleet logs from the embedded simulator")
    with progress(episodes, "simulating episodes") as advance:
        collect_highway(
            logs, episodes=episodes, seed=seed, workers=workers, overwrite=True, on_episode=lambda r: advance(1)
        )

    console.rule("2. validate them against the log contract")
    summary = validate_logs(logs)
    print_summary(summary, console)
    write_json(summary.to_dict(), out / "summary.json")

    console.rule("3. closed-loop ground truth of the example policies")
    policies.mkdir(exist_ok=True)
    paths = []
    for spec in EXAMPLES:
        paths.append(policies / f"{spec.name}.onnx")
        shutil.copyfile(example_policy_path(spec.name), paths[-1])
    with progress(rollout_episodes * len(paths), "rolling out") as advance:
        # A seed apart from the logs', so ground truth is not measured on the logged starts alone.
        report = rollout_highway(
            paths, episodes=rollout_episodes, seed=seed + 1, workers=workers, on_episode=lambda r: advance(1)
        )
    print_rollout(report, console)
    write_json(report, out / "rollout.json")

    console.rule("done")
    console.print(
        f"logs: {logs}\nsummary: {out / 'summary.json'}\nground truth: {out / 'rollout.json'}\n"
        f"policies: {policies}\n\nnext: roadworthy validate {logs}"
    )
