"""ferronn.plot: every function returns a labelled matplotlib Figure with the right panels and
lines, works on tiny inputs, and rejects bad inputs with ferronn's named errors; save writes a PNG."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import ferronn as fn  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def panels(fig):
    """The plotting axes of a figure (colour bars left out)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def assert_labelled(fig, n_panels=None):
    assert isinstance(fig, Figure)
    axes = panels(fig)
    if n_panels is not None:
        assert len(axes) == n_panels
    for ax in axes:
        assert ax.get_xlabel().strip(), f"panel {ax.get_title()!r} has no x label"
        assert ax.get_ylabel().strip(), f"panel {ax.get_title()!r} has no y label"
    return axes


def assert_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


@pytest.fixture(scope="module")
def xor_model():
    X, y = fn.datasets.xor()
    model = fn.Sequential([fn.Dense(4, activation="tanh"), fn.Dense(2)], seed=0)
    model.compile(optimizer=fn.optim.Adam(0.05), loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=5, batch_size=4, validation_data=(X, y), seed=0, verbose=0)
    return model, history, X, y


# ----------------------------------------------------------------- import

def test_import_ferronn_does_not_import_matplotlib():
    code = ("import sys, ferronn as fn; assert 'matplotlib' not in sys.modules; "
            "p = fn.plot; assert 'matplotlib' in sys.modules and p.__name__ == 'ferronn.plot'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_plot_is_lazy_attribute_and_unknown_attribute_still_fails():
    assert fn.plot is sys.modules["ferronn.plot"]
    with pytest.raises(AttributeError):
        fn.no_such_thing  # noqa: B018


# ----------------------------------------------------------------- learning curves

def test_learning_curves_one_panel_per_metric_train_and_val(xor_model):
    _, history, _, _ = xor_model
    fig = fn.plot.learning_curves(history)
    axes = assert_labelled(fig, 2)                      # loss, accuracy; the lr is not a metric
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy"]
    for ax in axes:
        assert len(ax.get_lines()) == 2                 # train and validation
        assert ax.get_legend() is not None
        assert ax.get_xlabel() == "epoch"
        x = ax.get_lines()[0].get_xdata()
        assert list(x) == [1, 2, 3, 4, 5]
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), history.history[ax.get_ylabel()])


def test_learning_curves_chosen_metrics_and_plain_dicts():
    fig = fn.plot.learning_curves({"loss": [1.0, 0.5], "lr": [0.1, 0.1]}, metrics="loss")
    (ax,) = assert_labelled(fig, 1)
    assert len(ax.get_lines()) == 1 and ax.get_legend() is None   # one line: no legend
    assert len(panels(fn.plot.learning_curves({"loss": [1.0], "lr": [0.1]}, metrics=["loss", "lr"]))) == 2
    assert len(panels(fn.plot.learning_curves({"val_loss": [0.3]}))) == 1   # only validation values


def test_learning_curves_bad_inputs():
    with pytest.raises(fn.UnknownNameError, match="accuracy"):
        fn.plot.learning_curves({"loss": [1.0]}, metrics=["accuracy"])
    with pytest.raises(fn.EmptyInputError):
        fn.plot.learning_curves({"loss": []})
    with pytest.raises(fn.ConfigError):
        fn.plot.learning_curves([1.0, 2.0])
    with pytest.raises(fn.ConfigError):
        fn.plot.learning_curves({"loss": [1.0]}, metrics=[])


# ----------------------------------------------------------------- decision boundaries

def test_decision_boundary_classifier(xor_model):
    model, _, X, y = xor_model
    fig = fn.plot.decision_boundary(model, X, y, resolution=20, title="xor")
    (ax,) = assert_labelled(fig, 1)
    assert ax.get_title() == "xor"
    assert ax.get_legend() is not None and len(ax.get_legend().get_texts()) == 2   # class 0, class 1
    lo, hi = ax.get_xlim()
    assert lo < X[:, 0].min() and hi > X[:, 0].max()                               # padded around X


def test_decision_boundary_into_given_axes_and_other_models(xor_model):
    model, _, X, y = xor_model
    fig = Figure()
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    assert fn.plot.decision_boundary(model, X, y, ax=ax2, resolution=10) is fig
    assert ax2.get_xlabel() and not ax1.get_xlabel()
    with pytest.warns(fn.perceptron.ConvergenceWarning):
        clf = fn.Perceptron(max_epochs=5).fit(X, y)
    assert_labelled(fn.plot.decision_boundary(clf, X, y, resolution=10), 1)
    one = fn.plot.decision_boundary(clf, X[:1], y[:1], resolution=5)            # a single point
    assert_labelled(one, 1)


