"""Episode replay page: bird's-eye view of one episode with a time scrubber."""

from __future__ import annotations

import numpy as np
import streamlit as st

from roadworthy.dashboards.episodes import action_pvalues, time_to_collision
from roadworthy.dashboards.figures import replay_frame
from roadworthy.dashboards.geometry import nearby_actors
from roadworthy.dashboards.inputs import DashboardInputs
from roadworthy.dashboards.views import common


@st.cache_data(show_spinner="scoring the episode's actions")
def _pvalues(logs: str, episode_id: str, model_path: str, key: str) -> np.ndarray:
    frame = common.episode_rows(logs, episode_id, key)
    return action_pvalues(common.behavior_model(model_path), frame)


def render(inputs: DashboardInputs) -> None:
    st.header("Episode replay")
    logs = common.pick_logs(inputs, st.sidebar)
    if logs is None:
        return
    key = common.dataset_key(logs)
    eps = common.episode_list(logs, key)
    c1, c2 = st.columns([1, 3])
    only = c1.radio("Episodes", ["all", "with a takeover", "with a collision or off-road"], key="replay_filter")
    sel = eps
    if only == "with a takeover":
        sel = eps[eps["disengagements"] > 0]
    elif only != "all":
        sel = eps[(eps["collisions"] > 0) | (eps["off_road_steps"] > 0)]
    ids = sel["episode_id"].tolist() or eps["episode_id"].tolist()
    wanted = st.session_state.get("replay_episode")
    index = ids.index(wanted) if wanted in ids else 0
    episode_id = c2.selectbox(f"Episode ({len(ids):,})", ids, index=index, key="replay_episode_box")
    frame = common.episode_rows(logs, episode_id, key)
    if frame.empty or frame["x"].isna().all():
        st.info("This episode has no x/y pose, so it cannot be drawn; its rows are below.")
        st.dataframe(frame.drop(columns=["obs", "action"]), hide_index=True)
        return
    meta = common.metadata(logs)
    flagged = None
    pvals = None
    if inputs.model:
        model = common.behavior_model(inputs.model)
        pvals = _pvalues(logs, episode_id, inputs.model, key)
        flagged = pvals <= model.config.alpha
    step = st.slider("Step (time scrubber)", 0, len(frame) - 1, 0, key="replay_step")
    row = frame.iloc[step]
    obs = np.asarray(row["obs"], dtype=float)
    actors = nearby_actors(obs, meta.obs_names, float(row["x"]), float(row["y"]), float(row["yaw"] or 0.0))
    fig = replay_frame(
        common.roads(logs, str(row["map_name"])),
        frame,
        step,
        actors,
        flagged,
        title=f"{episode_id}, step {step} (t = {row['t']:.1f} s)",
    )
    st.plotly_chart(fig, key="replay_chart")
    st.caption(common.FLIP_NOTE + " Nearby actors are placed from the features (what the log knows about them).")
    ttc = time_to_collision(obs[None], meta.obs_names)[0]
    m = st.columns(5)
    m[0].metric("driver", str(row["source"]))
    m[1].metric("speed (m/s)", "-" if row["speed"] is None or np.isnan(row["speed"]) else f"{row['speed']:.1f}")
    m[2].metric("time to collision (s)", "-" if np.isnan(ttc) else f"{ttc:.1f}")
    m[3].metric("reward", f"{row['reward']:.3f}")
    m[4].metric("action p-value", "-" if pvals is None else f"{pvals[step]:.3g}")
    if flagged is not None:
        steps = frame["step"].to_numpy()[flagged]
        st.write(f"Flagged steps (logged action out of distribution): {', '.join(map(str, steps)) or 'none'}")
    else:
        st.caption(
            "Start the dashboard with a behaviour model (from `roadworthy fit`) to highlight out-of-distribution steps."
        )
    events = frame[frame["disengagement"] | frame["collision"] | frame["off_road"]]
    if len(events):
        st.write("Events:")
        st.dataframe(events[["step", "t", "source", "disengagement", "collision", "off_road"]], hide_index=True)
