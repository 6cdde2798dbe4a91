"""``roadworthy demo`` (the README's main job) and ``roadworthy example-policies``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from roadworthy.cli.common import handle_errors, progress, stage_printer, stdout, styled, table


@handle_errors
def example_policies(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to copy the policy files to.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace policy files already there.")] = False,
) -> None:
    """Copy the example ONNX policies shipped with roadworthy to a folder and list them."""
    from roadworthy import api

    result = api.example_policies(out, overwrite=overwrite)
    rows = [[p["name"], p["kind"], p["description"], p["file"]] for p in result.policies]
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

    console = stdout()
    # One progress bar at a time (rich allows one live display): a new stage or bar closes the last.
    with ExitStack() as outer:
        bar = outer.enter_context(ExitStack())

        def on_progress(what: str, total: int) -> Callable[[], None]:
            bar.close()
            advance = bar.enter_context(progress(total, what))
            return lambda: advance(1)

        def on_stage(title: str) -> None:
            bar.close()
            if title[:1].isdigit():
                console.rule(title)
            else:
                stage_printer()(title)

        result = api.demo(
            out,
            episodes=episodes,
            rollout_episodes=rollout_episodes,
            seed=seed,
            workers=workers,
            quick=quick,
            on_stage=on_stage,
            on_progress=on_progress,
        )
    render_demo(result.parts, console)


def render_demo(parts: dict, console) -> None:
    """The demo's tables, section by section, and where everything was written."""
    from roadworthy.cli.data_commands import print_rollout, print_summary
    from roadworthy.cli.density_commands import print_fit
    from roadworthy.demo import BASELINE, STAGES
    from roadworthy.evaluator.report import table_rows

    out, report, truth, verdicts = parts["out"], parts["report"], parts["truth"], parts["verdicts"]
    console.rule("results")
    print_summary(parts["collected"].summary, console)
    print_fit(parts["fit"].model, console)
    flags = parts["flags"]
    rows = [[f"logged {s}", c["rows"], c["is_ood"] / max(c["rows"], 1)] for s, c in sorted(flags["logged"].items())]
    rows += [[f"policy {name}", c["rows"], c["ood_rate"]] for name, c in flags["policies"].items()]
    cols = ["actions", "rows", "OOD rate"]
    console.print(table("Share of actions flagged out of distribution on the logged states", cols, rows))
    cols, rows = table_rows(report)
    console.print(table("Off-policy evaluation (gamma 0.99, 95 % bounds)", cols, rows))
    print_rollout(truth, console)
    est = {p["name"]: p["value"] for p in report["policies"]}
    rows = [
        [p["name"], p["value"]["estimate"], *(est[p["name"]][k] for k in ("estimate", "lower", "upper"))]
        for p in truth["policies"]
    ]
    console.print(
        table("Estimated from logs against closed-loop truth", ["policy", "truth", "estimate", "lower", "upper"], rows)
    )
    rows = [
        [
            name,
            styled("pass", "green") if v["passed"] else styled("FAIL", "bold red"),
            ", ".join(v["failed_checks"]) or "-",
        ]
        for name, v in verdicts.items()
    ]
    title = f"{STAGES[5][3:]} (default thresholds)"
    console.print(table(title, ["candidate", "verdict", "failed checks"], rows))
    logs, policies = out / "logs", out / "policies"
    console.rule("done")
    console.print(
        f"logs: {logs}\nsummary: {out / 'summary.json'}\nbehaviour model: {out / 'model'}\n"
        f"OOD flags: {out / 'flags.json'} (per row: {out / 'flags'})\n"
        f"evaluation: {out / 'evaluation.json'} and {out / 'evaluation.md'}\n"
        f"ground truth: {out / 'rollout.json'}\ngate verdicts: {out / 'gate'} "
        f"({sum(v['passed'] for v in verdicts.values())} of {len(verdicts)} pass)\npolicies: {policies}\n\n"
        f"next: open the dashboards (pip install -e '.[dashboard]'):\n"
        f"  roadworthy dashboard {logs} --report {out / 'evaluation.json'} --model {out / 'model'} "
        f"--truth {out / 'rollout.json'}\n"
        f"or gate a policy yourself: roadworthy gate {logs} --model {out / 'model'} "
        f"--candidate {policies / 'fast.onnx'} --baseline {policies / (BASELINE + '.onnx')} --json verdict.json"
    )
