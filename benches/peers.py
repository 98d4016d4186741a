"""The peer libraries that benches/compare.py (and benches/test_bench_*.py) time
ferronn against, each optional: PyTorch, JAX (jit, optax) and onnxruntime.

Every builder here returns a callable that runs one timed unit (an epoch, or a block
of predict calls) and returns its own timing, as compare.interleaved expects, or None
when its library is not installed; `missing()` says which were absent so the caller
can print one "skipped: <pkg> not installed" line each.

Threads. torch and onnxruntime take a thread count directly. JAX (XLA:CPU) has no
"use n threads" setting: XLA_FLAGS must be set before jax is first imported, and the
only documented switch is on/off for the multi-threaded Eigen kernels, so
`load_jax(1)` sets ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``
and `load_jax(n > 1)` leaves XLA's default, one thread per core the process may use
(`os.sched_getaffinity`); `jax_threads_note()` states which applied.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np

_MISSING: list[str] = []
_JAX_NOTE = ["not loaded"]


def missing() -> list[str]:
    """The optional packages that were asked for and not found, in order, once each."""
    return list(dict.fromkeys(_MISSING))


def versions() -> str:
    """The optional peers' versions, for those already imported."""
    import sys

    names = ("torch", "jax", "jaxlib", "optax", "onnxruntime", "onnx")
    return "   ".join(f"{m} {getattr(sys.modules[m], '__version__', '?')}" if sys.modules.get(m) is not None
                       else f"{m} not loaded" for m in names)


def _try_import(name: str) -> Any:
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        _MISSING.append(name)
        return None


# -- PyTorch ---------------------------------------------------------------------

torch = _try_import("torch")


