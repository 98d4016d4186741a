"""Set-up of the pytest-benchmark suite (benches/test_bench_*.py):

    python -m pytest benches --benchmark-only

The thread count comes from FERRONN_BENCH_THREADS (default 2) and is given to every
library before any test runs: ferronn, torch, numpy's BLAS (with threadpoolctl) and,
as far as XLA allows, JAX (benches/peers.py says what that means). The peers are
optional: each case that needs one skips with "<pkg> not installed". Without
pytest-benchmark itself nothing here is collected.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # peers.py, beside this file

import peers  # noqa: E402

try:
    import pytest_benchmark  # noqa: F401 (only whether it is there)
except ImportError:
    collect_ignore_glob = ["test_bench_*.py"]

THREADS = int(os.environ.get("FERRONN_BENCH_THREADS", "2"))
SETTINGS: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    import ferronn as fn

    fn.set_num_threads(THREADS)
    if peers.torch is not None:
        peers.torch.set_num_threads(THREADS)
    try:
        from threadpoolctl import threadpool_limits
        SETTINGS["blas"] = threadpool_limits(limits=THREADS, user_api="blas")  # kept alive all session
    except ImportError:
        pass
    SETTINGS["jax"] = peers.load_jax(THREADS)  # before anything else imports jax


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"ferronn benchmarks: {THREADS} threads per library (FERRONN_BENCH_THREADS); "
             f"jax: {peers.jax_threads_note()}"]
    if "pytest_benchmark" not in sys.modules:
        lines.append("skipped: pytest-benchmark not installed (pip install pytest-benchmark)")
    if "threadpoolctl" not in sys.modules:
        lines.append("numpy's BLAS threads are not pinned: threadpoolctl not installed")
    return lines


def need(pkg: str) -> Any:
    """The peer module `pkg`, or a skip of this case saying it is not installed."""
    if pkg == "jax":
        if SETTINGS.get("jax") is None:
            pytest.skip("skipped: jax (or optax) not installed")
        return SETTINGS["jax"]
    return pytest.importorskip(pkg, reason=f"skipped: {pkg} not installed")


@pytest.fixture(scope="session")
def data() -> tuple[np.ndarray, np.ndarray]:
    """8192 random samples of 784 features and 10 classes, the same for every library."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal((8192, 784), dtype=np.float32),
            rng.integers(0, 10, size=8192, dtype=np.int64))


def ferronn_mlp(dims: list[int]) -> Any:
    """784-256-128-10-style ReLU MLP, Adam(1e-3), cross-entropy, seeded."""
    import ferronn as fn

    model = fn.Sequential([fn.Dense(d, activation="relu") for d in dims[1:-1]] + [fn.Dense(dims[-1])])
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    model.build(dims[0], seed=0)
    return model
