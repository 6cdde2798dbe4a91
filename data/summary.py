"""The summary of a valid driving log: counts, sources, maps, returns."""

from __future__ import annotations

from dataclasses import dataclass

from roadworthy.data.schema import LogMetadata


@dataclass
class LogSummary:
    """What :func:`validate_logs` found in a valid dataset."""

    source: str
    files: int
    rows: int
    episodes: int
    metadata: LogMetadata
    columns: list[str]
    rows_by_source: dict[str, int]
    episodes_by_start_source: dict[str, int]
    disengagements: int
    collision_rows: int
    collision_episodes: int
    off_road_rows: int
    terminal_episodes: int
    maps: dict[str, int]
    scenarios: dict[str, int]
    behavior_logp_rows: int
    return_mean: float
    return_min: float
    return_max: float
    skipped_rows: int = 0

    @property
    def duration_s(self) -> float:
        """Logged driving time, s."""
        return self.rows * self.metadata.dt

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "source": self.source,
            "files": self.files,
            "rows": self.rows,
            "episodes": self.episodes,
            "duration_s": self.duration_s,
            "mean_episode_steps": self.rows / max(self.episodes, 1),
            "metadata": self.metadata.to_dict(),
            "columns": self.columns,
            "rows_by_source": self.rows_by_source,
            "episodes_by_start_source": self.episodes_by_start_source,
            "disengagements": self.disengagements,
            "collision_rows": self.collision_rows,
            "collision_episodes": self.collision_episodes,
            "off_road_rows": self.off_road_rows,
            "terminal_episodes": self.terminal_episodes,
            "truncated_episodes": self.episodes - self.terminal_episodes,
            "maps": self.maps,
            "scenarios": self.scenarios,
            "behavior_logp_rows": self.behavior_logp_rows,
            "episode_return": {"mean": self.return_mean, "min": self.return_min, "max": self.return_max},
            "skipped_rows": self.skipped_rows,
        }
