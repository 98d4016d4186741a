"""ferronn against PyTorch, JAX, onnxruntime and numpy's BLAS on the CPU, in one process.

    python benches/compare.py [--threads 2] [--quick]

Every library gets the same thread count and the same synthetic data; timed runs
are interleaved (ferronn, torch, ferronn, ...) after a warm-up, each starts on an
idle machine with one untimed run of its own (so it is timed warm, as a training loop
runs; --cold skips that) and is redone if other processes took CPU meanwhile; each
number is the median over the repetitions.

  a. training throughput (samples/s, and GFLOP/s) of the same MLP, Adam(1e-3) +
     cross-entropy: ferronn's `fit` (one Rust call per epoch) and a `train_step` loop
     (one Rust call per batch, from Python) against an idiomatic PyTorch loop and JAX;
  b. square float32 GEMM GFLOP/s of ferronn (`fn.functional.matmul`), numpy and
     torch (`cargo bench --bench gemm` adds dense-layer shapes and faer);
  c. predict latency (µs) of one sample, and throughput (samples/s) at batch 32 and 1024;
  d. the cost of training control inside the Rust step: a per-batch cosine
     schedule, gradient clipping (global norm and value) and an L2 penalty on
     every kernel, against plain Adam on the same model (ferronn only);
  e. the cost of fn.diagnostics.GradientMonitor at its default rate during fit.

Every peer is optional (benches/peers.py): torch, JAX (+ optax) and onnxruntime (+ onnx,
for ferronn's export) each print "skipped: <pkg> not installed" when absent, and their
columns read "n/a". JAX appears in a as a jitted step per batch and as one jitted
`lax.scan` per epoch; onnxruntime in c with 1 and 2 intra-op threads. Section b runs
before a: a's GFLOP/s are also given as a percentage of b's ferronn 1024³ rate.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any, Callable, Optional

import numpy as np

import ferronn as fn

import peers
from peers import torch, torch_adam_epoch, torch_mlp  # noqa: F401 (compare_layers.py uses them from here)
from timing import QUIET, clean_run, fmt, interleaved, print_table, ratio  # noqa: F401 (likewise)

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info = threadpool_limits = None

N_FEATURES, N_CLASSES = 784, 10
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "RAYON_NUM_THREADS")


# -- environment -------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def model_bench_parser(description: str, samples: int, batch_sizes: list[int]) -> argparse.ArgumentParser:
    """The arguments every per-model comparison script shares (compare_layers, compare_conv,
    compare_rnn); a script adds its own before parsing."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    p.add_argument("--quick", action="store_true", help="few repetitions: a smoke test, not a measurement")
    p.add_argument("--samples", type=int, default=samples, help=f"samples per training epoch (default {samples})")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=batch_sizes,
                   help=f"batch sizes (default {' '.join(map(str, batch_sizes))})")
    p.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for an idle machine per timed run")
    p.add_argument("--cold", action="store_true",
                   help="time each run straight after the idle wait, without an untimed warm run first (the protocol of runs before 2026-12)")
    return p


def start_model_bench(args: argparse.Namespace, reps: int, quick_samples: int) -> tuple[Any, int, int, int]:
    """Applies the shared arguments (quiet-machine wait, threads) and prints the environment;
    returns the thread limiter (keep it alive for the whole run), repetitions, warm-up runs
    and samples per epoch."""
    QUIET["max_wait"] = args.max_wait
    QUIET["warm"] = not args.cold
    limiter = set_threads(args.threads)
    print_environment(args.threads)
    n = min(args.samples, quick_samples) if args.quick else args.samples
    return limiter, (2 if args.quick else reps), 1, n


def set_threads(n: int) -> object:
    """Gives every library `n` threads; returns the threadpoolctl limiter (keep it alive)."""
    fn.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    return threadpool_limits(limits=n, user_api="blas") if threadpool_limits else None


