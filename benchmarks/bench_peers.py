"""Benchmark: the same logs and policies through d3rlpy's FQE and SCOPE-RL's estimators.

Peers live in their own environment (they pin their own gym and numpy):

    python -m venv benchmarks/.peer-venv
    benchmarks/.peer-venv/bin/pip install torch==2.13.0 d3rlpy==2.8.1 scope-rl==0.2.1 \
        onnx onnxruntime pyarrow scikit-learn
    PYTHONPATH=. benchmarks/.peer-venv/bin/python benchmarks/bench_peers.py

It reuses what ``bench_ope.py`` prepared under ``benchmarks/.work/ope`` (logs, the
fitted behaviour model, closed-loop truth), so run that first.

* **d3rlpy FQE** (continuous): the log as an ``MDPDataset`` (terminals, timeouts),
  observations plus the steps to go (the same inputs roadworthy's Q gets; the return
  is finite-horizon), standardized; the policy file wrapped as the "algo" whose
  ``predict_best_action`` FQE calls (the mean action: d3rlpy FQE evaluates
  deterministic policies only). Same number of gradient steps, batch size and
  target-update interval as roadworthy's FQE; otherwise d3rlpy's defaults. Value =
  mean over logged start states of Q(s0, pi(s0)).
* **SCOPE-RL** (continuous TIS, PDIS, SNTIS, SNPDIS): it needs episodes of one fixed
  length and logged behaviour propensities. Fed the log as it is, it fails (recorded);
  then episodes are padded to the horizon with absorbing zero-reward steps and given
  the behaviour density from ``density/`` as propensities, in the same scaled action
  space and kernel bandwidth roadworthy uses. SCOPE-RL 0.2.1 casts continuous logged
  actions to int in ``OffPolicyEvaluation`` (``action.astype(int)``); results are
  recorded as shipped and with that cast removed.

Results: ``benchmarks/results/peers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from bench_ope import NAMES, WORK, metrics  # noqa: E402


class PolicyAlgo:
    """The minimum of a d3rlpy algo that FQE uses: ``impl.predict_best_action``.

    FQE hands it observations after d3rlpy's observation scaler; they are mapped back
    to raw features (and the steps-to-go column dropped) before the ONNX policy runs.
    """

    def __init__(self, policy, mean: np.ndarray, std: np.ndarray, obs_dim: int) -> None:
        import torch

        self.policy = policy
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.std = torch.as_tensor(std, dtype=torch.float32)
        self.obs_dim = obs_dim
        self.impl = self

    def predict_best_action(self, x):
        import torch

        raw = (x * self.std + self.mean)[:, : self.obs_dim]
        act, _ = self.policy.distribution(raw.detach().cpu().numpy())
        return torch.as_tensor(np.asarray(act, dtype=np.float32))

    def predict(self, x: np.ndarray) -> np.ndarray:
        act, _ = self.policy.distribution(np.asarray(x)[:, : self.obs_dim])
        return np.asarray(act, dtype=np.float32)


def d3rlpy_fqe(
    data, policy, steps: int, batch: int, interval: int, gamma: float, seed: int, reward_scale: float = 1.0
) -> float:
    import d3rlpy

    d3rlpy.seed(seed)
    tg = (data.to_go / data.horizon).astype(np.float32)[:, None]
    obs = np.concatenate([data.obs, tg], axis=1)
    mean, std = obs.mean(axis=0), obs.std(axis=0) + 1e-6
    z = ((obs - mean) / std).astype(np.float32)
    ends = np.r_[data.starts[1:] - 1, data.n - 1]
    terminals = np.zeros(data.n, np.float32)
    timeouts = np.zeros(data.n, np.float32)
    terminal_end = data.cont[ends] == 0
    # cont == 0 at a horizon truncation too; d3rlpy's terminal means "no bootstrap".
    terminals[ends[terminal_end]] = 1.0
    timeouts[ends[~terminal_end]] = 1.0
    dataset = d3rlpy.dataset.MDPDataset(z, data.action, data.reward.astype(np.float32), terminals, timeouts)
    algo = PolicyAlgo(policy, mean, std, data.obs.shape[1])
    fqe = d3rlpy.ope.FQE(
        algo=algo,
        config=d3rlpy.ope.FQEConfig(
            batch_size=batch,
            gamma=gamma,
            target_update_interval=interval,
            reward_scaler=None if reward_scale == 1.0 else d3rlpy.preprocessing.MultiplyRewardScaler(reward_scale),
        ),
        device="cpu:0",
    )
    fqe.fit(
        dataset,
        n_steps=steps,
        n_steps_per_epoch=steps,
        show_progress=False,
        save_interval=10**9,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
    )
    s0 = z[data.starts]
    a0, _ = policy.distribution(data.obs[data.starts])
    return float(np.mean(fqe.predict_value(s0, np.asarray(a0, np.float32)))) / reward_scale


def scope_inputs(data, logp_mu: np.ndarray):
    """Padded logged dataset for SCOPE-RL, and the padding index."""
    from d3rlpy.preprocessing import MinMaxActionScaler

    h = data.horizon
    n_ep = data.n_episodes
    idx = data.episode * h + data.step  # row -> padded position
    size = n_ep * h
    a_dim = data.action.shape[1]
    scale = data.action.std(axis=0) + 1e-6
    action = np.zeros((size, a_dim))
    reward = np.zeros(size)
    done = np.ones(size)
    pscore = np.ones((size, a_dim))
    state = np.zeros((size, data.obs.shape[1]))
    action[idx] = data.action
    reward[idx] = data.reward
    state[idx] = data.obs
    done[idx] = 0.0
    ends = np.r_[data.starts[1:] - 1, data.n - 1]
    done[idx[ends]] = 1.0
    # Density of the action in the scaled space a / std (where the kernel is), as the
    # first dimension's "propensity"; SCOPE-RL multiplies the dimensions.
    pscore[idx, 0] = np.exp(logp_mu + np.log(scale).sum())
    logged = {
        "size": size,
        "n_trajectories": n_ep,
        "step_per_trajectory": h,
        "action_type": "continuous",
        "n_actions": None,
        "action_dim": a_dim,
        "action_keys": list(data.action_names),
        "action_meaning": None,
        "state_dim": data.obs.shape[1],
        "state_keys": list(data.obs_names),
        "state": state,
        "action": action,
        "reward": reward,
        "done": done,
        "terminal": done.copy(),
        "info": None,
        "pscore": pscore,
        "behavior_policy": "fleet",
        "dataset_id": 0,
    }
    scaler = MinMaxActionScaler(minimum=-scale, maximum=scale)
    return logged, idx, scaler


def scope_run(logged, eval_actions: dict, scaler, bandwidth: float, gamma: float, patched: bool) -> dict:
    from scope_rl.ope import OffPolicyEvaluation
    from scope_rl.ope.continuous import (
        PerDecisionImportanceSampling,
        SelfNormalizedPDIS,
        SelfNormalizedTIS,
        TrajectoryWiseImportanceSampling,
    )

    class Patched(OffPolicyEvaluation):
        def _register_logged_dataset(self, *a, **k):
            super()._register_logged_dataset(*a, **k)
            self.input_dict_["action"] = self.logged_dataset["action"]

    cls = Patched if patched else OffPolicyEvaluation
    ope = cls(
        logged_dataset=logged,
        ope_estimators=[
            TrajectoryWiseImportanceSampling(),
            PerDecisionImportanceSampling(),
            SelfNormalizedTIS(),
            SelfNormalizedPDIS(),
        ],
        bandwidth=bandwidth,
        action_scaler=scaler,
    )
    input_dict = {
        name: {
            "evaluation_policy_action": act,
            "evaluation_policy_action_dist": None,
            "state_action_value_prediction": None,
            "initial_state_value_prediction": None,
            "state_action_marginal_importance_weight": None,
            "state_marginal_importance_weight": None,
            "on_policy_policy_value": None,
            "gamma": gamma,
            "behavior_policy": "fleet",
            "evaluation_policy": name,
            "dataset_id": 0,
        }
        for name, act in eval_actions.items()
    }
    return ope.estimate_policy_value(input_dict)


def main() -> None:
    from roadworthy.data.policy import OnnxPolicy
    from roadworthy.data.sim.policies import EXAMPLES_BY_NAME, example_policy_path
    from roadworthy.density.behavior import BehaviorModel
    from roadworthy.evaluator.evaluate import EvaluateConfig, behavior_log_density
    from roadworthy.evaluator.fqe import FQEConfig
    from roadworthy.evaluator.logdata import load_eval_data

    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--ours", type=Path, default=HERE / "results" / "ope.json")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "peers.json")
    ap.add_argument("--d3rlpy-reward-scales", type=float, nargs="*", default=[1.0, 0.01])
    args = ap.parse_args()
    import d3rlpy
    import scope_rl

    logs, model_dir = WORK / f"logs-{args.episodes}", WORK / f"model-{args.episodes}"
    truth_report = json.loads((WORK / "truth.json").read_text())
    truth = {p["name"]: p["value"]["estimate"] for p in truth_report["policies"]}
    unsafe = [n for n in NAMES if EXAMPLES_BY_NAME[n].unsafe]
    data = load_eval_data(logs)
    model = BehaviorModel.load(model_dir)
    cfg, fcfg = EvaluateConfig(), FQEConfig()
    iterations = fcfg.iterations or data.horizon + 20
    steps = iterations * fcfg.steps_per_iteration
    policies = {n: OnnxPolicy.load(example_policy_path(n)) for n in NAMES}
    report: dict = {
        "benchmark": "peers on the off-policy evaluation benchmark",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"d3rlpy": d3rlpy.__version__, "scope_rl": getattr(scope_rl, "__version__", "0.2.1")},
        "date": time.strftime("%Y-%m-%d"),
        "rows": data.n,
        "episodes": data.n_episodes,
        "horizon": data.horizon,
        "gradient_steps": steps,
        "batch_size": fcfg.batch_size,
        "target_update_interval": fcfg.steps_per_iteration,
        "truth": truth,
        "peers": {},
    }

    # d3rlpy's defaults, then rewards scaled by 0.01 (penalties of -200 become -2), the
    # usual first fix when FQE's values run away.
    for scale in args.d3rlpy_reward_scales:
        label = "d3rlpy FQE" + ("" if scale == 1.0 else f" (rewards x{scale:g})")
        est, secs = {}, {}
        for n in NAMES:
            t0 = time.perf_counter()
            est[n] = d3rlpy_fqe(
                data, policies[n], steps, fcfg.batch_size, fcfg.steps_per_iteration, cfg.gamma, 0, scale
            )
            secs[n] = time.perf_counter() - t0
            print(json.dumps({"peer": label, "policy": n, "estimate": est[n], "seconds": secs[n]}), flush=True)
        report["peers"][label] = {
            "estimates": est,
            "seconds_per_policy": float(np.mean(list(secs.values()))),
            "metrics": metrics(est, truth),
        }

    logp_mu = behavior_log_density(data, model)
    bw = cfg.importance.bandwidth
    # As the log is: SCOPE-RL reshapes to (episodes, step_per_trajectory).
    try:
        raw = {
            "size": data.n,
            "n_trajectories": data.n_episodes,
            "step_per_trajectory": data.horizon,
            "action_type": "continuous",
            "n_actions": None,
            "action_dim": data.action.shape[1],
            "state_dim": data.obs.shape[1],
            "state": data.obs,
            "action": data.action,
            "reward": data.reward,
            "done": (data.cont == 0).astype(float),
            "terminal": (data.cont == 0).astype(float),
            "pscore": np.exp(logp_mu)[:, None].repeat(data.action.shape[1], 1),
        }
        acts = {n: policies[n].distribution(data.obs)[0] for n in NAMES}
        scope_run(raw, acts, None, bw, cfg.gamma, patched=False)
        report["scope_rl_unpadded"] = "ran"
    except Exception as e:  # recording exactly what fails is the point
        report["scope_rl_unpadded"] = f"{type(e).__name__}: {e}".strip()
        print("SCOPE-RL on the log as it is:", report["scope_rl_unpadded"], flush=True)
        traceback.print_exc(limit=2)

    logged, idx, scaler = scope_inputs(data, logp_mu)
    # SCOPE-RL multiplies raw densities along an episode (no logs, no clipping): how far
    # the cumulative behaviour density of a whole episode is from float64's range (e^709).
    ep_logp = np.bincount(data.episode, weights=logp_mu + np.log(data.action.std(axis=0) + 1e-6).sum())
    report["scope_rl_episode_log_density"] = {
        "median": float(np.median(ep_logp)),
        "max": float(ep_logp.max()),
        "episodes_over_float64": int((np.abs(ep_logp) > 709).sum()),
        "episodes": len(ep_logp),
    }
    acts = {}
    for n in NAMES:
        a = logged["action"].copy()  # padded steps: the policy "agrees" (weight of no matter)
        a[idx] = policies[n].distribution(data.obs)[0]
        acts[n] = a
    for patched in (False, True):
        t0 = time.perf_counter()
        out = scope_run(logged, acts, scaler, bw, cfg.gamma, patched)
        wall = (time.perf_counter() - t0) / len(NAMES)
        label = "SCOPE-RL" + (" (int cast removed)" if patched else " (as shipped)")
        for est_name in ("tis", "pdis", "sntis", "snpdis"):
            est = {n: float(out[n][est_name]) for n in NAMES}
            ok = all(np.isfinite(v) for v in est.values())
            report["peers"][f"{label} {est_name.upper()}"] = {
                "estimates": est,
                "seconds_per_policy": wall,
                "metrics": metrics(est, truth) if ok else "non-finite estimates",
            }
            print(label, est_name, json.dumps(est), flush=True)

    if args.ours.exists():
        ours = json.loads(args.ours.read_text())
        report["roadworthy"] = {
            "seconds_per_policy": ours["seconds_per_policy"],
            "metrics": ours["metrics"],
        }
    report["unsafe"] = unsafe
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
