"""Fit throughput of one ferronn build, for A/B comparisons of two builds in alternating processes.

    PYTHONPATH=<build A>/python python benches/ab_fit.py 32 784-256-128-10
    PYTHONPATH=<build B>/python python benches/ab_fit.py 32 784-256-128-10

Trains an MLP of the given widths (ReLU hidden layers, Adam 1e-3, cross-entropy) on 8192
synthetic samples at the given batch size with 2 threads, one warm-up epoch then five
timed ones, and prints samples/s of the best and of the median epoch. Run the two builds
alternately, several rounds, and compare the rounds: one process per build, since two
builds of the same package cannot share one.
"""

import sys
import time

import numpy as np

import ferronn as fn


def main() -> None:
    bs, dims = int(sys.argv[1]), [int(d) for d in sys.argv[2].split("-")]
    fn.set_num_threads(2)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8192, dims[0])).astype(np.float32)
    y = rng.integers(0, dims[-1], 8192)
    layers = [fn.Dense(d, activation="relu") for d in dims[1:-1]] + [fn.Dense(dims[-1])]
    model = fn.Sequential(layers, input_dim=dims[0], seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-3))
    model.fit(X, y, epochs=1, batch_size=bs, verbose=0)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=bs, verbose=0)
        times.append(time.perf_counter() - t)
    print(f"{len(X) / min(times):.0f} {len(X) / float(np.median(times)):.0f}")


if __name__ == "__main__":
    main()
