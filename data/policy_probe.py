"""A first run of an untrusted ONNX policy in a child process, under a memory cap and a time limit.

A 1 kB ONNX file can allocate gigabytes (a ``ConstantOfShape`` with a huge shape) or loop
for days. Before a policy file is used in-process, :func:`probe_in_child` runs it once on a
batch of observations in a spawned child whose address space is capped
(``RLIMIT_AS``) and which is killed past the time limit; either way the caller gets a
:class:`~roadworthy.data.errors.PolicyError` naming the file. Results are cached per file
content, so a file is probed once per process. In-process inference keeps its own time
limit (:meth:`roadworthy.data.policy.OnnxPolicy.distribution`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from roadworthy.data.errors import PolicyError

MEMORY_ENV = "ROADWORTHY_POLICY_MEMORY_MB"
#: Default address-space cap of the probe process (the interpreter and ONNX Runtime take
#: about 200 MB of it).
DEFAULT_MEMORY_MB = 2048
_probed: set[str] = set()


def memory_cap_mb() -> int:
    """``$ROADWORTHY_POLICY_MEMORY_MB``, 2048 by default."""
    try:
        value = int(os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_MB))
    except ValueError:
        value = DEFAULT_MEMORY_MB
    return value if value > 0 else DEFAULT_MEMORY_MB


def _run_child(d: int, rows: int, timeout_s: float) -> None:
    """The child's side: read the model from stdin, run it once, print one JSON line."""
    import json
    import sys

    blob = sys.stdin.buffer.read()
    try:
        import numpy as np
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        session = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
        run_options = ort.RunOptions()
        run_options.log_severity_level = 4
        timer = threading.Timer(timeout_s, lambda: setattr(run_options, "terminate", True))
        timer.daemon = True
        timer.start()
        session.run(None, {"obs": np.zeros((rows, d), dtype=np.float32)}, run_options)
        timer.cancel()
        result = {"kind": "ok", "text": ""}
    except MemoryError:
        result = {"kind": "memory", "text": "out of memory"}
    except Exception as exc:  # ONNX Runtime raises its own types; bad_alloc arrives as one
        text = f"{type(exc).__name__}: {exc}"
        kind = "memory" if "bad_alloc" in text or "allocate" in text.lower() else "error"
        if "terminate flag" in text:
            kind = "time"
        result = {"kind": kind, "text": text[:500]}
    sys.stdout.write(json.dumps(result) + "\n")


def _limit(cap_bytes: int):
    def set_cap() -> None:  # runs in the child between fork and exec
        import resource

        try:
            resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))
        except (ValueError, OSError):  # no RLIMIT_AS here: the time limit still holds
            pass

    return set_cap


def probe_in_child(path: str | Path, blob: bytes, d: int, *, timeout_s: float, rows: int = 64) -> None:
    """Run the model once on ``rows`` zero observations in a capped child process.

    The child is a fresh interpreter (``python -m roadworthy.data.policy_probe``), not a
    fork or a multiprocessing spawn: nothing of the caller's program is re-run in it.

    Raises
    ------
    PolicyError
        When the run needs more memory than the cap, takes longer than ``timeout_s``, or fails.
    """
    import json
    import subprocess
    import sys

    key = hashlib.sha256(blob).hexdigest()
    if key in _probed:
        return
    cap_mb = memory_cap_mb()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
    cmd = [sys.executable, "-m", "roadworthy.data.policy_probe", str(d), str(rows), str(timeout_s)]
    try:
        proc = subprocess.run(
            cmd,
            input=blob,
            capture_output=True,
            timeout=timeout_s + 30,  # the interpreter's own start-up is not the model's time
            env=env,
            preexec_fn=_limit(cap_mb * 1024 * 1024) if os.name == "posix" else None,
        )
        lines = proc.stdout.decode(errors="replace").strip().splitlines()
        got = json.loads(lines[-1]) if lines else None
    except subprocess.TimeoutExpired:
        got = None
        proc = None
    except (json.JSONDecodeError, ValueError):
        got = None
    if got is None:
        code = None if proc is None else proc.returncode
        raise PolicyError(
            path,
            f"a first run on {rows} observations did not finish within {timeout_s:g} s, or its process "
            f"died (exit code {code}; memory cap {cap_mb} MB); the file was not used",
            "check the model for unbounded loops or huge tensors; for a trusted large model raise the "
            f"limits with ROADWORTHY_POLICY_TIMEOUT=SECONDS or {MEMORY_ENV}=MB",
        )
    kind, text = got["kind"], got["text"]
    if kind == "time":
        raise PolicyError(
            path,
            f"inference on a batch of {rows} states took longer than {timeout_s:g} s and was stopped",
            "check the model for unbounded loops, or raise the limit with ROADWORTHY_POLICY_TIMEOUT=SECONDS",
        )
    if kind == "memory":
        raise PolicyError(
            path,
            f"a first run on {rows} observations needs more than the {cap_mb} MB memory cap ({text})",
            f"a driving policy needs far less; for a trusted large model raise {MEMORY_ENV}=MB",
        )
    if kind != "ok":
        raise PolicyError(path, f"a first run on {rows} observations fails ({text})", "check the exported model")
    _probed.add(key)


if __name__ == "__main__":
    import sys

    _run_child(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
