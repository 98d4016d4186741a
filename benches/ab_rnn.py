"""A/B of two ferronn builds on recurrent training, in alternating processes.

    python benches/ab_rnn.py BUILD_A/python BUILD_B/python [--rounds 5] [--threads 2]
        [--cases lstm:128:28 gru:32:28 rnn:128:100]

Each case is ``kind:batch:T`` (kind: lstm, gru, rnn; lstm2, gru2, rnn2 for two stacked layers,
the first returning sequences) for ``layer(128) → Dense(10)`` on 2048
sequences of T steps of 28 features, Adam 1e-3, cross-entropy, as in compare_rnn.py. Each
round runs every case once per build, one process per run (two builds of the package cannot
share one process), alternating which build goes first; a run is one warm-up epoch and three
timed ones, reporting the median epoch's samples/s and the CPU time per training step (all
threads together: on a shared machine it moves less than wall time). Prints per case the
medians of both builds and the median over rounds of the per-round ratio B/A (wall: B's
samples/s over A's; CPU: A's CPU time per step over B's, so > 1 means B is faster either way).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

SAMPLES, F, H, C = 2048, 28, 128, 10


def run_one(kind: str, batch: int, steps: int, threads: int) -> None:
    """One timed run in this process; prints `samples/s cpu_ms_per_step`."""
    import numpy as np

    import ferronn as fn

    fn.set_num_threads(threads)
    # A trailing "2" stacks two layers (the first with return_sequences), so
    # the second's input gradient is computed too.
    stacked = kind.endswith("2")
    layer = {"lstm": fn.LSTM, "gru": fn.GRU, "rnn": fn.SimpleRNN}[kind.rstrip("2")]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((SAMPLES, steps, F), dtype=np.float32)
    y = rng.integers(0, C, SAMPLES)
    first = [layer(H, return_sequences=True)] if stacked else []
    model = fn.Sequential([*first, layer(H), fn.Dense(C)], input_shape=(steps, F), seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    model.fit(X, y, epochs=1, batch_size=batch, verbose=0)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from timing import wall_and_cpu

    wall, cpu = wall_and_cpu(lambda: model.fit(X, y, epochs=1, batch_size=batch, verbose=0), 3)
    per_epoch = SAMPLES / batch
    print(f"{SAMPLES / wall:.1f} {cpu / per_epoch * 1e3:.4f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        kind, batch, steps, threads = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        run_one(kind, batch, steps, threads)
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="the python/ directory of build A (the baseline)")
    p.add_argument("b", help="the python/ directory of build B")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", nargs="+", default=["lstm:128:28", "gru:128:28", "rnn:128:28"])
    args = p.parse_args()
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    for r in range(args.rounds):
        for case in args.cases:
            kind, batch, steps = case.split(":")
            for name in ("ab" if r % 2 == 0 else "ba"):
                path = args.a if name == "a" else args.b
                cmd = [sys.executable, os.path.abspath(__file__), "--one", kind, batch, steps, str(args.threads)]
                out = subprocess.run(cmd, env=dict(env, PYTHONPATH=path), capture_output=True, text=True, check=True)
                sps, cpu = map(float, out.stdout.split())
                results.setdefault(case, {}).setdefault(name, []).append((sps, cpu))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    med = statistics.median
    print(f"{args.threads} threads, {args.rounds} rounds; samples/s and CPU ms per step (medians); B/A per round, median [min, max]")
    for case, v in results.items():
        a, b = v["a"], v["b"]
        wall = [nb[0] / na[0] for na, nb in zip(a, b)]
        cpu = [na[1] / nb[1] for na, nb in zip(a, b)]
        print(f"{case:>12}: A {med([x[0] for x in a]):8.0f}/s {med([x[1] for x in a]):7.2f} ms | "
              f"B {med([x[0] for x in b]):8.0f}/s {med([x[1] for x in b]):7.2f} ms | "
              f"wall {med(wall):.3f} [{min(wall):.2f}, {max(wall):.2f}]  cpu {med(cpu):.3f} [{min(cpu):.2f}, {max(cpu):.2f}]")


if __name__ == "__main__":
    main()
