"""The core's activation and loss tables as the Python package reads them
(``fn.names``), and the layer-kind interface (``Layer.numpy_forward``,
``onnx_nodes``, ``torch_layout``) that keeps kind-specific code in the kinds."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import ferronn as fn
from ferronn import _core, diagnostics as dg, names
from ferronn.errors import ConfigError, ExportError, UnknownNameError
from ferronn.layers import elementwise

ACTS = names.activations()
LOSSES = names.losses()


def _core_message(call: Any) -> str:
    with pytest.raises(UnknownNameError) as info:
        call()
    return str(info.value)


# ------------------------------------------------------------------ the tables

def test_tables_are_typed_frozen_objects():
    relu = names.activation("relu")
    assert isinstance(relu, _core.ActivationInfo) and isinstance(names.loss("mse"), _core.LossInfo)
    with pytest.raises(AttributeError):
        relu.name = "other"  # type: ignore[misc]
    assert [a.name for a in ACTS] == [a.name for a in _core.activation_table()]
    assert "silu" in repr(names.activation("swish")) and "swish" in repr(names.activation("swish"))


@pytest.mark.parametrize("info", ACTS, ids=lambda a: a.name)
def test_every_activation_alias_resolves_to_its_canonical_name(info):
    x = np.linspace(-3, 3, 13, dtype=np.float32)
    for alias in (info.name, *info.aliases):
        for spelling in (alias, alias.upper()):
            assert names.activation(spelling) is info
        # The core computes the same function under every name.
        np.testing.assert_array_equal(fn.functional.activation(alias, x), fn.functional.activation(info.name, x))
        assert fn.Activation(alias).name == info.name


@pytest.mark.parametrize("info", LOSSES, ids=lambda l: l.name)
def test_every_loss_alias_resolves_to_its_canonical_name(info):
    out = np.array([[0.2, -1.0], [1.5, 0.3]], dtype=np.float32)
    y = np.array([1, 0]) if info.uses_labels else np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    want = fn.functional.loss(info.name, out, y)
    for alias in info.aliases:
        assert names.loss(alias) is info and names.loss(alias.upper()) is info
        got = fn.functional.loss(alias, out, y)  # the core parses the alias the same way
        assert got[0] == want[0] and np.array_equal(got[1], want[1])


def test_loss_rows_say_what_the_training_code_needs():
    rows = {l.name: (l.uses_labels, l.proba, l.takes_logits) for l in LOSSES}
    assert rows == {"cross_entropy": (True, "softmax", True), "binary_cross_entropy": (False, "sigmoid", True),
                    "mse": (False, None, False), "nll": (True, "exp", False),
                    "poisson_nll": (False, None, True)}
    assert names.loss("sparse_categorical_crossentropy").name == "cross_entropy"
    assert names.loss("bce").name == names.loss("binary_crossentropy").name == "binary_cross_entropy"
    assert names.loss("mean_squared_error").name == "mse"
    assert names.loss("poisson_nll_loss").name == "poisson_nll"


@pytest.mark.parametrize("info", [a for a in ACTS if a.takes_alpha], ids=lambda a: a.name)
def test_default_alpha_is_what_the_kernel_uses(info):
    x = np.linspace(-4, 4, 33, dtype=np.float32)
    np.testing.assert_array_equal(fn.functional.activation(info.name, x),
                                  fn.functional.activation(info.name, x, info.default_alpha))
    assert fn.Activation(info.name).alpha == info.default_alpha


def test_alpha_rows_and_properties():
    assert {a.name: a.default_alpha for a in ACTS if a.takes_alpha} == {"leaky_relu": 0.01, "elu": 1.0}
    assert all(a.default_alpha is None for a in ACTS if not a.takes_alpha)
    assert {a.name for a in ACTS if not a.relu_family} == {"identity", "sigmoid", "tanh"}
    assert {a.name for a in ACTS if a.kinked} == {"relu", "leaky_relu", "elu"}
    assert all(a.elementwise for a in ACTS)
    assert dg.RELU_FAMILY == ("relu", "leaky_relu", "elu", "prelu")


def test_unknown_names_fail_with_the_cores_message():
    """The Python lookups and the core reject a name with the same message, listing the same names."""
    x = np.zeros(1, dtype=np.float32)
    core = _core_message(lambda: _core.activation_forward("relu6", x))
    assert _core_message(lambda: names.activation("relu6")) == core
    assert _core_message(lambda: fn.Dense(3, activation="relu6")) == core
    for a in ACTS:
        assert re.search(rf"\b{a.name}\b", core)
    core = _core_message(lambda: _core.loss_and_grad("hinge", np.zeros((1, 2), np.float32), np.zeros(1, np.int64)))
    assert _core_message(lambda: names.loss("hinge")) == core
    for l in LOSSES:
        assert l.name in core and all(alias in core for alias in l.aliases)
    assert "unknown loss 'hinge'; expected one of:" in core


def test_alpha_for_a_function_without_one_fails_as_in_the_core():
    with pytest.raises(ConfigError) as py:
        fn.Activation("tanh", alpha=0.5)
    with pytest.raises(ConfigError) as core:
        _core.activation_forward("tanh", np.zeros(1, dtype=np.float32), 0.5)
    assert str(py.value) == str(core.value)


def test_package_lists_come_from_the_core():
    assert fn.functional.ACTIVATIONS == tuple(n for a in _core.activation_table() for n in (a.name, *a.aliases))


@pytest.mark.parametrize("info", ACTS, ids=lambda a: a.name)
def test_every_activation_has_its_forms_outside_the_core(info):
    """A new activation in the core's table needs its float64, ONNX and PyTorch forms."""
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(elementwise.float64(info.name, x, None),
                               fn.functional.activation(info.name, x.astype(np.float32)), rtol=1e-5, atol=1e-6)
    assert elementwise.torch_module(info.name, None).startswith("nn.")
    model = fn.Sequential([fn.Dense(3, activation=info.name, input_dim=2)])
    model.compile(loss="mse")
    assert fn.onnx_export.to_onnx(model) is not None


