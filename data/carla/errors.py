"""Errors of the CARLA readers, and the string helper both the header and the records use."""

from __future__ import annotations

import struct
from pathlib import Path

from roadworthy.data.errors import RoadworthyError

TRUNCATED_HINT = (
    "the recording is truncated or corrupt; copy it again, or record again with "
    "client.start_recorder(path, True) and stop the recorder before copying"
)


class RecorderError(RoadworthyError):
    """A recorder file that cannot be read, with the byte offset and last good frame."""

    def __init__(self, file: str | Path, offset: int, last_frame: int | None, problem: str, hint: str) -> None:
        self.file, self.offset, self.last_frame = Path(file), offset, last_frame
        self.problem, self.hint = problem, hint
        super().__init__(str(self))

    def __str__(self) -> str:
        last = "none" if self.last_frame is None else str(self.last_frame)
        return (
            f"{self.file}: byte {self.offset} (last complete frame: {last}): {self.problem.rstrip('.')}. "
            f"Hint: {self.hint.rstrip('.')}."
        )


_TRUNCATED_HINT = (
    "the recording is truncated or corrupt; copy it again, or record again with "
    "client.start_recorder(path, True) and stop the recorder before copying"
)


def read_string(buf: bytes, pos: int, end: int) -> tuple[str, int] | None:
    if pos + 2 > end:
        return None
    (n,) = struct.unpack_from("<H", buf, pos)
    if pos + 2 + n > end:
        return None
    return buf[pos + 2 : pos + 2 + n].decode("utf-8", errors="replace"), pos + 2 + n
