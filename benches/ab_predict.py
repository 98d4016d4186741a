"""Predict latency of one ferronn build, for A/B comparisons of two builds in alternating processes.

    PYTHONPATH=<build A>/python python benches/ab_predict.py [batches] [threads]
    PYTHONPATH=<build B>/python python benches/ab_predict.py [batches] [threads]

For each batch size (default 1,2,8,32,64,1024) times `predict_raw` of 784-256-128-10 (ReLU
hidden layers) on fixed random float32 rows, after a warm-up, and prints the median wall
time per call in µs. Then times 64-64-10 at batch 1 from Python (`predict_raw`) and the
core call alone (`model._net.predict`), each as thread CPU µs per call (steadier than wall
time on a shared machine: one thread does all the work of that model). Run the two builds
alternately, several rounds, and compare the rounds: one process per build, since two
builds of the same package cannot share one.
"""

import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

import ferronn as fn


def mlp(dims: list[int]) -> fn.Sequential:
    layers = [fn.Dense(d, activation="relu") for d in dims[1:-1]] + [fn.Dense(dims[-1])]
    model = fn.Sequential(layers, input_dim=dims[0], seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    return model


def median_wall_us(call: Callable[[], Any], calls: int) -> float:
    clock, out = time.perf_counter_ns, []
    for _ in range(calls):
        t = clock()
        call()
        out.append(clock() - t)
    return statistics.median(out) / 1e3


def best_cpu_us(call: Callable[[Any], Any], x: Any, calls: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.thread_time_ns()
        for _ in range(calls):
            call(x)
        best = min(best, (time.thread_time_ns() - t) / calls / 1e3)
    return best


def main() -> None:
    batches = [int(b) for b in (sys.argv[1] if len(sys.argv) > 1 else "1,2,8,32,64,1024").split(",")]
    fn.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    rng = np.random.default_rng(0)
    model = mlp([784, 256, 128, 10])
    parts = []
    for b in batches:
        x = rng.standard_normal((b, 784), dtype=np.float32)
        calls = max(50, 60_000 // (b + 8))
        median_wall_us(lambda: model.predict_raw(x), calls // 5)
        parts.append(f"b{b}={median_wall_us(lambda: model.predict_raw(x), calls):.1f}")
    small = mlp([64, 64, 10])
    x1 = rng.standard_normal((1, 64), dtype=np.float32)
    best_cpu_us(small.predict_raw, x1, 20_000, 1)
    parts.append(f"small_raw_cpu={best_cpu_us(small.predict_raw, x1, 50_000):.2f}")
    parts.append(f"small_core_cpu={best_cpu_us(small._net.predict, x1, 50_000):.2f}")
    print(" ".join(parts))


if __name__ == "__main__":
    main()
