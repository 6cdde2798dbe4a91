"""Candidate policy files (contract section 2): ONNX models, loaded without running code.

A policy maps ``obs`` (float32 ``[B, D]``) to either ``action`` (deterministic) or
``mean`` and ``log_std`` (diagonal Gaussian), float32 ``[B, A]``. Its
``metadata_props`` key ``roadworthy`` holds JSON ``{"name", "obs_names",
"action_names"}``, which must match the log it is run against.

Safety: the file is parsed as an ONNX protobuf (never unpickled) and run by ONNX
Runtime's CPU provider from the bytes in memory, so nothing beside the file is
read. Models that keep weights in external data files, or use operators outside
the standard ONNX domains (custom-op libraries), are refused.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.data.errors import PolicyError

if TYPE_CHECKING:
    import onnx

#: Operator domains ONNX Runtime implements itself (no custom-op library needed).
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
METADATA_KEY = "roadworthy"
MAX_POLICY_BYTES = 1 << 30

_EXPORT_HINT = (
    "export the policy to ONNX from PyTorch with torch.onnx.export(module, (example_obs,), "
    'input_names=["obs"], output_names=["action"], dynamic_shapes={"obs": {0: '
    'torch.export.Dim("batch", min=1)}}, dynamo=True) and add the roadworthy metadata '
    "(see contracts.md section 2 and data.sim.policies.export_policy)"
)


@dataclass(frozen=True)
class PolicyInfo:
    """What a policy file declares about itself."""

    name: str
    obs_names: tuple[str, ...]
    action_names: tuple[str, ...]
    stochastic: bool
    path: Path


#: Seconds one inference call may take (a batch of up to 65,536 states), overridable.
TIME_LIMIT_ENV = "ROADWORTHY_POLICY_TIMEOUT"


def time_limit_s() -> float:
    """The inference time limit: ``$ROADWORTHY_POLICY_TIMEOUT`` seconds, 120 by default."""
    try:
        value = float(os.environ.get(TIME_LIMIT_ENV, "120"))
    except ValueError:
        value = 120.0
    return value if value > 0 else 120.0


def check_finite_outputs(path, obs: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    """Raise :class:`PolicyError` when a policy output is NaN or infinite for some state."""
    for name, values in outputs.items():
        if values is None:
            continue
        values = np.asarray(values)
        bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise PolicyError(
                path,
                f"output '{name}' is NaN or infinite for {int(bad.sum())} of {len(bad)} states "
                f"(first: obs {np.array2string(np.asarray(obs)[i], precision=3, threshold=8)})",
                "a policy must give finite actions for every state; fix the model (NaN weights, "
                "a division by zero, an unbounded log_std)",
            )


def _sniff_foreign_format(head: bytes) -> str | None:
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (a torch.save .pt/.pth checkpoint or a torch.export .pt2 package)"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        return "a Python pickle"
    return None


def read_policy_model(path: str | Path) -> tuple[onnx.ModelProto, bytes]:
    """Parse and vet an ONNX policy file; return ``(onnx.ModelProto, bytes)``.

    Raises
    ------
    PolicyError
        For a missing, foreign-format, external-data or custom-op file.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise PolicyError(path, "no such policy file", "check the path; policies are .onnx files")
    size = path.stat().st_size
    if size > MAX_POLICY_BYTES:
        raise PolicyError(path, f"file is {size} bytes, over the 1 GiB limit for a policy", _EXPORT_HINT)
    blob = path.read_bytes()
    foreign = _sniff_foreign_format(blob[:8])
    if foreign:
        raise PolicyError(
            path,
            f"this is {foreign}, not an ONNX model; such files can run code when loaded and are never unpickled here",
            _EXPORT_HINT,
        )
    try:
        model = onnx.load_model_from_string(blob)
    except Exception as exc:  # the protobuf parser raises several types
        raise PolicyError(path, f"not a readable ONNX model ({type(exc).__name__}: {exc})", _EXPORT_HINT) from None
    if len(model.graph.node) == 0 and len(model.graph.output) == 0:
        raise PolicyError(path, "the file parses as an empty ONNX model (is it really ONNX?)", _EXPORT_HINT)
    external = [
        t.name or "(unnamed)"
        for t in _all_tensors(model)
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data) > 0
    ]
    if external:
        raise PolicyError(
            path,
            f"the model keeps tensor(s) {', '.join(external[:3])} in external data files; "
            "external data is refused so that loading reads nothing outside the policy file",
            "save the model as one file: onnx.save_model(model, path, save_as_external_data=False)",
        )
    domains = {op.domain for op in model.opset_import} | {n.domain for n in _all_nodes(model)}
    domains -= {f.domain for f in model.functions}
    custom = sorted(d for d in domains if d not in STANDARD_DOMAINS)
    if custom:
        raise PolicyError(
            path,
            f"the model uses operator domain(s) {', '.join(custom)}, which need a custom-op "
            "library; custom-op libraries are native code and are never loaded",
            "export the policy with standard ONNX operators only",
        )
    return model, blob


