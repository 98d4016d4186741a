"""Predict throughput of one model shared by several Python threads.

    PYTHONPATH=python python benches/concurrent_predict.py [--seconds 1.0]

The 784-256-128-10 MLP, batch 1 and batch 32, with 1, 2, 4 and 8 threads each
calling ``predict_raw`` in a loop on the same model, first with ferronn's own
thread pool at one thread (``fn.set_num_threads(1)``: the calling threads are
the only parallelism) and then at its default. Prints samples/s and calls/s
(all threads together) and checks every result against the single-thread one.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

import ferronn as fn


def model() -> fn.Sequential:
    m = fn.Sequential([fn.Dense(256, activation="relu"), fn.Dense(128, activation="relu"), fn.Dense(10)],
                      input_dim=784, seed=0)
    m.compile(optimizer="adam", loss="cross_entropy")
    return m


def throughput(m: fn.Sequential, x: np.ndarray, threads: int, seconds: float) -> tuple[float, float]:
    """(samples/s, calls/s) of ``threads`` threads predicting ``x`` for ``seconds``."""
    want = m.predict_raw(x)
    calls = [0] * threads
    wrong = [0] * threads
    start, stop = threading.Barrier(threads + 1), threading.Event()

    def run(i: int) -> None:
        start.wait()
        while not stop.is_set():
            wrong[i] += not np.array_equal(m.predict_raw(x), want)
            calls[i] += 1

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if any(wrong):
        raise SystemExit(f"{sum(wrong)} results differ from the single-thread result")
    n = sum(calls)
    return n * len(x) / elapsed, n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per configuration")
    args = parser.parse_args()
    m = model()
    rng = np.random.default_rng(0)
    default = fn.get_num_threads()
    print(f"784-256-128-10 MLP, predict_raw, {args.seconds:g} s per row; cores: {__import__('os').cpu_count()}")
    for pool_threads in (1, default):
        fn.set_num_threads(pool_threads)
        label = "fn.set_num_threads(1)" if pool_threads == 1 else f"default ({pool_threads} threads)"
        print(f"\n{label}")
        print(f"{'batch':>5} {'threads':>7} {'samples/s':>12} {'calls/s':>10}")
        for batch in (1, 32):
            x = rng.normal(size=(batch, 784)).astype(np.float32)
            m.predict_raw(x)  # warm the workspace pool
            for threads in (1, 2, 4, 8):
                samples, calls = throughput(m, x, threads, args.seconds)
                print(f"{batch:>5} {threads:>7} {samples:>12,.0f} {calls:>10,.0f}")


if __name__ == "__main__":
    main()
