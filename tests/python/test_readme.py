"""The README's ```python blocks run as written.

Each block runs in a temporary working directory (the example saves a model file), in
one namespace shared in README order, so a later block may use names an earlier one
defined. What a block leaves to the reader is provided here rather than written into
the README:

- ``my_batches``, the custom loop's batches: two batches of the digits;
- ``X``, ``y`` for the Dask search: 300 digits;
- ``distributed.Client``: the README connects to ``tcp://scheduler:8786``; here the
  address is ignored and the client gets an in-process cluster of one single-threaded
  worker (tests/python/test_dask_search.py covers a real two-process cluster).

The ```bash blocks are not run: CI runs the test command itself (.ci/run).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import ferronn as fn

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_blocks():
    blocks = python_blocks()
    assert len(blocks) >= 2
    assert any("model.fit(" in b for b in blocks) and any("GridSearchCV" in b for b in blocks)


@pytest.fixture
def local_dask_client(monkeypatch):
    """Replace ``distributed.Client`` by one that ignores the scheduler address."""
    distributed = pytest.importorskip("distributed")
    real_client = distributed.Client
    made = []

    def client(address=None, **kwargs):
        made.append(real_client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None))
        return made[-1]

    monkeypatch.setattr(distributed, "Client", client)
    yield
    for c in made:
        c.close()


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch, local_dask_client):
    monkeypatch.chdir(tmp_path)
    X, y = fn.datasets.digits()
    namespace = {
        "__name__": "readme",
        "my_batches": [(X[:32], y[:32]), (X[32:64], y[32:64])],
        "X": X[:300],
        "y": y[:300],
    }
    for i, block in enumerate(python_blocks()):
        with warnings.catch_warnings():
            # the Dask search fits 200 epochs at most, on purpose not to convergence
            warnings.simplefilter("ignore", category=Warning)
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)

    # What the example's comments claim.
    assert namespace["acc"] > 0.9                                       # "~0.97 accuracy"
    np.testing.assert_array_equal(namespace["same"].predict(namespace["Xte"]), namespace["labels"])
    np.testing.assert_allclose(namespace["proba"].sum(axis=1), 1.0, rtol=1e-5)
    assert (tmp_path / "digits.safetensors").is_file()
    assert namespace["search"].best_params_.keys() == {"alpha", "learning_rate_init"}