def _subgraphs(attr):
    return [attr.g, *attr.graphs] if attr.HasField("g") else list(attr.graphs)


def _walk(model):
    """(nodes, initializer tensors) of the main graph, every subgraph and every function."""
    stack = [(list(model.graph.node), _graph_tensors(model.graph))]
    stack += [(list(fn.node), []) for fn in model.functions]
    while stack:
        nodes, tensors = stack.pop()
        yield nodes, tensors
        for node in nodes:
            for attr in node.attribute:
                for sub in _subgraphs(attr):
                    stack.append((list(sub.node), _graph_tensors(sub)))


def _graph_tensors(graph) -> list:
    out = list(graph.initializer)
    for sparse in graph.sparse_initializer:
        out += [sparse.values, sparse.indices]
    return out


def _all_nodes(model):
    for nodes, _ in _walk(model):
        yield from nodes


def _all_tensors(model):
    """Every tensor a model holds: initializers, Constant and other tensor attributes, in the
    main graph, in every subgraph and in every function (where external data could hide)."""
    for nodes, tensors in _walk(model):
        yield from tensors
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices


def _read_info(model, path: Path) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise PolicyError(
            path,
            f"the model has no '{METADATA_KEY}' metadata_props entry",
            'add JSON {"name": ..., "obs_names": [...], "action_names": [...]} under '
            f"metadata_props key '{METADATA_KEY}' (data.sim.policies.export_policy does this)",
        )
    try:
        meta = json.loads(props[METADATA_KEY])
        name = str(meta["name"])
        obs_names = tuple(str(s) for s in meta["obs_names"])
        action_names = tuple(str(s) for s in meta["action_names"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PolicyError(
            path,
            f"metadata '{METADATA_KEY}' is not JSON with name, obs_names and action_names ({exc})",
            'write it as {"name": "my-policy", "obs_names": [...], "action_names": [...]}',
        ) from None
    return name, obs_names, action_names


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    if len(a) != len(b):
        return f"{len(a)} names against {len(b)}"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            return f"entry {i} is '{x}' in the policy but '{y}' in the log"
    return "same names"


def check_names(
    path: Path,
    name: str,
    p_obs: Sequence[str],
    p_act: Sequence[str],
    obs_names: Sequence[str] | None,
    action_names: Sequence[str] | None,
) -> None:
    """Refuse a policy (any format) whose declared names differ from the log's."""
    if obs_names is not None and tuple(obs_names) != tuple(p_obs):
        raise PolicyError(
            path,
            f"policy '{name}' expects different observation features than the log "
            f"({_first_difference(p_obs, tuple(obs_names))})",
            "run the policy on logs with the features it was trained on, or re-export it with the log's obs_names",
        )
    if action_names is not None and tuple(action_names) != tuple(p_act):
        raise PolicyError(
            path,
            f"policy '{name}' outputs different actions than the log records "
            f"({_first_difference(p_act, tuple(action_names))})",
            "re-export the policy with the log's action_names, in the same order",
        )


def probe(policy) -> None:
    """Run a loaded policy (any format) on a batch of 2 zeros and check its output shapes.

    Raises
    ------
    PolicyError
        When the policy fails or its outputs are not [B, A].
    """
    info = policy.info
    d, a = len(info.obs_names), len(info.action_names)
    try:
        out = policy.distribution(np.zeros((2, d), dtype=np.float32))
    except PolicyError:
        raise
    except Exception as exc:  # runtimes and user code raise many types
        raise PolicyError(
            info.path, f"the policy fails on a batch of 2 observations ({exc})", "it must map float32 [B, D] to [B, A]"
        ) from None
    for arr in out:
        if arr is not None and arr.shape != (2, a):
            raise PolicyError(
                info.path,
                f"on a batch of 2 observations the model returned shape {arr.shape}, expected (2, {a})",
                "the outputs must be float32 [B, A] with the batch dimension B dynamic",
            )


class OnnxPolicy:
    """A policy file loaded with ONNX Runtime on the CPU provider.

    Use :meth:`load`; the constructor is internal.
    """

    def __init__(self, info: PolicyInfo, session) -> None:
        self.info = info
        self._session = session
        self._outputs = ["mean", "log_std"] if info.stochastic else ["action"]

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        obs_names: Sequence[str] | None = None,
        action_names: Sequence[str] | None = None,
    ) -> OnnxPolicy:
        """Load and check a policy file.

        Parameters
        ----------
        path : str or Path
            The ``.onnx`` file.
        obs_names, action_names : sequence of str, optional
            The log's feature and action names; the policy's must equal them.

        Raises
        ------
        PolicyError
            When the file is unsafe, malformed, or does not match the names.
        """
        import onnxruntime as ort

        path = Path(path)
        model, blob = read_policy_model(path)
        name, p_obs, p_act = _read_info(model, path)
        check_names(path, name, p_obs, p_act, obs_names, action_names)
        inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        outputs = [o.name for o in model.graph.output]
        if inputs != ["obs"]:
            raise PolicyError(path, f"the model's inputs are {inputs}, expected exactly ['obs']", _EXPORT_HINT)
        if "action" in outputs:
            stochastic = False
        elif {"mean", "log_std"} <= set(outputs):
            stochastic = True
        else:
            raise PolicyError(
                path,
                f"the model's outputs are {outputs}; expected 'action', or 'mean' and 'log_std'",
                _EXPORT_HINT,
            )
        from roadworthy.data.policy_probe import probe_in_child

        probe_in_child(path, blob, len(p_obs), timeout_s=time_limit_s())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4  # failures reach the user as PolicyError paragraphs
        try:
            session = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise PolicyError(path, f"ONNX Runtime cannot load the model ({exc})", _EXPORT_HINT) from None
        policy = cls(PolicyInfo(name, p_obs, p_act, stochastic, path), session)
        probe(policy)
        return policy

    @property
    def name(self) -> str:
        """The policy's declared name."""
        return self.info.name

    @property
    def stochastic(self) -> bool:
        """True for a Gaussian policy."""
        return self.info.stochastic

    def distribution(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean action and log standard deviation (``None`` when deterministic).

        Parameters
        ----------
        obs : numpy.ndarray of shape (B, D)
        """
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        out = self._run({"obs": obs}, len(obs))
        check_finite_outputs(self.info.path, obs, dict(zip(self._outputs, out, strict=True)))
        if self.stochastic:
            return out[0], out[1]
        return out[0], None

    def _run(self, feed: dict, rows: int) -> list[np.ndarray]:
        """One inference, stopped after :func:`time_limit_s` (a 1 kB model can hold an endless Loop)."""
        import onnxruntime as ort

        limit = time_limit_s()
        options = ort.RunOptions()
        options.log_severity_level = 4  # the stop is reported as a PolicyError, not as a runtime log line
        timer = threading.Timer(limit, lambda: setattr(options, "terminate", True))
        timer.daemon = True
        timer.start()
        try:
            return self._session.run(self._outputs, feed, options)
        except Exception as exc:  # ONNX Runtime raises its own types
            if options.terminate:
                raise PolicyError(
                    self.info.path,
                    f"inference on a batch of {rows} states took longer than {limit:g} s and was stopped",
                    f"check the model for unbounded loops, or raise the limit with {TIME_LIMIT_ENV}=SECONDS",
                ) from None
            raise PolicyError(self.info.path, f"inference failed ({type(exc).__name__}: {exc})", _EXPORT_HINT) from None
        finally:
            timer.cancel()

    def act(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Actions for a batch: a sample when stochastic and ``rng`` is given, else the mean."""
        mean, log_std = self.distribution(obs)
        if log_std is None or rng is None:
            return mean
        return mean + np.exp(log_std) * rng.standard_normal(mean.shape).astype(np.float32)

    def log_prob(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Log-density of ``action`` under a Gaussian policy, per row.

        Raises
        ------
        ValueError
            For a deterministic policy, which has no density.
        """
        mean, log_std = self.distribution(obs)
        if log_std is None:
            raise ValueError(f"policy '{self.name}' is deterministic and has no density")
        z = (np.asarray(action, dtype=np.float64) - mean) / np.exp(log_std)
        return (-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi)).sum(axis=1)
