"""Every example runs and shows what its docstring claims."""

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def run(name):
    proc = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_xor_example_single_neuron_fails_mlp_succeeds():
    out = run("xor.py")
    assert "one neuron" in out and "2-8-1 tanh   [0, 1, 1, 0] accuracy 100%" in out
    neuron_line = next(line for line in out.splitlines() if line.startswith("one neuron"))
    assert "accuracy 100%" not in neuron_line


def test_digits_example_reaches_95_percent_and_reloads():
    out = run("digits.py")
    acc = float(out.split("test accuracy ")[1].split("%")[0])
    assert acc >= 95.0
    assert "reloaded model predicts identically: True" in out
