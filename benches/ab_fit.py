"""A/B of two ferronn builds' `fit`, in alternating processes, on 1 and 2 threads.

    python benches/ab_fit.py /tmp/base/python $PWD/python 32 128 512
    python benches/ab_fit.py A/python B/python 128 --rounds 5 --threads 2 --dims 784-1024-1024-10

Each build is a `python/` folder holding the package and its compiled core (two builds of
one package cannot share a process). For every round and batch size the script starts one
process per build, in the order A, B on even rounds and B, A on odd ones, so a slow drift of
a shared machine hits both alike. A process trains an MLP of the given widths (ReLU hidden
layers, Adam 1e-3, cross-entropy) on synthetic samples with each thread count in turn: one
warm-up epoch, then `--epochs` timed ones, each after waiting for idle cores
(`benches/timing.py`) and one untimed epoch. It reports the best epoch's samples/s, the
process CPU time per step of that epoch, and the share of both cores other processes used
meanwhile ("foreign"; above ~0.1 the wall figure is the other processes', not ours).

The summary gives, per batch size and thread count, the median over rounds of each build
and the ratios B/A of samples/s and A/B of CPU per step (above 1: B is better), and each
build's 1 → 2 thread scaling when both counts were run.

    python benches/ab_fit.py --one 128 1,2     # one process, one build (PYTHONPATH's)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def one(batch: int, threads: list[int], dims: list[int], samples: int, epochs: int, max_wait: float) -> dict[str, list[float]]:
    """Times `fit` epochs of the build on sys.path; {threads: [samples/s, CPU µs/step, foreign]}."""
    import numpy as np

    import ferronn as fn

    sys.path.insert(0, HERE)
    from timing import HZ, QUIET, cpu_jiffies, own_cpu, wait_quiet

    QUIET["max_wait"] = max_wait
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, dims[0])).astype(np.float32)
    y = rng.integers(0, dims[-1], samples)
    steps = -(-samples // batch)
    out = {}
    for n in threads:
        fn.set_num_threads(n)
        layers = [fn.Dense(d, activation="relu") for d in dims[1:-1]] + [fn.Dense(dims[-1])]
        model = fn.Sequential(layers, input_dim=dims[0], seed=0)
        model.compile(optimizer=fn.optim.Adam(1e-3))
        epoch = lambda: model.fit(x, y, epochs=1, batch_size=batch, verbose=0)  # noqa: E731
        epoch()
        best: list[float] = []
        for _ in range(epochs):
            wait_quiet()
            epoch()
            b0, t0 = cpu_jiffies()
            # CPU time twice: in clock ticks, comparable with /proc/stat's, for
            # the foreign share; and to the nanosecond for the figure.
            c0, p0, w0 = own_cpu(), time.process_time(), time.perf_counter()
            epoch()
            wall, cpu = time.perf_counter() - w0, time.process_time() - p0
            b1, t1 = cpu_jiffies()
            foreign = max(0.0, ((b1 - b0) - (own_cpu() - c0) * HZ) / max(1, t1 - t0))
            if not best or samples / wall > best[0]:
                best = [samples / wall, cpu / steps * 1e6, foreign]
        out[str(n)] = best
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="*", help="build A's python/ folder, build B's, then batch sizes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--dims", default="784-256-128-10", help="layer widths, input first")
    ap.add_argument("--samples", type=int, default=8192)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per process and thread count (the best counts)")
    ap.add_argument("--max-wait", type=float, default=5.0, help="seconds to wait for idle cores before each timed epoch")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    dims = [int(d) for d in a.dims.split("-")]
    if a.one:
        print(json.dumps(one(int(a.builds[0]), threads, dims, a.samples, a.epochs, a.max_wait)))
        return
    if len(a.builds) < 3:
        ap.error("give two builds' python/ folders and at least one batch size")
    builds = {"A": a.builds[0], "B": a.builds[1]}
    batches = [int(b) for b in a.builds[2:]]
    runs: dict[tuple[int, str], list[dict[str, list[float]]]] = {}
    for r in range(a.rounds):
        for batch in batches:
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                env = dict(os.environ, PYTHONPATH=builds[name], OPENBLAS_NUM_THREADS="1")
                cmd = [sys.executable, __file__, "--one", str(batch), "--threads", a.threads, "--dims", a.dims,
                       "--samples", str(a.samples), "--epochs", str(a.epochs), "--max-wait", str(a.max_wait)]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                res = json.loads(done.stdout)
                runs.setdefault((batch, name), []).append(res)
                cells = "  ".join(f"{t}t {v[0]:8.0f}/s {v[1]:7.1f} µs CPU/step foreign {v[2]:.2f}" for t, v in res.items())
                print(f"round {r} batch {batch:4d} {name}: {cells}", flush=True)
    print(f"\nmedians over {a.rounds} rounds (B/A samples/s and A/B CPU per step: above 1, B is better)")
    for batch in batches:
        for t in map(str, threads):
            med = {n: [statistics.median(run[t][i] for run in runs[(batch, n)]) for i in (0, 1)] for n in "AB"}
            print(f"batch {batch:4d} {t} thread(s): A {med['A'][0]:8.0f}/s {med['A'][1]:7.1f} µs  "
                  f"B {med['B'][0]:8.0f}/s {med['B'][1]:7.1f} µs  wall {med['B'][0] / med['A'][0]:.3f}x  CPU {med['A'][1] / med['B'][1]:.3f}x")
        if "1" in map(str, threads) and "2" in map(str, threads):
            for n in "AB":
                per = [run["2"][0] / run["1"][0] for run in runs[(batch, n)]]
                print(f"batch {batch:4d} {n} 1 -> 2 threads: " + " ".join(f"{s:.2f}" for s in per) + f" (median {statistics.median(per):.2f})")


if __name__ == "__main__":
    main()