def torch_mlp(dims: list[int]) -> Any:
    """Linear+ReLU layers of `dims`, no activation after the logits (seeded)."""
    torch.manual_seed(0)
    layers: list = []
    for i in range(len(dims) - 1):
        layers += [torch.nn.Linear(dims[i], dims[i + 1]), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def torch_adam_epoch(tmodel: Any, Xt: Any, yt: Any, bs: int) -> Callable[[], float]:
    """A timed epoch of an idiomatic PyTorch loop (Adam 1e-3, cross-entropy, shuffled
    mini-batches) over ``tmodel``: the peer every training comparison uses."""
    import torch.nn.functional as F

    opt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    tmodel.train()
    n = len(Xt)

    def epoch() -> float:
        t = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(tmodel(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        return time.perf_counter() - t

    return epoch


# -- JAX ---------------------------------------------------------------------------

def load_jax(threads: int) -> Optional[Any]:
    """Imports jax (setting XLA_FLAGS first, see the module docstring); None if absent."""
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    jax = _try_import("jax")
    if jax is None or _try_import("optax") is None:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _JAX_NOTE[0] = (f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}" if threads == 1 else
                    f"XLA default, one thread per usable core ({cores}); XLA_FLAGS="
                    f"{os.environ.get('XLA_FLAGS', '(unset)')!r}")
    return jax


def jax_threads_note() -> str:
    return _JAX_NOTE[0]


def _jax_mlp(jax: Any, dims: list[int]) -> list[tuple[Any, Any]]:
    """He-uniform kernels and zero biases (the same family as the other libraries)."""
    key = jax.random.PRNGKey(0)
    params = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        key, sub = jax.random.split(key)
        bound = float(np.sqrt(6.0 / fan_in))
        w = jax.random.uniform(sub, (fan_in, fan_out), minval=-bound, maxval=bound, dtype=np.float32)
        params.append((w, jax.numpy.zeros((fan_out,), np.float32)))
    return params


def _jax_step_fn(jax: Any, opt: Any) -> Callable:
    """(params, opt_state, x, y) -> (params, opt_state, loss): one Adam step, not jitted."""
    import optax

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        h = x
        for w, b in params[:-1]:
            h = jax.nn.relu(h @ w + b)
        w, b = params[-1]
        return optax.softmax_cross_entropy_with_integer_labels(h @ w + b, y).mean()

    def step(params: Any, state: Any, x: Any, y: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


class JaxMLP:
    """A JAX MLP trained with optax Adam(1e-3) on (X, y), held on the device: `step` is
    one jitted step on a given batch, `loop_epoch` calls it per shuffled batch from
    Python, `scan_epoch` is one jitted `lax.scan` over the whole shuffled epoch. Every
    method waits for its result. The epochs drop a last partial batch."""

    def __init__(self, jax: Any, dims: list[int], X: np.ndarray, y: np.ndarray, bs: int) -> None:
        import optax

        self.jax, self.X, self.y, self.bs = jax, X, y.astype(np.int32), bs
        self.nb = len(X) // bs
        opt = optax.adam(1e-3)
        step = _jax_step_fn(jax, opt)
        self._step = jax.jit(step)
        self.params = _jax_mlp(jax, dims)
        self.state = opt.init(self.params)
        self._rng = np.random.default_rng(0)
        Xd, yd, nb = jax.device_put(X), jax.device_put(self.y), self.nb

        def scan(params: Any, state: Any, perm: Any) -> Any:
            xb = Xd[perm].reshape(nb, bs, X.shape[1])
            yb = yd[perm].reshape(nb, bs)

            def body(carry: Any, batch: Any) -> Any:
                p, s, loss = step(carry[0], carry[1], batch[0], batch[1])
                return (p, s), loss

            (params, state), losses = jax.lax.scan(body, (params, state), (xb, yb))
            return params, state, losses

        def forward(params: Any, x: Any) -> Any:
            for w, b in params[:-1]:
                x = jax.nn.relu(x @ w + b)
            return x @ params[-1][0] + params[-1][1]

        self._scan, self.forward = jax.jit(scan), jax.jit(forward)

    def step(self, x: np.ndarray, y: np.ndarray) -> None:
        self.params, self.state, _ = self._step(self.params, self.state, x, y)
        self.jax.block_until_ready(self.params)

    def loop_epoch(self) -> None:
        perm = self._rng.permutation(len(self.X))
        params, state = self.params, self.state
        for i in range(0, self.nb * self.bs, self.bs):
            idx = perm[i:i + self.bs]
            params, state, _ = self._step(params, state, self.X[idx], self.y[idx])
        self.params, self.state = self.jax.block_until_ready((params, state))

    def scan_epoch(self) -> None:
        perm = self._rng.permutation(len(self.X))[:self.nb * self.bs].astype(np.int32)
        params, state, _ = self._scan(self.params, self.state, perm)
        self.params, self.state = self.jax.block_until_ready((params, state))

    def predict(self, x: Any) -> Any:
        return self.forward(self.params, x).block_until_ready()


def _timed(f: Callable[[], None]) -> Callable[[], float]:
    def run() -> float:
        t = time.perf_counter()
        f()
        return time.perf_counter() - t
    return run


def jax_epochs(jax: Optional[Any], dims: list[int], X: np.ndarray, y: np.ndarray,
               bs: int) -> tuple[Optional[Callable[[], float]], Optional[Callable[[], float]]]:
    """Two timed JAX epochs (each on its own model): a Python loop over a jitted step,
    and one jitted `lax.scan` over the epoch; (None, None) without JAX."""
    if jax is None:
        return None, None
    return _timed(JaxMLP(jax, dims, X, y, bs).loop_epoch), _timed(JaxMLP(jax, dims, X, y, bs).scan_epoch)


# -- onnxruntime --------------------------------------------------------------------

def onnx_session(model: Any, threads: int) -> Optional[Any]:
    """An onnxruntime session on `model.export_onnx`'s graph with `threads` intra-op
    threads (one inter-op thread, sequential execution); None if onnxruntime or onnx
    (needed for the export) is missing."""
    ort = _try_import("onnxruntime")
    if ort is None or _try_import("onnx") is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        model.export_onnx(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_latency_block(sess: Optional[Any], x: np.ndarray, block: int) -> Optional[Callable[[], list[int]]]:
    """`block` single calls of `sess`, each timed in ns (None without a session)."""
    if sess is None:
        return None
    clock, feed = time.perf_counter_ns, {"input": x}

    def run() -> list[int]:
        out = []
        for _ in range(block):
            t = clock()
            sess.run(None, feed)
            out.append(clock() - t)
        return out

    return run
