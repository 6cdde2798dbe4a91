"""roadworthy: is a new driving policy fit for the road? Answers from logged driving alone.

One import name. The layers install under it and import one way::

    roadworthy.data -> roadworthy.density -> roadworthy.evaluator -> roadworthy.dashboards
                                                                  -> roadworthy.api, roadworthy.cli

The public Python API (docs/api.md) is re-exported here; each function returns a typed
result with ``to_json()``::

    import roadworthy

    summary = roadworthy.validate("runs/demo/logs")
    model = roadworthy.fit("runs/demo/logs", out="runs/model", seed=0)
    report = roadworthy.evaluate("runs/demo/logs", ["fast.onnx"], model="runs/model")

Importing ``roadworthy`` (or any layer) loads no heavy dependency: the API module and
torch, carla, streamlit, highway-env and ray load on first use.
"""

from __future__ import annotations

from roadworthy._version import __version__

API = (
    "validate",
    "fit",
    "score",
    "evaluate",
    "gate",
    "collect",
    "rollout",
    "import_carla",
    "carla_info",
    "collect_carla",
    "import_dmv",
    "dmv_summary",
    "import_sgo",
    "sgo_summary",
    "sgo_rates",
    "example_policies",
    "dashboard_inputs",
    "demo",
)

__all__ = ["__version__", *API]


def __getattr__(name: str) -> object:
    # PEP 562: the API (and what it imports) loads on first use, so the layers below
    # can import ``roadworthy._version`` without pulling the whole stack in.
    if name in API:
        from roadworthy import api

        return getattr(api, name)
    raise AttributeError(f"module 'roadworthy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
