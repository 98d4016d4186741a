"""The compiled core picks its SIMD kernels at run time, so one x86-64 build runs on every
x86-64 CPU. These tests run the smoke test (tests/python/smoke_installed.py) natively and
under qemu-user emulating older CPUs, with the ferronn this session imports:

- an AVX2 + FMA CPU (Haswell, no AVX-512) must give the native weights bit for bit: the
  AVX-512 and AVX2 kernels do the same fused multiply-adds in the same order;
- an AVX CPU without FMA (Sandy Bridge) runs the portable fallback, whose separate multiply
  and add round twice: it must train as well, but its last bits may differ.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ferronn as fn

HERE = Path(__file__).resolve().parent
SMOKE = HERE / "smoke_installed.py"
QEMU = shutil.which("qemu-x86_64")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                       reason=f"emulates x86-64 CPUs; this machine is {platform.machine()}"),
    pytest.mark.skipif(QEMU is None, reason="qemu-user is not installed (Debian: apt-get install qemu-user)"),
]

CPUS = {"native": None, "avx2": "Haswell-v4", "avx_no_fma": "SandyBridge-v1"}


def _command(cpu: "str | None", weights: Path) -> list[str]:
    smoke = [sys.executable, str(SMOKE), "--epochs", "3", "--threads", "2", "--save-weights", str(weights)]
    return smoke if cpu is None else [QEMU, "-cpu", cpu, *smoke]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every CPU's run, started together (emulation is single-threaded and slow)."""
    folder = tmp_path_factory.mktemp("cpus")
    env = dict(os.environ, PYTHONPATH=str(Path(fn.__file__).resolve().parents[1]))
    procs = {
        name: subprocess.Popen(_command(cpu, folder / f"{name}.npz"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=folder)
        for name, cpu in CPUS.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name} ({CPUS[name]}) failed:\n{err[-3000:]}"
        report = json.loads(out.strip().splitlines()[-1])
        with np.load(folder / f"{name}.npz") as npz:
            report["weights"] = [npz[k] for k in sorted(npz.files, key=lambda k: int(k.split("_")[1]))]
        results[name] = report
    return results


def test_the_emulated_runs_use_this_sessions_ferronn(runs):
    for name, report in runs.items():
        assert Path(report["file"]).resolve() == Path(fn.__file__).resolve(), name
        assert report["version"] == fn.__version__


def test_avx2_only_cpu_gives_the_native_weights_bit_for_bit(runs):
    native, avx2 = runs["native"], runs["avx2"]
    assert native["accuracy"] > 0.9
    assert avx2["weights_sha256"] == native["weights_sha256"]
    for a, b in zip(native["weights"], avx2["weights"]):
        assert a.tobytes() == b.tobytes()
    assert avx2["accuracy"] == native["accuracy"]


def test_avx_cpu_without_fma_trains_as_well(runs):
    native, plain = runs["native"], runs["avx_no_fma"]
    assert len(plain["weights"]) == len(native["weights"])
    for a, b in zip(native["weights"], plain["weights"]):
        assert a.shape == b.shape
        # rounding differences after 3 epochs of Adam stay far below the weights' scale
        assert np.max(np.abs(a - b)) <= 1e-3 * max(1.0, float(np.max(np.abs(a))))
    assert abs(plain["accuracy"] - native["accuracy"]) <= 0.02
