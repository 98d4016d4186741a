"""Where a training step's time goes, on each thread count: the step's phases and every
matrix product by shape, from the core's opt-in profile (`ferronn._core.profile_enable`).

    python benches/profile_step.py                          # 784-256-128-10, batch 128, 1 and 2 threads
    python benches/profile_step.py --batch 512 --threads 1,2,4 --dims 784-1024-1024-10

For each thread count the script trains an MLP (ReLU hidden layers, Adam 1e-3,
cross-entropy) on synthetic samples: one warm-up epoch, then `--epochs` profiled ones.
It prints µs per step for each phase (gather, forward, loss, backward, update; the rest
of the step is the Python call and the epoch's fixed costs) and, per product shape
`c (m×n) = a (m×k) · b (k×n)`, the calls per step, the wall µs per step, the threads'
busy µs per step (the split pieces' own times added up; a product that was not split
counts its wall time), busy / wall (how many threads were at work on average) and the
GFLOP/s the wall time gives. Comparing one thread's busy time with two threads' shows
what splitting a product added, and busy / wall how well the split overlapped.

The profile costs two clock reads per product and per phase: the step times printed
are a little longer than without it. One process, thread counts in turn; on a noisy
machine run it twice.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ferronn as fn
from ferronn import _core


def mlp(dims: list[int]) -> fn.Sequential:
    layers = [fn.Dense(d, activation="relu") for d in dims[1:-1]] + [fn.Dense(dims[-1])]
    model = fn.Sequential(layers, input_dim=dims[0], seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    return model


def profile(dims: list[int], threads: int, batch: int, epochs: int, X: np.ndarray, y: np.ndarray) -> tuple:
    fn.set_num_threads(threads)
    model = mlp(dims)
    model.fit(X, y, epochs=1, batch_size=batch, verbose=0)
    _core.profile_enable(True)
    t = time.perf_counter()
    model.fit(X, y, epochs=epochs, batch_size=batch, verbose=0)
    wall = time.perf_counter() - t
    products, phases = _core.profile_take()
    _core.profile_enable(False)
    steps = epochs * -(-len(X) // batch)
    return wall / steps * 1e6, products, phases, steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", default="784-256-128-10", help="layer widths (default 784-256-128-10)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    p.add_argument("--epochs", type=int, default=3, help="profiled epochs per thread count (default 3)")
    p.add_argument("--samples", type=int, default=8192, help="samples per epoch (default 8192)")
    args = p.parse_args()
    dims = [int(d) for d in args.dims.split("-")]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.samples, dims[0]), dtype=np.float32)
    y = rng.integers(0, dims[-1], args.samples)
    counts = [int(t) for t in args.threads.split(",")]
    runs = {t: profile(dims, t, args.batch, args.epochs, X, y) for t in counts}

    print(f"{args.dims}, batch {args.batch}, {args.samples} samples x {args.epochs} epochs; µs per step")
    print(f"{'phase':<10}" + "".join(f"{f'{t} thr':>12}" for t in counts))
    names = [name for name, _, _ in runs[counts[0]][2]]
    for name in names:
        cells = []
        for t in counts:
            step, _, phases, steps = runs[t]
            ns = next(ns for n, _, ns in phases if n == name)
            cells.append(f"{ns / steps / 1e3:8.1f} {100 * ns / steps / 1e3 / step:2.0f}%")
        print(f"{name:<10}" + "".join(f"{c:>12}" for c in cells))
    rest = [runs[t][0] - sum(ns for _, _, ns in runs[t][2]) / runs[t][3] / 1e3 for t in counts]
    print(f"{'rest':<10}" + "".join(f"{r:12.1f}" for r in rest))
    print(f"{'step':<10}" + "".join(f"{runs[t][0]:12.1f}" for t in counts))

    print(f"\nproducts c (m x n) = a (m x k) . b (k x n): calls/step; then per thread count wall µs/step, "
          f"busy µs/step, busy/wall, GFLOP/s")
    shapes = sorted({(m, n, k) for t in counts for (m, n, k, *_rest) in runs[t][1]}, key=lambda s: -s[0] * s[1] * s[2])
    for m, n, k in shapes:
        line = f"{m:5} x {n:5} x {k:5}"
        for t in counts:
            _, products, _, steps = runs[t]
            rows = [r for r in products if r[:3] == (m, n, k)]
            calls, wall, busy = (sum(r[i] for r in rows) for i in (4, 5, 6))
            if not calls:
                line += f"   | {t} thr: -"
                continue
            gflops = 2 * m * n * k * calls / wall
            line += f"   | {calls / steps:4.1f} {wall / steps / 1e3:8.1f} {busy / steps / 1e3:8.1f} {busy / wall:4.2f} {gflops:6.1f}"
        print(line)


if __name__ == "__main__":
    main()
