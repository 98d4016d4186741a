"""Training benchmarks, ferronn against its peers on the same data and model
(784-256-128-10 ReLU MLP, Adam 1e-3, softmax cross-entropy):

- one optimizer step on a batch of 128 (`model.train_step`; torch's
  zero_grad/backward/step; a jitted JAX step);
- one epoch of 8192 samples in batches of 128 (`model.fit`; a torch loop; one jitted
  JAX `lax.scan` over the epoch).

Each case that needs a missing peer is skipped. Compare the rows of one group:
pytest-benchmark prints them side by side.
"""

from __future__ import annotations

import numpy as np
import pytest

import peers
from conftest import ferronn_mlp, need

DIMS = [784, 256, 128, 10]
BATCH = 128
PEERS = ["ferronn", "torch", "jax"]


@pytest.mark.benchmark(group="train_step b=128 784-256-128-10")
@pytest.mark.parametrize("lib", PEERS)
def test_train_step(benchmark, data, lib):
    X, y = data
    xb, yb = X[:BATCH], y[:BATCH]
    if lib == "ferronn":
        model = ferronn_mlp(DIMS)
        step = lambda: model.train_step(xb, yb)  # noqa: E731
    elif lib == "torch":
        torch = need("torch")
        import torch.nn.functional as F

        tmodel = peers.torch_mlp(DIMS)
        opt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(xb), torch.from_numpy(yb)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(tmodel(tx), ty).backward()
            opt.step()
    else:
        jmodel = peers.JaxMLP(need("jax"), DIMS, X, y, BATCH)
        xj, yj = xb, yb.astype(np.int32)
        step = lambda: jmodel.step(xj, yj)  # noqa: E731
    step()  # compile / first-call costs stay out of the timing
    benchmark(step)


@pytest.mark.benchmark(group="fit epoch 8192 b=128 784-256-128-10")
@pytest.mark.parametrize("lib", PEERS)
def test_fit_epoch(benchmark, data, lib):
    X, y = data
    if lib == "ferronn":
        model = ferronn_mlp(DIMS)
        seed = iter(range(1, 1_000_000))
        epoch = lambda: model.fit(X, y, epochs=1, batch_size=BATCH, shuffle=True,  # noqa: E731
                                  seed=next(seed), verbose=0)
    elif lib == "torch":
        torch = need("torch")
        timed = peers.torch_adam_epoch(peers.torch_mlp(DIMS), torch.from_numpy(X), torch.from_numpy(y), BATCH)
        epoch = timed  # it returns its own time; pytest-benchmark times the call around it
    else:
        epoch = peers.JaxMLP(need("jax"), DIMS, X, y, BATCH).scan_epoch
    epoch()
    benchmark.pedantic(epoch, rounds=5, iterations=1, warmup_rounds=0)
