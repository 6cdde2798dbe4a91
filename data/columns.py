"""Column helpers of the readers: dense episode codes and fixed-width list columns as arrays."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class EpisodeRegistry:
    """Maps episode_id strings to dense integer codes, across batches and files."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str] = []

    def encode(self, column: pa.Array) -> np.ndarray:
        """Integer code of every row's episode_id (the column must have no nulls)."""
        arr = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
        lut = np.empty(len(arr.dictionary), dtype=np.int64)
        for i, name in enumerate(arr.dictionary.to_pylist()):
            code = self.codes.get(name)
            if code is None:
                code = self.codes[name] = len(self.names)
                self.names.append(name)
            lut[i] = code
        return lut[arr.indices.to_numpy(zero_copy_only=False)]


def list_values(column: pa.Array | pa.ChunkedArray, width: int) -> tuple[np.ndarray | None, int | None]:
    """Values of a list<float32> column as ``(rows, width)``, or the first bad-length row."""
    if isinstance(column, pa.ChunkedArray):  # a Table's column (Ray hands batches as tables)
        column = column.combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width), None
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != width)
    if bad.size:
        return None, int(bad[0])
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width), None
