"""Speed of `roadworthy import sgo` on the largest shared release (ADS, August 2024; 2.0 MB).

Runs the command in a fresh process (interpreter start-up and imports included) and the
import function in this process, best of three each, and, in the same run, the peer: pyarrow's
CSV reader parsing the same file (parsing only; no versions, merging or normalising). The
ratio to the peer is the figure to compare across machines. Writes ``benchmarks/results/sgo.json``.

Usage: ``python benchmarks/bench_sgo.py``
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SGO = HERE.parent.parent / "shared" / "data" / "sgo"
RELEASES = ("ADS-2023-01", "ADS-2024-08", "ADAS-2023-01")
FILES = {
    "ADS-2024-08": SGO / "SGO-2021-01_Incident_Reports_ADS-2024-08.csv",
    "all three": [SGO / f"SGO-2021-01_Incident_Reports_{n}.csv" for n in RELEASES],
}


def best(fn, n: int = 3) -> float:
    times = []
    for k in range(n):
        t0 = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    import pyarrow.csv as pacsv

    from roadworthy.data.sgo.importer import import_sgo

    exe = shutil.which("roadworthy") or str(Path(sys.executable).parent / "roadworthy")
    largest = FILES["ADS-2024-08"]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cli = best(lambda k: subprocess.run(
            [exe, "import", "sgo", str(largest), "--out", f"{tmp}/cli{k}"], check=True, capture_output=True
        ))  # fmt: skip
        result: dict = {}
        inproc = best(lambda k: result.update(import_sgo([largest], f"{tmp}/api{k}")))
        peer = best(lambda k: pacsv.read_csv(largest))
        every = best(lambda k: import_sgo(FILES["all three"], f"{tmp}/all{k}"))
        out = {
            "benchmark": "roadworthy import sgo, the ADS August 2024 release (largest shared file)",
            "bytes": largest.stat().st_size,
            "rows": result["rows"],
            "reports": result["reports"],
            "incidents": result["incidents"],
            "seconds_command_best_of_3": cli,
            "seconds_in_process_best_of_3": inproc,
            "rows_per_second_in_process": result["rows"] / inproc,
            "peer_pyarrow_csv_parse_seconds_best_of_3": peer,
            "ratio_import_to_pyarrow_parse": inproc / peer,
            "seconds_all_three_files_in_process": every,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "date": time.strftime("%Y-%m-%d"),
        }
    (HERE / "results" / "sgo.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
