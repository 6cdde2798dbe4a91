"""roadworthy's data layer: driving logs (contract v1), simulators and importers.

The most used entry points are re-exported here; heavy optional dependencies
(highway-env, carla) load only inside :mod:`data.sim` and the CARLA importers.
"""

from data.dataset import LogDataset, scan_logs
from data.errors import LogError, PolicyError, RoadworthyError, UsageError
from data.schema import LogMetadata, arrow_schema
from data.transitions import Episode, Transitions, iter_episodes, iter_transitions
from data.validate import LogSummary, validate_logs
from data.writer import LogWriter, write_log

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
