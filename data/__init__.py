"""roadworthy's data layer: driving logs (contract v1), simulators and importers.

The most used entry points are re-exported here; heavy optional dependencies
(highway-env, carla) load only inside :mod:`roadworthy.data.sim` and the CARLA importers.
"""

from roadworthy.data.dataset import LogDataset, scan_logs
from roadworthy.data.errors import LogError, PolicyError, RoadworthyError, UsageError
from roadworthy.data.schema import LogMetadata, arrow_schema
from roadworthy.data.transitions import Episode, Transitions, iter_episodes, iter_transitions
from roadworthy.data.validate import LogSummary, validate_logs
from roadworthy.data.writer import LogWriter, write_log

__all__ = [
    "Episode",
    "LogDataset",
    "LogError",
    "LogMetadata",
    "LogSummary",
    "LogWriter",
    "PolicyError",
    "RoadworthyError",
    "Transitions",
    "UsageError",
    "arrow_schema",
    "iter_episodes",
    "iter_transitions",
    "scan_logs",
    "validate_logs",
    "write_log",
]
