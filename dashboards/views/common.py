"""Cached loaders shared by the pages. Every input is an argument, so caches never go stale."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from roadworthy.dashboards import aggregates, episodes
from roadworthy.dashboards.inputs import DashboardInputs, read_json

if TYPE_CHECKING:
    import pandas as pd

    from roadworthy.data.schema import LogMetadata
    from roadworthy.density.behavior import BehaviorModel


@st.cache_data(show_spinner="aggregating the log per cell (once per dataset and cell size)")
def cells(logs: str, cell: float, key: str, engine: str = "local", address: str | None = None) -> pd.DataFrame:
    """Per-cell aggregates; ``key`` (the dataset's fingerprint) invalidates the cache."""
    del key
    return aggregates.cell_aggregates(logs, cell, engine=engine, address=address)


@st.cache_data(show_spinner="listing episodes")
def episode_list(logs: str, key: str) -> pd.DataFrame:
    del key
    return episodes.episode_list(logs)


@st.cache_data(show_spinner=False)
def episode_rows(logs: str, episode_id: str, key: str) -> pd.DataFrame:
    del key
    return episodes.episode_rows(logs, episode_id)


@st.cache_data(show_spinner=False)
def roads(logs: str, map_name: str) -> pd.DataFrame | None:
    from roadworthy.dashboards.geometry import load_roads

    return load_roads(logs, map_name)


@st.cache_data(show_spinner=False)
def json_file(path: str | None) -> dict | None:
    return read_json(path)


@st.cache_resource(show_spinner="loading the behaviour model")
def behavior_model(path: str) -> BehaviorModel:
    from roadworthy.density.behavior import BehaviorModel

    return BehaviorModel.load(path)


@st.cache_data(show_spinner=False)
def metadata(logs: str) -> LogMetadata:
    from roadworthy.data.dataset import scan_logs

    return scan_logs(logs).metadata


def dataset_key(logs: str) -> str:
    return aggregates.dataset_key(logs)


def pick_logs(inputs: DashboardInputs, where) -> str | None:
    """The dataset to show (a select box when several were given)."""
    if not inputs.logs:
        where.warning("No driving log given: start with `roadworthy dashboard LOGS`.")
        return None
    if len(inputs.logs) == 1:
        return inputs.logs[0]
    return where.selectbox("Driving log", inputs.logs, key="dataset")


FLIP_NOTE = (
    "Coordinates are metres in the log's own map frame, which is left-handed (CARLA: x east, y south; "
    "the simulator: y to the right of travel); drawings flip y so that the map is not mirrored."
)