def test_decision_boundary_regression_gets_a_colorbar():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 2)).astype(np.float32)
    t = X[:, 0] - X[:, 1]
    model = fn.Sequential([fn.Dense(1)], seed=0)
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, t, epochs=2, verbose=0)
    fig = fn.plot.decision_boundary(model, X, t, resolution=12)
    assert_labelled(fig, 1)
    assert len(fig.axes) == 2                                                     # the panel and its colour bar


def test_decision_boundary_bad_inputs(xor_model):
    model, _, X, y = xor_model
    with pytest.raises(fn.ShapeError):
        fn.plot.decision_boundary(model, np.zeros((4, 2, 1)), y)                  # 3-D X
    with pytest.raises(fn.ShapeError):
        fn.plot.decision_boundary(model, np.zeros((4, 3)), y)                     # 3 features
    with pytest.raises(fn.ShapeError):
        fn.plot.decision_boundary(model, X, y[:3])
    with pytest.raises(fn.EmptyInputError):
        fn.plot.decision_boundary(model, np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(fn.DTypeError):
        fn.plot.decision_boundary(model, X, np.array(["a", "b", "a", "b"]))
    with pytest.raises(fn.ConfigError):
        fn.plot.decision_boundary(model, X, y, resolution=1)
    with pytest.raises(fn.ConfigError):
        fn.plot.decision_boundary(object(), X, y)
    unfitted = fn.Sequential([fn.Dense(2)])
    unfitted.compile()
    with pytest.raises(fn.NotFittedError):
        fn.plot.decision_boundary(unfitted, X, y)


def test_decision_boundary_grid(xor_model):
    model, _, X, y = xor_model
    fig = fn.plot.decision_boundary_grid([("a", model), ("b", model), ("c", model)], X, y, ncols=2, resolution=8)
    axes = assert_labelled(fig, 3)
    assert [ax.get_title() for ax in axes] == ["a", "b", "c"]
    assert axes[0].get_legend() is not None and axes[1].get_legend() is None
    assert len(panels(fn.plot.decision_boundary_grid([("only", model)], X, y, resolution=4))) == 1
    with pytest.raises(fn.EmptyInputError):
        fn.plot.decision_boundary_grid([], X, y)
    with pytest.raises(fn.ConfigError):
        fn.plot.decision_boundary_grid([model], X, y)
    with pytest.raises(fn.ConfigError):
        fn.plot.decision_boundary_grid([("a", model)], X, y, ncols=0)
    with pytest.raises(fn.ShapeError):
        fn.plot.decision_boundary_grid([("a", model)], np.zeros((4, 2, 2)), y)


# ----------------------------------------------------------------- activations

def test_activation_gallery_default_and_custom():
    fig = fn.plot.activation_gallery()
    axes = assert_labelled(fig, 8)
    assert [ax.get_title() for ax in axes] == ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu",
                                               "softplus"]
    for ax in axes:
        assert len(ax.get_lines()) >= 2 and ax.get_legend() is not None
    relu = axes[2]
    f, df = (line for line in relu.get_lines() if line.get_label() in ("f(x)", "f'(x)"))
    x = f.get_xdata()
    np.testing.assert_allclose(f.get_ydata(), np.maximum(x, 0), atol=1e-6)
    np.testing.assert_allclose(df.get_ydata()[x > 0.1], 1.0)
    assert len(panels(fn.plot.activation_gallery("tanh"))) == 1
    assert len(panels(fn.plot.activation_gallery(["relu", "gelu_tanh", "identity"]))) == 3


def test_activation_gallery_bad_names():
    with pytest.raises(fn.UnknownNameError):
        fn.plot.activation_gallery(["relu", "nope"])
    with pytest.raises(fn.ConfigError):
        fn.plot.activation_gallery([])


# ----------------------------------------------------------------- gradients, dead units

def test_gradient_flow_from_a_monitor():
    X, y = fn.datasets.xor()
    model = fn.Sequential([fn.Dense(4, activation="relu"), fn.Dense(4, activation="relu"), fn.Dense(2)], seed=0)
    model.compile(optimizer="adam", loss="cross_entropy")
    monitor = fn.diagnostics.GradientMonitor(every=1)
    model.fit(X, y, epochs=2, batch_size=2, verbose=0, callbacks=[monitor])
    fig = fn.plot.gradient_flow(monitor)
    (ax,) = assert_labelled(fig, 1)
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["layers.0", "layers.1", "layers.2"]
    assert ax.get_legend() is not None
    assert len(panels(fn.plot.gradient_flow(monitor.history))) == 1


def test_gradient_flow_bad_inputs():
    with pytest.raises(fn.EmptyInputError):
        fn.plot.gradient_flow(fn.diagnostics.GradientMonitor())
    with pytest.raises(fn.ConfigError):
        fn.plot.gradient_flow([1, 2, 3])


