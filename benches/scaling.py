"""Thread scaling of ferronn: samples/s of `fit` and `predict` for 1..N threads.

    python benches/scaling.py                       # 1..os.cpu_count() threads
    python benches/scaling.py --threads 1,2,4,8,16  # chosen counts
    python benches/scaling.py --batch 32,128,512 --dims 784-1024-1024-10

For each batch size, trains an MLP of the given widths (ReLU hidden layers, Adam 1e-3,
cross-entropy) on synthetic samples with each thread count in turn, one warm-up epoch
then `--epochs` timed ones, and predicts the same samples. The thread counts are
visited in rounds (1, 2, …, N, then again), so slow drift of a shared machine hits every
count alike; each cell is the median over rounds of the best epoch of a round. The
speedup column is relative to one thread. It also checks the promise that results do not
depend on the thread count: every count must end with bit-identical weights.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

import ferronn as fn


def parse_ints(text: str) -> list[int]:
    return [int(t) for t in text.replace("-", ",").split(",") if t]


def build(dims: list[int]) -> fn.Sequential:
    layers = [fn.Dense(d, activation="relu") for d in dims[1:-1]] + [fn.Dense(dims[-1])]
    model = fn.Sequential(layers, input_dim=dims[0], seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-3))
    return model


def one_round(dims: list[int], X: np.ndarray, y: np.ndarray, bs: int, epochs: int) -> tuple[float, float, bytes]:
    """Best fit and predict samples/s of one fresh model, and its final weights."""
    model = build(dims)
    model.fit(X, y, epochs=1, batch_size=bs, verbose=0, shuffle=False)
    fit_times, pred_times = [], []
    for _ in range(epochs):
        t = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=bs, verbose=0, shuffle=False)
        fit_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.predict_raw(X)
        pred_times.append(time.perf_counter() - t)
    weights = b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())
    return len(X) / min(fit_times), len(X) / min(pred_times), weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1..os.cpu_count())")
    ap.add_argument("--batch", default="32,128,512", help="comma-separated batch sizes")
    ap.add_argument("--dims", default="784-256-128-10", help="layer widths, input first")
    ap.add_argument("--samples", type=int, default=8192)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    threads = parse_ints(args.threads) if args.threads else list(range(1, (os.cpu_count() or 1) + 1))
    dims = [int(d) for d in args.dims.split("-")]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.samples, dims[0]), dtype=np.float32)
    y = rng.integers(0, dims[-1], args.samples)
    print(f"ferronn {fn.__version__}, {os.cpu_count()} CPUs, model {args.dims}, {args.samples} samples, "
          f"median over {args.rounds} rounds of the best of {args.epochs} epochs")
    same = True
    for bs in parse_ints(args.batch):
        fit: dict[int, list[float]] = {t: [] for t in threads}
        pred: dict[int, list[float]] = {t: [] for t in threads}
        weights: dict[int, bytes] = {}
        for _ in range(args.rounds):
            for t in threads:
                fn.set_num_threads(t)
                f, p, w = one_round(dims, X, y, bs, args.epochs)
                fit[t].append(f)
                pred[t].append(p)
                weights[t] = w
        same &= len(set(weights.values())) == 1
        base_fit, base_pred = statistics.median(fit[threads[0]]), statistics.median(pred[threads[0]])
        print(f"\nbatch {bs}")
        print(f"{'threads':>7} {'fit samples/s':>14} {'speedup':>8} {'predict samples/s':>18} {'speedup':>8}")
        for t in threads:
            f, p = statistics.median(fit[t]), statistics.median(pred[t])
            print(f"{t:>7} {f:>14,.0f} {f / base_fit:>7.2f}x {p:>18,.0f} {p / base_pred:>7.2f}x")
    print(f"\nweights bit-identical across thread counts: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
