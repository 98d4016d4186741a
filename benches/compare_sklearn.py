"""scikit-learn's MLPClassifier against ferronn.sklearn.MLPClassifier on the embedded digits.

The same hyperparameters for both (scikit-learn's defaults: hidden_layer_sizes=(100,),
adam, learning_rate_init=1e-3, alpha=1e-4, batch_size=min(200, n), max_iter=200,
tol=1e-4, n_iter_no_change=10), the same fixed 80/20 train/test split, several seeds.
Fits are interleaved (the order alternates from seed to seed) so that drifts in the
machine's speed hit both libraries alike. Prints test accuracy and fit time per library.

    pip install scikit-learn threadpoolctl
    python benches/compare_sklearn.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLP

import ferronn as fn
from ferronn.sklearn import MLPClassifier as FnMLP


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="random_state 0 .. seeds-1 (default 3)")
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--hidden", default="100", help="hidden layer sizes, comma-separated (default 100)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both libraries (ferronn's pool and numpy's BLAS via threadpoolctl)")
    args = parser.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))

    limits = None
    if args.threads is not None:
        fn.set_num_threads(args.threads)
        try:
            from threadpoolctl import threadpool_limits
            limits = threadpool_limits(args.threads)
        except ImportError:
            print("threadpoolctl is not installed: numpy's BLAS uses its default thread count")

    X, y = fn.datasets.digits()
    (Xtr, ytr), (Xte, yte) = fn.datasets.train_test_split(X, y, test_size=0.2, seed=0)
    Xtr64, Xte64 = Xtr.astype(np.float64), Xte.astype(np.float64)  # scikit-learn's usual dtype
    params = dict(hidden_layer_sizes=hidden, solver="adam", max_iter=args.max_iter)
    libs = {"scikit-learn": (SkMLP, Xtr64, Xte64), "ferronn": (FnMLP, Xtr, Xte)}

    # warm-up (imports, first-call costs), not timed
    for cls, xtr, _ in libs.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            cls(hidden_layer_sizes=hidden, max_iter=2, random_state=0).fit(xtr, ytr)

    results: dict[str, dict[str, list[float]]] = {name: {"acc": [], "time": [], "iters": []} for name in libs}
    for seed in range(args.seeds):
        order = list(libs) if seed % 2 == 0 else list(reversed(libs))
        for name in order:
            cls, xtr, xte = libs[name]
            est = cls(random_state=seed, **params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                est.fit(xtr, ytr)
                elapsed = time.perf_counter() - start
            results[name]["acc"].append(float(est.score(xte, yte)))
            results[name]["time"].append(elapsed)
            results[name]["iters"].append(float(est.n_iter_))
    if limits is not None:
        limits.unregister()

    print(f"digits: {len(Xtr)} train / {len(Xte)} test samples, hidden={hidden}, adam, max_iter={args.max_iter}, "
          f"seeds 0..{args.seeds - 1}, threads={args.threads if args.threads is not None else 'default'}")
    print()
    print("| library | test accuracy (mean ± sd) | per seed | fit time, s (mean) | epochs (mean) |")
    print("|---|---:|---|---:|---:|")
    for name, r in results.items():
        sd = statistics.stdev(r["acc"]) if len(r["acc"]) > 1 else 0.0
        per_seed = " / ".join(f"{a:.4f}" for a in r["acc"])
        print(f"| {name} | {statistics.mean(r['acc']):.4f} ± {sd:.4f} | {per_seed} | "
              f"{statistics.mean(r['time']):.3f} | {statistics.mean(r['iters']):.0f} |")
    speedup = statistics.mean(results["scikit-learn"]["time"]) / statistics.mean(results["ferronn"]["time"])
    print()
    print(f"ferronn fits {speedup:.1f}x faster; accuracy difference (ferronn - scikit-learn): "
          f"{statistics.mean(results['ferronn']['acc']) - statistics.mean(results['scikit-learn']['acc']):+.4f}")


if __name__ == "__main__":
    main()