def print_environment(n: int) -> None:
    print("== environment")
    print(f"cpu          : {cpu_model()} ({os.cpu_count()} logical cores), load average {os.getloadavg()[0]:.2f}")
    print(f"python       : {platform.python_version()}   numpy {np.__version__}   ferronn {fn.__version__}   "
          f"torch {torch.__version__ if torch else 'not installed'}")
    print(f"threads      : ferronn {fn.get_num_threads()}   torch {torch.get_num_threads() if torch else 'n/a'}   "
          f"(requested {n})")
    if threadpool_info is None:
        print("numpy BLAS   : threadpoolctl not installed; numpy's BLAS threads are NOT pinned "
              "(pip install threadpoolctl)")
    else:
        for lib in threadpool_info():
            print(f"threadpool   : {lib.get('internal_api')} {lib.get('version')} arch={lib.get('architecture')} "
                  f"threads={lib.get('num_threads')} ({os.path.basename(lib.get('filepath', ''))})")
    for var in ENV_VARS + ("XLA_FLAGS",):
        print(f"env {var:<20s}: {os.environ.get(var, '(unset)')}")


# -- models ------------------------------------------------------------------

def ferronn_mlp(dims: list[int], lr: float = 1e-3) -> fn.Sequential:
    layers = [fn.Dense(d, activation="relu") for d in dims[1:-1]] + [fn.Dense(dims[-1])]
    model = fn.Sequential(layers)
    model.compile(optimizer=fn.optim.Adam(lr), loss="cross_entropy")
    model.build(dims[0], seed=0)
    return model


def timed_fit_epoch(model: Any, X: np.ndarray, y: np.ndarray, bs: int) -> Callable[[], float]:
    """A timed epoch of ``model.fit`` (a new shuffle seed each call), in seconds."""
    epoch = [0]

    def run() -> float:
        epoch[0] += 1
        t = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=bs, shuffle=True, seed=epoch[0], verbose=0)
        return time.perf_counter() - t

    return run


# -- a. training throughput -----------------------------------------------------

def mlp_flops(dims: list[int]) -> float:
    """FLOPs per training sample of a dense MLP: 2·in·out for each forward product and
    for each weight gradient, and 2·in·out for each input gradient except the first
    layer's (no library computes the gradient w.r.t. the data when training the
    weights). Biases, activations and the optimizer are left out, so this slightly
    undercounts."""
    pairs = [i * o for i, o in zip(dims[:-1], dims[1:])]
    return 6.0 * sum(pairs) - 2.0 * pairs[0]


TRAIN_LABELS = (("fit", "ferronn fit"), ("steps", "ferronn train_step loop"), ("torch", "torch loop"),
                ("jax_step", "jax jit step loop"), ("jax_scan", "jax jit+lax.scan epoch"))


