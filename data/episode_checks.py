"""The checks of one complete episode: steps from 0 without gaps or repeats, t increasing, done last."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from roadworthy.data.errors import LogError


@dataclass
class Episode:
    """What the validator keeps of an episode while its rows arrive: in-order blocks and counts."""

    file: Path
    blocks: list[list] = field(default_factory=list)  # [first, last, t_first, t_last]
    rows: int = 0
    done_count: int = 0
    done_step: int = -1
    collided: bool = False
    ret: float = 0.0


def check_episode(ep: Episode, name: str) -> int:
    """Raise :class:`LogError` for an episode whose rows break the contract; its last step."""
    b = sorted(ep.blocks)
    if b[0][0] != 0:
        raise LogError(
            ep.file,
            f"the episode's steps start at {b[0][0]}, not 0",
            "number each episode's steps 0, 1, ..., n-1",
            column="step",
            episode_id=name,
            step=b[0][0],
        )
    for prev, nxt in itertools.pairwise(b):
        if nxt[0] <= prev[1]:
            raise LogError(
                ep.file,
                "duplicate (episode_id, step): this step appears more than once in the episode",
                "drop the repeated rows, or give separate drives separate episode_ids",
                column="step",
                episode_id=name,
                step=nxt[0],
            )
        if nxt[0] > prev[1] + 1:
            raise LogError(
                ep.file,
                f"steps are not contiguous: step {prev[1] + 1} is missing (the episode jumps "
                f"from step {prev[1]} to step {nxt[0]})",
                "steps must run 0..n-1 without gaps; split the drive into two episodes where rows are missing",
                column="step",
                episode_id=name,
                step=nxt[0],
            )
        if not nxt[2] > prev[3]:
            raise LogError(
                ep.file,
                f"t does not increase with step (t={nxt[2]!r} s after t={prev[3]!r} s at the step before)",
                "t counts seconds since the episode started and must grow strictly with step",
                column="t",
                episode_id=name,
                step=nxt[0],
            )
    last = b[-1][1]
    if ep.done_count == 0:
        raise LogError(
            ep.file,
            f"done is false on the episode's last row (step {last}); every episode must end with done=true",
            "set done=true on the last row of each episode (terminal=false if it was cut "
            "by a time limit or the end of the log)",
            column="done",
            episode_id=name,
            step=last,
        )
    if ep.done_count > 1 or ep.done_step != last:
        raise LogError(
            ep.file,
            f"done is true on step {ep.done_step}, which is not the episode's last row "
            f"(the episode runs to step {last})",
            "done must be true on exactly one row, the last of the episode",
            column="done",
            episode_id=name,
            step=ep.done_step,
        )
    return last
