"""The gallery examples 01-05 run in fast mode, show what their docstrings claim, and
write their figures (non-empty PNG files)."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from gallery_runner import PNG_MAGIC, load_example  # noqa: E402


def run(name: str, out_dir: pathlib.Path) -> dict:
    module = load_example(name)
    assert module.__doc__ and len(module.__doc__) > 300          # the idea, explained
    result = module.main(fast=True, out_dir=str(out_dir))
    assert result["figures"]
    for path in result["figures"]:
        p = pathlib.Path(path)
        assert p.parent == out_dir
        data = p.read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC), path
    return result


def test_01_perceptron_learns_and_or_not_xor_and_mlp_solves_xor(tmp_path):
    r = run("01_perceptron_xor", tmp_path)
    for gate in ("AND", "OR"):
        assert r["perceptron"][gate]["converged"] and r["perceptron"][gate]["accuracy"] == 1.0
        assert not r["perceptron"][gate]["warned"]
    xor = r["perceptron"]["XOR"]
    assert not xor["converged"] and xor["warned"] and xor["accuracy"] <= 0.75
    assert r["mlp"]["accuracy"] == 1.0


def test_02_deep_linear_net_is_one_matrix_and_relu_fits_spirals(tmp_path):
    r = run("02_why_nonlinearity", tmp_path)
    assert r["collapsed_matrix"].shape == (2, 2)
    assert r["rel_diff"] < 1e-5                      # float32 rounding, nothing more
    assert r["linear_accuracy"] < 0.7                 # near chance (50%): a line cannot follow spirals
    assert r["linear_accuracy"] <= r["best_line_accuracy"] + 1e-9 < 0.7
    assert r["relu_accuracy"] > 0.95
    assert r["relu_accuracy"] - r["linear_accuracy"] > 0.25


def test_03_activations_compared_sigmoid_slowest_relu_family_fast(tmp_path):
    r = run("03_activations_compared", tmp_path)
    loss = r["final_loss"]
    assert set(loss) == {"sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu"}
    assert max(loss, key=loss.get) == "sigmoid"
    for act in ("relu", "leaky_relu", "gelu", "silu"):
        assert loss[act] < 0.2 < loss["sigmoid"]
        assert r["final_accuracy"][act] > 0.95
    assert len(r["figures"]) == 2                    # the learning curves and the activation gallery


def test_04_sigmoid_gradients_vanish_relu_gradients_do_not(tmp_path):
    r = run("04_vanishing_gradients", tmp_path)
    assert len(r["sigmoid_grad_norms"]) == len(r["relu_grad_norms"]) == 10
    assert r["sigmoid_first"] * 100 <= r["relu_first"]          # >= 100x below the ReLU net's first layer
    assert r["sigmoid_first"] * 1000 <= r["sigmoid_last"]       # orders of magnitude below its own last layer
    assert 0.1 < r["relu_first"] / r["relu_last"] < 10          # ReLU: the same order throughout
    assert r["final_accuracy"]["relu"] > 0.5 > r["final_accuracy"]["sigmoid"]


def test_05_initialisation_symmetry_vanishing_exploding(tmp_path):
    r = run("05_initialisation", tmp_path)
    assert r["zeros_column_diff"] == 0.0                        # the first layer's units stay identical
    std = r["std"]
    for act in ("tanh", "relu"):
        assert std[f"{act}/too small (std 0.001)"][-1] < 1e-12   # the signal vanishes
        assert all(s == 0.0 for s in std[f"{act}/zeros"])
        assert 0.01 < std[f"{act}/He"][-1] < 10                 # He keeps it
    assert std["relu/too large (std 3)"][-1] > 1e6              # explodes through ReLU layers
    assert r["saturated"]["tanh/too large (std 3)"] > 0.5       # saturates tanh
    assert std["relu/Xavier"][-1] < std["relu/Xavier"][0] / 4   # Xavier halves the ReLU variance per layer
    loss = r["final_loss"]
    assert r["diverged"]["relu/too large (std 3)"] and math.isnan(loss["relu/too large (std 3)"])
    for act in ("tanh", "relu"):
        assert loss[f"{act}/zeros"] == pytest.approx(np.log(10), abs=0.01)   # only the class prior is learned
        assert loss[f"{act}/He"] < 0.5 and loss[f"{act}/Xavier"] < 1.0
        assert loss[f"{act}/He"] < loss[f"{act}/zeros"] - 1.5
