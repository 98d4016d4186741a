"""ONNX export: onnxruntime computes what ``predict_raw`` computes, for every exportable
layer kind; the files pass onnx.checker; layers without an ONNX form raise ExportError."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ferronn as fn
from ferronn.errors import ExportError, NotFittedError

D, N = 6, 64
_rng = np.random.default_rng(5)
X = _rng.normal(size=(N, D)).astype(np.float32)
Y = np.arange(N) % 3
# Inputs far from zero too: the saturated ends of softplus, sigmoid, tanh, gelu and softmax.
X_TEST = np.concatenate([X[:16], 8.0 * X[16:24], np.linspace(-40, 40, 8 * D, dtype=np.float32).reshape(8, D)])

ACTS = ["relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "softplus", "identity"]

MODELS: dict[str, Any] = {
    "dense_fused_activations": lambda: [fn.Dense(7, activation=a) for a in ACTS] + [fn.Dense(3)],
    "dense_alpha": lambda: [fn.Dense(7, activation="leaky_relu", alpha=0.3), fn.Dense(7, activation=fn.ELU(0.6)),
                            fn.Dense(3)],
    "activation_layers": lambda: [fn.Dense(7), fn.ReLU(), fn.Dense(7), fn.LeakyReLU(0.2), fn.ELU(0.5), fn.GELU(),
                                  fn.GELU(approximate="tanh"), fn.SiLU(), fn.Sigmoid(), fn.Tanh(), fn.Softplus(),
                                  fn.Identity(), fn.Dense(3)],
    "softmax": lambda: [fn.Dense(7, activation="tanh"), fn.Dense(3), fn.Softmax()],
    "softmax_temperature": lambda: [fn.Dense(7, activation="tanh"), fn.Dense(3), fn.Softmax(temperature=0.4)],
    "log_softmax_temperature": lambda: [fn.Dense(7, activation="relu"), fn.Dense(3), fn.LogSoftmax(temperature=3.0)],
    "prelu": lambda: [fn.Dense(7), fn.PReLU(init=0.1), fn.Dense(7), fn.PReLU(shared=True), fn.Dense(3)],
    "gated": lambda: [fn.GLU(6), fn.SwiGLU(6), fn.GeGLU(6), fn.ReGLU(5), fn.Gated(4, fn.LeakyReLU(0.3)),
                      fn.Gated(4, "gelu_tanh"), fn.Dense(3)],
    "batch_norm": lambda: [fn.Dense(7), fn.BatchNorm(momentum=0.3, eps=1e-3), fn.ReLU(), fn.Dense(3), fn.BatchNorm()],
    "layer_norm": lambda: [fn.Dense(7, activation="relu"), fn.LayerNorm(), fn.Dense(3), fn.LayerNorm(eps=1e-3)],
    "rms_norm": lambda: [fn.Dense(7, activation="silu"), fn.RMSNorm(), fn.Dense(3), fn.RMSNorm(eps=1e-4)],
    "dropout": lambda: [fn.Dense(7, activation="relu"), fn.Dropout(0.5), fn.Dense(3)],
    "residual": lambda: [fn.Residual([fn.LayerNorm(), fn.Dense(6, activation="relu"), fn.Dropout(0.1)]),
                         fn.Residual([fn.Dense(9, activation="gelu"), fn.BatchNorm()]),  # projection 6 -> 9
                         fn.Residual([fn.RMSNorm(), fn.Residual([fn.SwiGLU(9), fn.PReLU()])]), fn.Dense(3)],
}


def trained(name: str, loss: str = "mse") -> fn.Sequential:
    m = fn.Sequential(MODELS[name](), seed=4)
    m.compile(optimizer=fn.optim.Adam(1e-2), loss=loss)
    target = Y if loss == "cross_entropy" else np.eye(3, dtype=np.float32)[Y]
    m.fit(X, target, epochs=2, batch_size=16, seed=0, verbose=0)  # moves BatchNorm's running statistics
    return m


def run_onnx(path) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": X_TEST})[0]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnxruntime_matches_predict_raw(tmp_path, name):
    m = trained(name)
    path = tmp_path / f"{name}.onnx"
    m.export_onnx(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and out.name == "output"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", D]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 3]
    assert "Dropout" not in {n.op_type for n in proto.graph.node}
    got = run_onnx(path)
    np.testing.assert_allclose(got, m.predict_raw(X_TEST), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [17, 18, 20])
def test_other_opsets(tmp_path, opset):
    """Opset 18 moved ReduceMean's axes to an input; 20 adds the Gelu operator."""
    m = fn.Sequential([fn.Dense(7, activation="gelu"), fn.RMSNorm(), fn.GELU(approximate="tanh"), fn.SwiGLU(5),
                       fn.LayerNorm(), fn.Dense(3)], seed=2)
    m.compile(loss="mse")
    m.build(D)
    m.export_onnx(tmp_path / "m.onnx", opset=opset)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert ("Gelu" in {n.op_type for n in proto.graph.node}) == (opset >= 20)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx"), m.predict_raw(X_TEST), rtol=1e-5, atol=1e-5)


def test_in_memory_model_and_classifier():
    m = trained("residual", loss="cross_entropy")
    proto = fn.onnx_export.to_onnx(m)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": X_TEST})[0], m.predict_raw(X_TEST), rtol=1e-5, atol=1e-5)
    assert {i.name for i in proto.graph.initializer} >= {"layers.1.projection.weight", "layers.0.block.1.weight"}


class Mystery(fn.Layer):
    """A layer kind the exporter does not know."""

    def spec(self) -> dict[str, Any]:
        return {"type": "mystery"}

    def __repr__(self) -> str:
        return "Mystery()"


def test_unsupported_layer_raises_naming_it(tmp_path):
    m = fn.Sequential([fn.Dense(4, input_dim=D), fn.Residual([fn.ReLU(), Mystery()])])
    with pytest.raises(ExportError, match=r"layers\.1\.block\.1 \(Mystery\(\)"):
        m.export_onnx(tmp_path / "m.onnx")
    assert issubclass(ExportError, ValueError) and issubclass(ExportError, fn.FerronnError)
    assert "ExportError" in fn.errors.__all__ and fn.ExportError is ExportError
    assert not (tmp_path / "m.onnx").exists()


def test_bad_opset_and_unbuilt_model(tmp_path):
    m = fn.Sequential([fn.Dense(3)])
    with pytest.raises(NotFittedError):
        m.export_onnx(tmp_path / "m.onnx")
    m.compile(loss="mse")
    m.build(D)
    for opset in (16, 10_000, "17", True):
        with pytest.raises(ExportError, match="opset"):
            m.export_onnx(tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()
