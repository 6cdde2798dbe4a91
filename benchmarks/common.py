"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import resource


def peak_rss_mib() -> float:
    """Peak resident memory of this process since it started, MiB.

    Reads VmHWM from /proc (reset at exec), not ru_maxrss, which on Linux carries
    the parent's resident memory over from the fork that started this process.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
