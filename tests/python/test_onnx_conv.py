"""ONNX export of convolutional models: onnxruntime computes what ``predict_raw``
computes (within 1e-5) for Conv1D/Conv2D (strides, padding modes, dilation, groups,
both data formats), windowed and global pooling, Flatten/Reshape, and Dense and
BatchNorm acting on the last axis of N-D inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ferronn as fn

CF = "channels_first"

# (per-sample input shape, layers)
MODELS: dict[str, Any] = {
    "conv2d_last_cnn": ((9, 8, 2), lambda: [
        fn.Conv2D(4, 3, padding="same", activation="relu"), fn.MaxPool2D(2),
        fn.Conv2D(6, (2, 3), strides=(2, 1), activation="tanh"), fn.Flatten(), fn.Dense(3)]),
    "conv2d_first_cnn": ((2, 9, 8), lambda: [
        fn.Conv2D(4, 3, padding="same", activation="relu", data_format=CF), fn.MaxPool2D(2, data_format=CF),
        fn.Conv2D(6, (2, 3), strides=(2, 1), data_format=CF), fn.Flatten(), fn.Dense(3)]),
    "strides_dilation_groups_last": ((11, 10, 4), lambda: [
        fn.Conv2D(6, 3, strides=2, padding="same", dilation_rate=(1, 2), groups=2, activation="elu"),
        fn.Conv2D(6, (3, 2), padding=((2, 0), (1, 1)), groups=6, use_bias=False),  # depthwise, explicit pads
        fn.AvgPool2D(3, strides=2, padding="same"), fn.Flatten(), fn.Dense(5, activation="gelu"), fn.Dense(2)]),
    "strides_dilation_groups_first": ((4, 11, 10), lambda: [
        fn.Conv2D(6, 3, strides=(1, 2), padding=2, dilation_rate=2, groups=2, data_format=CF),
        fn.MaxPool2D((2, 3), strides=(1, 2), padding="same", data_format=CF),
        fn.AvgPool2D(2, padding="same", data_format=CF), fn.Flatten(), fn.Dense(2)]),
    "global_pools_and_batch_norm": ((7, 6, 3), lambda: [
        fn.Conv2D(5, 3, padding="same"), fn.BatchNorm(momentum=0.3), fn.ReLU(), fn.GlobalAvgPool2D(), fn.Dense(2)]),
    "global_max_first": ((3, 7, 6), lambda: [
        fn.Conv2D(5, 2, data_format=CF, activation="silu"), fn.GlobalMaxPool2D(data_format=CF), fn.Dense(2)]),
    "dense_on_last_axis_and_reshape": ((6, 5, 3), lambda: [
        fn.Conv2D(4, 2, activation="relu"), fn.Dense(3, activation="tanh"), fn.Reshape((5, 12)),
        fn.Dense(2), fn.Flatten(), fn.Dense(2)]),
    "residual_conv_block": ((6, 6, 4), lambda: [
        fn.Residual([fn.Conv2D(4, 3, padding="same", activation="relu"), fn.BatchNorm(), fn.Conv2D(4, 3, padding="same")]),
        fn.ReLU(), fn.GlobalAvgPool2D(), fn.Dense(2)]),
    "conv_output": ((8, 7, 2), lambda: [fn.Conv2D(3, 3, strides=2, padding="same")]),  # N-D output
    "mixed_layouts_and_reshape_between": ((6, 6, 4), lambda: [  # the same flat value read as other shapes
        fn.Conv2D(4, 3, padding="same"), fn.Conv2D(3, 2, data_format=CF), fn.Reshape((5, 3, 3)),
        fn.MaxPool2D(2), fn.Flatten(), fn.Dense(2)]),
    "conv1d_last": ((13, 3), lambda: [
        fn.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"), fn.MaxPool1D(2, padding="same"),
        fn.Conv1D(6, 2, strides=2, groups=2), fn.AvgPool1D(2, strides=1), fn.Flatten(), fn.Dense(2)]),
    "conv1d_first": ((3, 13), lambda: [
        fn.Conv1D(4, 3, padding="same", strides=2, data_format=CF), fn.AvgPool1D(3, padding="same", data_format=CF),
        fn.GlobalMaxPool1D(data_format=CF), fn.Dense(2)]),
    "conv1d_global_avg": ((10, 4), lambda: [fn.Conv1D(5, 4, groups=1), fn.GlobalAvgPool1D(), fn.Dense(2)]),
    # Per-channel statistics and slopes of channels_first images and sequences (BatchNorm(axis=1),
    # PReLU(shared_axes=...)), and a ResNet block whose skip path is a 1x1 strided convolution.
    "batch_norm_channels_first": ((2, 6, 5), lambda: [
        fn.BatchNorm(axis=1), fn.Conv2D(3, 3, data_format=CF), fn.BatchNorm(momentum=0.3, eps=1e-3, axis=1),
        fn.ReLU(), fn.Conv2D(2, 2, data_format=CF), fn.Flatten(), fn.Dense(2)]),
    "batch_norm_channels_first_sequences": ((2, 9), lambda: [
        fn.Conv1D(3, 3, data_format=CF), fn.BatchNorm(axis=1), fn.GlobalMaxPool1D(data_format=CF), fn.Dense(2)]),
    "prelu_per_channel_last": ((6, 5, 2), lambda: [
        fn.Conv2D(3, 3, padding="same"), fn.PReLU(shared_axes=[1, 2]), fn.MaxPool2D(2), fn.Flatten(), fn.Dense(2)]),
    "prelu_per_channel_first": ((2, 6, 5), lambda: [
        fn.Conv2D(3, 3, data_format=CF), fn.PReLU(shared_axes=[2, 3]), fn.Flatten(), fn.Dense(2)]),
    "prelu_per_value_and_shared_on_images": ((5, 4, 2), lambda: [
        fn.Conv2D(3, 2), fn.PReLU(), fn.PReLU(shared_axes=[1, 2, 3]), fn.Flatten(), fn.Dense(2)]),
    "prelu_per_channel_sequences": ((7, 2), lambda: [
        fn.PReLU(shared_axes=[1]), fn.Conv1D(3, 3), fn.Flatten(), fn.Dense(2)]),
    "residual_strided_projection": ((6, 5, 2), lambda: [
        fn.Residual([fn.Conv2D(4, 3, strides=2, padding="same", activation="relu"), fn.Conv2D(4, 3, padding="same")]),
        fn.Flatten(), fn.Dense(2)]),
    "resnet_basic_block_downsample": ((6, 5, 2), lambda: [
        fn.Residual([fn.Conv2D(4, 3, strides=2, padding="same", use_bias=False), fn.BatchNorm(), fn.ReLU(),
                     fn.Conv2D(4, 3, padding="same", use_bias=False), fn.BatchNorm()], projection="batchnorm"),
        fn.ReLU(), fn.GlobalAvgPool2D(), fn.Dense(2)]),
    "resnet_basic_block_downsample_first": ((2, 6, 5), lambda: [
        fn.Residual([fn.Conv2D(4, 3, strides=2, padding=1, data_format=CF), fn.BatchNorm(axis=1), fn.ReLU(),
                     fn.Conv2D(4, 3, padding=1, data_format=CF), fn.BatchNorm(axis=1)], projection="batchnorm"),
        fn.ReLU(), fn.GlobalAvgPool2D(data_format=CF), fn.Dense(2)]),
    "residual_projection_conv1d": ((7, 2), lambda: [
        fn.Residual([fn.Conv1D(4, 3, strides=2, padding="same")]), fn.Flatten(), fn.Dense(2)]),
    # 3x3 stride-1 layers over 32 channels run Winograd's F(2x2, 3x3) in ferronn (odd sizes:
    # partial tiles at the edges), "same" then "valid", in both layouts.
    "winograd_last": ((7, 9, 32), lambda: [
        fn.Conv2D(32, 3, padding="same", activation="tanh"), fn.Conv2D(4, 3), fn.GlobalAvgPool2D(), fn.Dense(2)]),
    "winograd_first": ((32, 5, 6), lambda: [
        fn.Conv2D(32, 3, padding="same", activation="tanh", data_format=CF), fn.Conv2D(4, 3, data_format=CF),
        fn.Flatten(), fn.Dense(2)]),
}


def built(name: str) -> tuple[fn.Sequential, np.ndarray]:
    shape, layers = MODELS[name]
    model = fn.Sequential(layers(), input_shape=shape, seed=3)
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(11)
    for tensor, value in model._tensors():  # every weight and bias (and running statistic) nonzero
        new = rng.normal(scale=0.4, size=value.shape)
        if tensor.endswith("running_var"):
            new = np.abs(new) + 0.5
        model._set_tensor(tensor, new.astype(np.float32))
    x = rng.normal(size=(7, *shape)).astype(np.float32)
    return model, x


def run_onnx(path, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnxruntime_matches_predict_raw(name, tmp_path):
    model, x = built(name)
    path = tmp_path / f"{name}.onnx"
    model.export_onnx(path)
    onnx.checker.check_model(onnx.load(str(path)))
    want = model.predict_raw(x)
    got = run_onnx(path, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_graph_input_keeps_the_layout_and_ops_are_the_named_ones(tmp_path):
    model, _ = built("conv2d_last_cnn")
    proto = fn.onnx_export.to_onnx(model)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 9, 8, 2]  # channels_last in, as the model takes it
    ops = [n.op_type for n in proto.graph.node]
    assert {"Conv", "MaxPool", "Transpose", "Flatten", "Gemm"} <= set(ops)
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    weight = next(i for i in proto.graph.initializer if i.name == conv.input[1])
    assert list(weight.dims) == [4, 2, 3, 3]  # ONNX's [out, in/groups, kh, kw]
    # Conv -> MaxPool -> Conv pass ONNX's NCHW value along: one Transpose in, one out before Flatten.
    assert ops.count("Transpose") == 2 and ops.count("Reshape") == 0 and ops.count("Flatten") == 1
    first, _ = built("conv2d_first_cnn")
    assert "Transpose" not in [n.op_type for n in fn.onnx_export.to_onnx(first).graph.node]


def test_a_loaded_model_exports_the_same_graph(tmp_path):
    model, x = built("strides_dilation_groups_last")
    model.save(tmp_path / "m.safetensors")
    loaded = fn.load(tmp_path / "m.safetensors")
    loaded.export_onnx(tmp_path / "m.onnx")
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), model.predict_raw(x), rtol=1e-5, atol=1e-5)


def test_avg_pool_same_averages_only_cells_inside(tmp_path):
    # One 3x3 image of ones, pooled 2x2 "same": every output is 1 (padding not counted).
    model = fn.Sequential([fn.AvgPool2D(2, padding="same")], input_shape=(3, 3, 1))
    model.compile(optimizer="sgd", loss="mse")
    model.build((3, 3, 1))
    x = np.ones((1, 3, 3, 1), dtype=np.float32)
    model.export_onnx(tmp_path / "p.onnx")
    np.testing.assert_array_equal(run_onnx(tmp_path / "p.onnx", x), np.ones((1, 2, 2, 1), dtype=np.float32))