def bench_training(X: np.ndarray, y: np.ndarray, reps: int, warmup: int, jax: Any) -> list[tuple]:
    """Times every case; returns (case, dims, {run: samples/s}, {run: paired ratios vs torch})."""
    n = len(X)
    Xt: Any = torch.from_numpy(X) if torch else None
    yt: Any = torch.from_numpy(y) if torch else None
    cases = [([784, 256, 128, 10], 32), ([784, 256, 128, 10], 128), ([784, 256, 128, 10], 512),
             ([784, 1024, 1024, 10], 512)]
    results = []
    for dims, bs in cases:
        fit_model, step_model = ferronn_mlp(dims), ferronn_mlp(dims)
        rng = np.random.default_rng(0)
        ferronn_fit = timed_fit_epoch(fit_model, X, y, bs)

        def ferronn_steps() -> float:
            t = time.perf_counter()
            perm = rng.permutation(n)
            for i in range(0, n, bs):
                idx = perm[i:i + bs]
                step_model.train_step(X[idx], y[idx])
            return time.perf_counter() - t

        torch_epoch = torch_adam_epoch(torch_mlp(dims), Xt, yt, bs) if torch is not None else None
        jax_step, jax_scan = peers.jax_epochs(jax, dims, X, y, bs)
        runs = {"fit": ferronn_fit, "steps": ferronn_steps, "torch": torch_epoch,
                "jax_step": jax_step, "jax_scan": jax_scan}
        times = interleaved(runs, reps, warmup)
        # the JAX epochs drop a last partial batch: count the samples they saw
        seen = {k: (n // bs) * bs if k.startswith("jax") else n for k in times}
        med = {k: seen[k] / statistics.median(v) for k, v in times.items()}
        # Each round ran every side back to back: the spread of the paired ratios.
        pairs = {k: sorted(seen[k] / a / (n / b) for a, b in zip(v, times.get("torch", []))) for k, v in times.items()}
        results.append((f"{'-'.join(map(str, dims))} b={bs}", dims, med, pairs))
    return results


def print_training(results: list[tuple], n: int, reps: int, gemm_rate: Optional[float], gemm_src: str) -> None:
    rows = []
    for name, dims, med, pairs in results:
        for key, label in TRAIN_LABELS:
            if key not in med:
                continue
            gf = med[key] * mlp_flops(dims) / 1e9
            p = pairs.get(key, [])
            spread = f"{p[0]:.2f}-{p[-1]:.2f}" if p and key != "torch" else ""
            rows.append((f"{name} {label}", fmt(med[key]), ratio(med[key], med.get("torch")), spread,
                         fmt(gf, ".1f"), fmt(None if gemm_rate is None else 100 * gf / gemm_rate, ".0f")))
    print_table(f"a. training throughput (median of {reps}, {n} samples/epoch, Adam 1e-3, cross-entropy); "
                f"GFLOP/s count 6·Σ(in·out) − 2·in₁·out₁ per sample (no input gradient for the first layer); % of ferronn's 1024³ GEMM rate "
                f"({fmt(gemm_rate, '.1f')} GFLOP/s, {gemm_src})",
                ("case", "samples/s", "vs torch", "per-round range", "GFLOP/s", "% GEMM"), rows)


def ferronn_gemm_rate(reps: int, n: int = 1024) -> Optional[float]:
    """ferronn's own n³ GEMM GFLOP/s (median of `reps`), when section b is not run."""
    mm = getattr(getattr(fn, "functional", None), "matmul", None)
    if mm is None:
        return None
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    mm(a, b)

    # Four products per timed run: one 1024³ product lasts ~10 ms, inside the slow start
    # this VM gives the first ~30 ms after idle cores (benches/timing.py).
    per_run = 4

    def run() -> float:
        t = time.perf_counter()
        for _ in range(per_run):
            mm(a, b)
        return (time.perf_counter() - t) / per_run

    return 2.0 * n ** 3 / statistics.median(clean_run(run) for _ in range(reps)) / 1e9


# -- b. GEMM ----------------------------------------------------------------------

def bench_gemm(reps: int, warmup: int) -> Optional[float]:
    """Prints the GEMM table; returns ferronn's 1024³ GFLOP/s (section a's yardstick)."""
    rows, rate = [], None
    rng = np.random.default_rng(1)
    ferronn_mm = getattr(getattr(fn, "functional", None), "matmul", None)  # absent in older builds
    for n in (256, 512, 1024):
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        flops = 2.0 * n ** 3
        inner = max(1, int(1e10 // flops))  # about 10 GFLOP (~0.1 s) per timed run

        def timed(mm: Optional[Callable], x: Any, y: Any) -> Optional[Callable[[], float]]:
            if mm is None:
                return None
            f: Callable = mm

            def run() -> float:
                t = time.perf_counter()
                for _ in range(inner):
                    f(x, y)
                return (time.perf_counter() - t) / inner
            return run

        ta, tb = (torch.from_numpy(a), torch.from_numpy(b)) if torch else (None, None)
        times = interleaved({"ferronn": timed(ferronn_mm, a, b), "numpy": timed(np.matmul, a, b),
                             "torch": timed(torch.mm if torch else None, ta, tb)}, reps, warmup)
        gf = {k: flops / statistics.median(v) / 1e9 for k, v in times.items()}
        rate = gf.get("ferronn") if n == 1024 else rate
        rows.append((f"{n}x{n}x{n}", *(fmt(gf.get(k), ".1f") for k in ("ferronn", "numpy", "torch")),
                     ratio(gf.get("ferronn"), gf["numpy"]), ratio(gf.get("ferronn"), gf.get("torch"))))
    print_table(f"b. float32 GEMM GFLOP/s, a @ b with a new output (median of {reps}; ferronn via fn.functional.matmul; "
                "its transposed dense-layer shapes and faer: `cargo bench --bench gemm`)",
                ("n", "ferronn", "numpy", "torch", "ferronn/numpy", "ferronn/torch"), rows)
    return rate


# -- c. predict latency (batch 1) and throughput (batch 32, 1024) ----------------------

def timed_block(call: Callable[[], Any], block: int) -> Callable[[], list[int]]:
    """`block` calls of `call`, each timed in ns."""
    clock = time.perf_counter_ns

    def run() -> list[int]:
        out = []
        for _ in range(block):
            t = clock()
            call()
            out.append(clock() - t)
        return out

    return run


def predict_runs(model: fn.Sequential, x: np.ndarray, dims: list[int], block: int) -> dict[str, Optional[Callable[[], list[int]]]]:
    """ferronn's `predict_raw`, PyTorch's eval forward and onnxruntime (ferronn's own
    exported graph, 1 and 2 intra-op threads) on the same rows, `block` timed calls each."""
    runs: dict[str, Optional[Callable[[], list[int]]]] = {"ferronn": timed_block(lambda: model.predict_raw(x), block), "torch": None}
    if torch is not None:
        tmodel, tx = torch_mlp(dims).eval(), torch.from_numpy(x)

        def torch_call() -> None:
            with torch.inference_mode():
                tmodel(tx)

        runs["torch"] = timed_block(torch_call, block)
    for t in (1, 2):
        runs[f"ort{t}"] = peers.onnx_latency_block(peers.onnx_session(model, t), x, block)
    return runs


def bench_latency(calls: int, warmup: int) -> None:
    rows = []
    rng = np.random.default_rng(2)
    block = 500  # calls per side before switching, so both see the same conditions
    for dims in ([64, 64, 10], [784, 256, 128, 10]):
        model = ferronn_mlp(dims)
        x = rng.standard_normal((1, dims[0]), dtype=np.float32)
        blocks = interleaved(predict_runs(model, x, dims, block), max(1, calls // block), warmup)
        med = {k: statistics.median(ns for b in v for ns in b) / 1e3 for k, v in blocks.items()}
        rows.append(("-".join(map(str, dims)), *(fmt(med.get(k), ".1f") for k in ("ferronn", "torch", "ort1", "ort2")),
                     ratio(med.get("torch"), med["ferronn"]), ratio(med.get("ort1"), med["ferronn"])))
    print_table(f"c. single-sample predict latency, µs (median of {calls} calls each, interleaved in blocks of {block}; "
                "onnxruntime runs ferronn's model.export_onnx graph)",
                ("model", "ferronn", "torch", "onnxruntime 1 thr", "onnxruntime 2 thr",
                 "torch/ferronn", "ort 1 thr/ferronn (>1: ferronn faster)"), rows)
    bench_batch_predict(calls, warmup)


def bench_batch_predict(calls: int, warmup: int) -> None:
    """Batch 32 and 1024 through 784-256-128-10: samples/s from the median call
    (the issue's bar is onnxruntime's 2-thread throughput)."""
    rows = []
    rng = np.random.default_rng(3)
    dims = [784, 256, 128, 10]
    model = ferronn_mlp(dims)
    for batch in (32, 1024):
        x = rng.standard_normal((batch, dims[0]), dtype=np.float32)
        n = max(20, calls * 32 // (batch * 10))  # about the same time per batch size
        block = max(10, n // 10)
        blocks = interleaved(predict_runs(model, x, dims, block), max(1, n // block), warmup)
        med = {k: statistics.median(ns for b in v for ns in b) / 1e3 for k, v in blocks.items()}
        rate = {k: batch / (us * 1e-6) for k, us in med.items()}
        rows.append((str(batch), *(f"{fmt(med.get(k), '.1f')} ({fmt(rate.get(k))}/s)" for k in ("ferronn", "torch", "ort1", "ort2")),
                     ratio(rate["ferronn"], rate.get("ort2"))))
    print_table("c. batch predict of 784-256-128-10, µs per call (samples/s) (median call; interleaved blocks)",
                ("batch", "ferronn", "torch", "onnxruntime 1 thr", "onnxruntime 2 thr",
                 "ferronn/ort 2 thr samples/s (>1: ferronn faster)"), rows)


# -- d. training-control overhead ---------------------------------------------------

def bench_overhead(X: np.ndarray, y: np.ndarray, reps: int, warmup: int) -> None:
    n, rows = len(X), []
    for dims, bs in (([784, 256, 128, 10], 32), ([784, 256, 128, 10], 128)):
        def build(controlled: bool) -> fn.Sequential:
            reg = fn.regularizers.l2(1e-4) if controlled else None
            layers = [fn.Dense(d, activation="relu", kernel_regularizer=reg) for d in dims[1:-1]]
            model = fn.Sequential(layers + [fn.Dense(dims[-1], kernel_regularizer=reg)])
            if controlled:
                lr = fn.schedules.CosineAnnealing(1e-3, T_max=10_000, per="step")
                opt = fn.optim.Adam(lr, global_clipnorm=1.0, clipvalue=0.5)
            else:
                opt = fn.optim.Adam(1e-3)
            model.compile(optimizer=opt, loss="cross_entropy")
            model.build(dims[0], seed=0)
            return model

        models = {"plain": build(False), "controlled": build(True)}
        # A few-percent difference needs more rounds than the other sections.
        times = interleaved({k: timed_fit_epoch(m, X, y, bs) for k, m in models.items()}, 3 * reps, warmup)
        med = {k: n / statistics.median(v) for k, v in times.items()}
        best = {k: n / min(v) for k, v in times.items()}
        pairs = sorted(p / c for p, c in zip(times["plain"], times["controlled"]))
        rows.append((f"{'-'.join(map(str, dims))} b={bs}", fmt(med["plain"]), fmt(med["controlled"]),
                     f"{100 * (1 - med['controlled'] / med['plain']):+.1f}%",
                     f"{100 * (1 - best['controlled'] / best['plain']):+.1f}%",
                     f"{100 * (1 - statistics.median(pairs)):+.1f}%", f"{pairs[0]:.2f}-{pairs[-1]:.2f}"))
    print_table(f"d. training-control overhead, fit samples/s (median of {3 * reps}): Adam vs Adam + per-step cosine "
                "schedule + global_clipnorm + clipvalue + L2 on every kernel",
                ("case", "plain Adam", "controlled", "cost (medians)", "cost (best runs)",
                 "cost (median of paired rounds)", "per-round speed ratio"), rows)


# -- e. GradientMonitor overhead --------------------------------------------------------

def bench_monitor(X: np.ndarray, y: np.ndarray, reps: int, warmup: int) -> None:
    from ferronn.diagnostics import GradientMonitor

    n, rows = len(X), []
    for bs in (32, 128):
        models = {k: ferronn_mlp([784, 256, 128, 10]) for k in ("plain", "monitored")}
        monitors: list = []
        epoch = [0]

        def runner(key: str) -> Callable[[], float]:
            def run() -> float:
                epoch[0] += 1
                callbacks = []
                if key == "monitored":
                    monitors.append(GradientMonitor())
                    callbacks = [monitors[-1]]
                t = time.perf_counter()
                models[key].fit(X, y, epochs=1, batch_size=bs, seed=epoch[0], verbose=0, callbacks=callbacks)
                return time.perf_counter() - t
            return run

        times = interleaved({k: runner(k) for k in models}, 3 * reps, warmup)
        med = {k: n / statistics.median(v) for k, v in times.items()}
        pairs = sorted(p / c for p, c in zip(times["plain"], times["monitored"]))
        records = statistics.median(len(m.history.get("step", [])) for m in monitors)
        rows.append((f"784-256-128-10 b={bs}", fmt(med["plain"]), fmt(med["monitored"]),
                     f"{100 * (1 - med['monitored'] / med['plain']):+.1f}%",
                     f"{100 * (1 - statistics.median(pairs)):+.1f}%", f"{records:.0f}"))
    print_table(f"e. GradientMonitor() at its default rate, fit samples/s (median of {3 * reps})",
                ("case", "plain fit", "with monitor", "cost (medians)", "cost (median of paired rounds)",
                 "records per epoch"), rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    p.add_argument("--quick", action="store_true", help="few repetitions: a smoke test, not a measurement")
    p.add_argument("--samples", type=int, default=8192, help="samples per training epoch (default 8192)")
    p.add_argument("--max-wait", type=float, default=60.0,
                   help="seconds to wait for an idle machine before each timed run (0: never wait)")
    p.add_argument("--sections", default="abcde", help="which sections to run (default abcde)")
    p.add_argument("--cold", action="store_true",
                   help="time each run straight after the idle wait, without an untimed warm run first (the protocol of runs before 2026-12)")
    args = p.parse_args()
    QUIET["max_wait"] = args.max_wait
    QUIET["warm"] = not args.cold
    limiter = set_threads(args.threads)  # noqa: F841 (kept alive for the whole run)
    jax = peers.load_jax(args.threads) if "a" in args.sections else None
    print_environment(args.threads)
    if "a" in args.sections:
        print(f"jax threads  : {peers.jax_threads_note() if jax else 'n/a'}")
    reps, warmup, calls = (2, 1, 1000) if args.quick else (7, 1, 10_000)
    n = min(args.samples, 2048) if args.quick else args.samples

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, N_FEATURES), dtype=np.float32)
    y = rng.integers(0, N_CLASSES, size=n, dtype=np.int64)

    if "c" in args.sections:
        peers.onnx_session(ferronn_mlp([4, 2]), 1)  # notes a missing onnxruntime/onnx before the first table
    print(f"peers        : {peers.versions()}")
    for pkg in peers.missing():
        print(f"skipped: {pkg} not installed (its columns read n/a or its rows are left out)")
    print()
    # a's efficiency column is relative to b's 1024³ figure, so b is timed first when both run
    gemm_rate = bench_gemm(reps, warmup) if "b" in args.sections else None
    if "a" in args.sections:
        training = bench_training(X, y, reps, warmup, jax)
        src = "section b"
        if gemm_rate is None:
            gemm_rate, src = ferronn_gemm_rate(reps), "measured alone, section b not run"
        print_training(training, n, reps, gemm_rate, src)
    if "c" in args.sections:
        bench_latency(calls, warmup)
    if "d" in args.sections:
        bench_overhead(X, y, reps, warmup)
    if "e" in args.sections:
        bench_monitor(X, y, reps, warmup)
    print(f"timed runs: {QUIET['runs']}; redone because other processes used >10% CPU: {QUIET['redone']}; "
          f"kept although still disturbed: {QUIET['contaminated']}; load average at end: {os.getloadavg()[0]:.2f}")
    if args.quick:
        print("(--quick: too few repetitions to quote these numbers)")


if __name__ == "__main__":
    main()
