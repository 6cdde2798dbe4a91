"""Reading public-record CSV files (DMV, NHTSA) whatever their encoding, with clear errors.

Both sources publish hand-made CSV: UTF-8 or Windows-1252, blank rows, trailing empty
columns, multi-line quoted cells. One reader, so that every importer refuses a missing,
empty, binary or broken file with the same kind of message.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from roadworthy.data.errors import UsageError


@dataclass(frozen=True)
class CsvRows:
    """A CSV file's header, its non-blank rows (with their line numbers) and what was skipped."""

    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]
    encoding: str
    blank_rows: int


def read_csv_rows(path: str | Path, what: str) -> CsvRows:
    """The header and rows of ``path``: UTF-8, else Windows-1252; blank rows left out.

    ``what`` names the kind of file in messages ("DMV report", "NHTSA crash report").
    Raises :class:`UsageError` for a missing, empty, binary or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file", f"check the path of the {what}")
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise UsageError(f"{path}: a binary file, not a CSV {what} (NUL bytes near the start)", "pass the CSV file")
    try:
        text, encoding = raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        # Public files mix in Windows-1252 bytes (non-breaking spaces, curly quotes).
        text, encoding = raw.decode("cp1252", errors="replace"), "windows-1252"
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    blank = 0
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                blank += header is not None
                continue
            if header is None:
                header = cells
                continue
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        problem = f"{path}: row {reader.line_num} is not valid CSV ({exc})"
        raise UsageError(problem, "repair or re-export the file") from None
    if header is None:
        raise UsageError(f"{path}: empty file", f"pass a {what} with a header row")
    return CsvRows(path, header, rows, encoding, blank)
