"""The timing protocol of the comparison benchmarks (benches/compare*.py): wait for an
idle machine, time one run, redo it when other processes took CPU meanwhile, interleave
the libraries round by round; and the plain-text tables they print.

A shared 2-core machine halves any timing during a concurrent build, so each timed
run checks /proc/stat for foreign CPU use and is redone (up to 4 times) if it saw more
than 10%; QUIET counts the runs, the redone and the still-disturbed ones.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable, Optional, Sequence

QUIET = {"max_wait": 60.0, "warm": True, "runs": 0, "redone": 0, "contaminated": 0}
HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks summed over all cores since boot; (0, 0) off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    return sum(v) - v[3] - v[4], sum(v)


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def wait_quiet(threshold: float = 0.10, interval: float = 0.25) -> None:
    """Sleeps until the cores stay idle for `interval` s (or --max-wait passes): the
    previous library's spinning threads (OpenMP, OpenBLAS, rayon) go to sleep first."""
    deadline = time.monotonic() + QUIET["max_wait"]
    while time.monotonic() < deadline:
        b0, t0 = cpu_jiffies()
        time.sleep(interval)
        b1, t1 = cpu_jiffies()
        if t1 == t0 or (b1 - b0) / (t1 - t0) <= threshold:
            return


def clean_run(f: Callable[[], Any], tries: int = 4) -> Any:
    """Runs `f` on a quiet machine; redoes it (up to `tries` times) when other
    processes took more than 10% of the cores meanwhile (a shared 2-core machine
    halves any timing during a concurrent build).

    After the idle wait, `f` runs once untimed before the timed run (when
    QUIET["warm"]): on the 2-core VM the first ~30 ms after 0.3 s of idle cores ran
    far slower than a steady loop (a 29 ms epoch of 784-256-128-10 at batch 128,
    median of 5: ferronn 136k → 84k samples/s, PyTorch 76k → 63k, JAX's scanned
    epoch 127k → 68k), so without it every library was timed from a cold start,
    by different amounts, rather than as a training loop runs."""
    QUIET["runs"] += 1
    for attempt in range(tries):
        wait_quiet()
        if QUIET["warm"]:
            f()
        b0, t0 = cpu_jiffies()
        c0 = own_cpu()
        result = f()
        b1, t1 = cpu_jiffies()
        foreign = (b1 - b0) - (own_cpu() - c0) * HZ  # ticks other processes used
        if foreign <= max(2.0, 0.10 * (t1 - t0)):
            return result
        QUIET["redone"] += 1
    QUIET["contaminated"] += 1
    return result


def interleaved(runs: dict[str, Optional[Callable[[], Any]]], reps: int, warmup: int) -> dict[str, list[Any]]:
    """`warmup` untimed rounds, then `reps` rounds calling each run in turn.

    A run returns its own timing (seconds of its timed part, or a list of per-call
    times); runs that are None (library missing) are skipped.
    """
    live = {k: f for k, f in runs.items() if f is not None}
    for _ in range(warmup):
        for f in live.values():
            f()
    times: dict[str, list[Any]] = {k: [] for k in live}
    for _ in range(reps):
        for k, f in live.items():
            times[k].append(clean_run(f))
    return times


def wall_and_cpu(run: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds (all threads together) of
    ``repeats`` calls of ``run``: the A/B scripts' measure, since on a shared machine CPU
    time moves less than wall time."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def fmt(x: Optional[float], spec: str = ",.0f") -> str:
    return "n/a" if x is None else format(x, spec)


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}x"


def print_table(title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"== {title}")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print()


