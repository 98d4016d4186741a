"""Examples 06-11 (the second half of the gallery): each runs in fast mode, shows what
its docstring claims, and writes its figures as non-empty PNG files."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from gallery_runner import EXAMPLES, assert_figures, run_example  # noqa: E402


def test_06_dying_relu_detected_and_fixed(tmp_path):
    r = run_example("06_dying_relu", tmp_path)
    for cause in ("large_lr", "negative_bias"):
        assert r[cause]["broken"]["dead_fraction"] > 0.5, cause
        assert r[cause]["fixed"]["dead_fraction"] < 0.1, cause
        # a dead network is at chance; the fixed one learns
        assert r[cause]["broken"]["val_accuracy"] < 0.3, cause
        assert r[cause]["fixed"]["val_accuracy"] > 0.9, cause
    # the large rate kills units during training; the negative bias kills them from the start
    assert r["large_lr"]["broken"]["dead_fraction_start"] < 0.1
    assert r["negative_bias"]["fixed"]["dead_fraction_start"] > 0.5
    assert_figures(r, tmp_path, ["06_dead_units.png", "06_learning_curves.png"])


def test_07_cures_shrink_the_overfitting_gap(tmp_path):
    r = run_example("07_overfitting", tmp_path)
    gaps = r["gaps"]
    assert set(gaps) == {"no cure", "dropout 0.5", "weight decay (AdamW)", "early stopping", "batch norm"}
    for name, gap in gaps.items():
        if name != "no cure":
            assert gap < gaps["no cure"], (name, gaps)
    assert gaps["no cure"] > 0.2
    # more capacity, more overfitting
    assert r["capacity"]["3x256"]["gap"] > 5 * r["capacity"]["1x4"]["gap"]
    assert r["variants"]["early stopping"]["epochs"] < r["variants"]["no cure"]["epochs"]
    assert_figures(r, tmp_path, ["07_capacity.png", "07_learning_curves.png", "07_gaps.png",
                                 "07_decision_boundaries.png"])


def test_08_entropy_rises_with_temperature(tmp_path):
    r = run_example("08_softmax_temperature", tmp_path)
    assert r["temperatures"] == [0.5, 1.0, 2.0]
    h = r["entropies"]
    assert h[0] < h[1] < h[2] < np.log(6)
    for p in r["probabilities"].values():
        assert abs(sum(p) - 1.0) < 1e-5
    assert len(set(r["top_class"])) == 1  # the temperature never changes the argmax
    assert_figures(r, tmp_path, ["08_softmax_temperature.png"])


def test_09_gated_units_match_parameters_and_learn(tmp_path):
    r = run_example("09_gated_units", tmp_path)
    counts = r["n_params"]
    assert set(counts) == {"SwiGLU", "GeGLU", "ReGLU", "ReLU MLP"}
    assert (max(counts.values()) - min(counts.values())) / min(counts.values()) < 0.05
    for name, acc in r["val_accuracy"].items():
        assert acc > 0.9, (name, acc)
    assert_figures(r, tmp_path, ["09_gated_units.png"])


def test_10_error_falls_with_width(tmp_path):
    r = run_example("10_universal_approximation", tmp_path)
    assert r["widths"] == [2, 8, 32, 128]
    for target, errors in r["errors"].items():
        assert all(a > b for a, b in zip(errors, errors[1:])), (target, errors)
    assert r["errors"]["sin(x)"][-1] < 0.01 * r["errors"]["sin(x)"][0]
    budgets = [d["n_params"] for d in r["depth"].values()]
    assert max(budgets) / min(budgets) < 1.25  # the depth comparison keeps the budget fixed
    assert_figures(r, tmp_path, ["10_width.png", "10_depth_vs_width.png"])


def test_11_classifier_and_confusion_matrix(tmp_path):
    r = run_example("11_fashion_mnist", tmp_path)  # fast mode: the embedded digits
    assert r["dataset"].startswith("digits")
    assert r["test_accuracy"] > 0.9
    cm = np.asarray(r["confusion_matrix"])
    assert cm.shape == (10, 10)
    assert cm.sum() == r["n_test"]
    assert np.trace(cm) / cm.sum() == pytest.approx(r["test_accuracy"])
    assert_figures(r, tmp_path, ["11_digits_learning_curves.png", "11_digits_confusion_matrix.png",
                                 "11_digits_misclassified.png"])


def test_command_line_flags(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "08_softmax_temperature.py"), "--fast", "--out-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "entropy" in proc.stdout
    assert (tmp_path / "08_softmax_temperature.png").stat().st_size > 2000