def test_dead_units_over_time():
    fig = fn.plot.dead_units_over_time([1, 2, 3], {"layers.0": [0.0, 0.1, 0.2], "layers.2": [0.0, 0.0, 0.5]})
    (ax,) = assert_labelled(fig, 1)
    assert len(ax.get_lines()) == 2 and ax.get_legend() is not None
    (single,) = assert_labelled(fn.plot.dead_units_over_time([0], {"layers.0": [0.25]}), 1)
    assert len(single.get_lines()) == 1
    with pytest.raises(fn.ShapeError):
        fn.plot.dead_units_over_time([1, 2], {"layers.0": [0.1]})
    with pytest.raises(fn.EmptyInputError):
        fn.plot.dead_units_over_time([], {"layers.0": []})
    with pytest.raises(fn.EmptyInputError):
        fn.plot.dead_units_over_time([1], {})
    with pytest.raises(fn.ConfigError):
        fn.plot.dead_units_over_time([1], [0.1])


# ----------------------------------------------------------------- classification results

def test_confusion_matrix_counts_and_normalised():
    y_true, y_pred = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0]
    fig = fn.plot.confusion_matrix(y_true, y_pred, class_names=["a", "b", "c"])
    (ax,) = assert_labelled(fig, 1)
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["1", "1", "0", "0", "1", "0", "1", "0", "2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted label", "true label")
    norm = fn.plot.confusion_matrix(y_true, y_pred, normalize=True)
    assert [t.get_text() for t in panels(norm)[0].texts][:3] == ["0.50", "0.50", "0.00"]
    tiny = fn.plot.confusion_matrix([0], [0])
    assert [t.get_text() for t in panels(tiny)[0].texts] == ["1"]
    with pytest.raises(fn.LabelError):
        fn.plot.confusion_matrix([0, 3], [0, 1], class_names=["a", "b"])
    with pytest.raises(fn.ShapeError):
        fn.plot.confusion_matrix([0, 1], [0])


def test_image_grid_titles_and_mistakes_in_red():
    X, y = fn.datasets.digits()
    pred = y[:10].copy()
    pred[3] = (pred[3] + 1) % 10
    fig = fn.plot.image_grid(X[:10], true=y[:10], pred=pred, image_shape=(8, 8), ncols=5)
    axes = panels(fig)
    assert len(axes) == 10
    assert axes[0].get_title() == f"{y[0]}/{y[0]}"
    assert axes[3].title.get_color() == "red" and axes[0].title.get_color() == "black"
    assert fig.get_suptitle()
    named = fn.plot.image_grid(X[:3].reshape(3, 8, 8), true=y[:3], class_names=[str(i) * 2 for i in range(10)])
    assert [ax.get_title() for ax in panels(named)] == [str(v) * 2 for v in y[:3]]
    assert len(panels(fn.plot.image_grid(X[:50], image_shape=(8, 8), max_images=12))) == 12
    assert len(panels(fn.plot.image_grid(X[:1], image_shape=(8, 8)))) == 1


def test_image_grid_bad_inputs():
    X, y = fn.datasets.digits()
    with pytest.raises(fn.ShapeError):
        fn.plot.image_grid(X[:4])                              # 64 values are not 28x28
    with pytest.raises(fn.ShapeError):
        fn.plot.image_grid(np.zeros((2, 2, 2, 2)))
    with pytest.raises(fn.ShapeError):
        fn.plot.image_grid(X[:4], true=y[:2], image_shape=(8, 8))
    with pytest.raises(fn.EmptyInputError):
        fn.plot.image_grid(np.zeros((0, 4)), image_shape=(2, 2))
    with pytest.raises(fn.ConfigError):
        fn.plot.image_grid(X[:4], image_shape=(8, 8), ncols=0)


# ----------------------------------------------------------------- save

def test_save_writes_a_png_and_creates_folders(tmp_path, xor_model):
    model, history, X, y = xor_model
    figures = [
        fn.plot.learning_curves(history),
        fn.plot.decision_boundary(model, X, y, resolution=10),
        fn.plot.decision_boundary_grid([("a", model), ("b", model)], X, y, resolution=8),
        fn.plot.activation_gallery(["relu", "tanh"]),
        fn.plot.dead_units_over_time([1, 2], {"layers.0": [0.1, 0.2]}),
        fn.plot.confusion_matrix([0, 1, 1], [0, 1, 0]),
        fn.plot.image_grid(np.eye(4), image_shape=(2, 2)),
    ]
    for i, fig in enumerate(figures):
        path = fn.plot.save(fig, tmp_path / "deep" / "er" / f"fig{i}.png", dpi=50)
        assert isinstance(path, str) and path.endswith(f"fig{i}.png")
        assert_png(path)
    with pytest.raises(fn.ConfigError):
        fn.plot.save("not a figure", tmp_path / "x.png")
    with pytest.raises(fn.ConfigError):
        fn.plot.save(figures[0], tmp_path / "x.png", dpi=0)