def test_every_loss_has_a_float64_reference():
    assert set(dg.LOSSES_64) == {l.name for l in LOSSES}


# ------------------------------------------------------------------ the layer-kind interface

class Bare(fn.Layer):
    """A layer kind that implements none of the tool methods."""

    def spec(self) -> dict[str, Any]:
        return {"type": "bare"}

    def __repr__(self) -> str:
        return "Bare()"


class _FakeRef:
    training = False


def test_a_kind_without_the_interface_gets_named_errors():
    layer = Bare()
    with pytest.raises(ConfigError, match=r"the diagnostics do not know the layer Bare\(\) \(layers\.4\)"):
        layer.numpy_forward(np.zeros((1, 2)), {}, _FakeRef(), "layers.4")
    with pytest.raises(ExportError, match=r"layer layers\.4 \(Bare\(\), Bare\) cannot be exported to ONNX; "
                                          r"supported: .*Dense.*Residual"):
        layer.onnx_nodes(None, "x", "layers.4")
    with pytest.raises(ExportError, match=r"layer layers\.4 \(Bare\(\), Bare\) has no PyTorch equivalent.*"
                                          r"supported: .*Dense.*Residual"):
        layer.torch_layout(None, 2, "layers.4", "4")


def test_onnx_export_screens_nested_unknown_kinds_first(tmp_path):
    m = fn.Sequential([fn.Dense(4, input_dim=3), fn.Residual([fn.ReLU(), Bare()])])
    with pytest.raises(ExportError, match=r"layers\.1\.block\.1 \(Bare\(\)"):
        fn.onnx_export.to_onnx(m)


def test_aliases_export_like_their_canonical_functions():
    """An alias in a Dense layer is the same function to every tool."""
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    swish = fn.Sequential([fn.Dense(4, activation="swish", input_dim=3), fn.Dense(2, activation="linear")], seed=0)
    swish.compile(loss="mse")
    src = fn.torch_layout.torch_source(swish)
    assert "nn.Linear(3, 4),\n    nn.SiLU(),\n    nn.Linear(4, 2),\n)" in src
    assert list(fn.torch_layout.torch_names(swish)) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    outs = dg.layer_outputs(swish, x, dtype=np.float64)
    np.testing.assert_allclose(outs["layers.1"], swish.predict_raw(x), rtol=1e-4, atol=1e-5)
    assert dg.activation_stats(swish, x)["layers.0"]["activation"] == "silu"


# ----------------------------------------------------------------- the model reads the loss table

def test_every_loss_name_compiles_to_its_canonical_loss_and_predicts_by_its_table_row():
    X, y = fn.datasets.digits()
    for info in fn.names.losses():
        for name in (info.name, *info.aliases, info.name.upper()):
            m = fn.Sequential([fn.Dense(10)] + ([fn.LogSoftmax()] if info.proba == "exp" else []), input_dim=64)
            m.compile(loss=name)
            assert m.loss == info.name
        task = fn.names.loss_task(info.name)
        targets = y[:40] if task == "labels" else (
            (y[:40, None] == np.arange(10)).astype(np.float32) if task == "binary" else X[:40, :10])
        m.fit(X[:40], targets, epochs=1, verbose=0)
        raw = m.predict_raw(X[:5])
        if info.proba is None:
            with pytest.raises(fn.errors.ConfigError, match="predict_proba needs a classification loss"):
                m.predict_proba(X[:5])
            np.testing.assert_array_equal(m.predict(X[:5]), raw)
        else:
            p = m.predict_proba(X[:5])
            expected = {"softmax": lambda r: np.exp(r - r.max(1, keepdims=True)) / np.exp(r - r.max(1, keepdims=True)).sum(1, keepdims=True),
                        "exp": np.exp, "sigmoid": lambda r: 1 / (1 + np.exp(-r))}[info.proba](raw.astype(np.float64))
            np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)


def test_a_file_naming_its_loss_by_an_alias_loads_with_the_canonical_name(tmp_path):
    import json

    from ferronn import _core

    m = fn.Sequential([fn.Dense(3)], input_dim=4)
    m.compile(loss="mse")
    spec = json.loads(m._require_built("t").spec_json)
    spec["loss"] = "mean_squared_error"
    net = _core.Network(json.dumps(spec))
    again = fn.Sequential._from_net(net, m._extra())
    assert again.loss == "mse" and again.predict(np.ones((2, 4), np.float32)).shape == (2, 3)
