"""The torch layout of convolutional models, without torch: the safetensors round
trip, tensor names and shapes as nn.Conv2d / nn.BatchNorm2d / nn.Linear have them,
and the generated module's own source run on a float64 NumPy stand-in for torch
(tests/python/torch_standin.py) against ``predict_raw``, for both data formats."""

from __future__ import annotations


import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import ferronn as fn
import torch_standin
from test_onnx_conv import MODELS, built


@pytest.mark.parametrize("name", sorted(MODELS))
def test_generated_module_matches_predict_raw(name, tmp_path, monkeypatch):
    model, x = built(name)
    got = torch_standin.run_torch_source(model, x, tmp_path, monkeypatch)
    want = model.predict_raw(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_gives_identical_predictions(name, tmp_path):
    model, x = built(name)
    path = tmp_path / "w.safetensors"
    model.save(path, layout="torch")
    other = fn.Sequential(MODELS[name][1](), input_shape=MODELS[name][0], seed=99)
    other.compile(optimizer="adam", loss="mse")
    assert not np.array_equal(other.predict_raw(x), model.predict_raw(x))
    fn.load_torch_weights(other, path)
    np.testing.assert_array_equal(other.predict_raw(x), model.predict_raw(x))


def test_names_and_shapes_are_those_of_the_pytorch_modules(tmp_path):
    # nn.Sequential(Conv2d(2, 4, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(4, 6, (2, 3), stride=(2, 1)),
    #               Tanh(), Flatten(), Linear(24, 3))'s state_dict, as PyTorch names and shapes it:
    pytorch = {"0.weight": (4, 2, 3, 3), "0.bias": (4,), "3.weight": (6, 4, 2, 3), "3.bias": (6,),
               "6.weight": (3, 24), "6.bias": (3,)}
    model, _ = built("conv2d_last_cnn")
    path = tmp_path / "w.safetensors"
    model.save(path, layout="torch")
    saved = load_file(str(path))
    assert {k: v.shape for k, v in saved.items()} == pytorch
    assert list(fn.torch_layout.torch_names(model)) == list(pytorch)
    kernel = model.layers[0].get_param("weight")  # Keras' [kh, kw, in, out]
    np.testing.assert_array_equal(saved["0.weight"], kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(saved["6.weight"], model.layers[4].get_param("weight").T)

    # BatchNorm on channels_last images: BatchNorm2d(5)'s five entries; Conv1d's [out, in/groups, k].
    bn, _ = built("global_pools_and_batch_norm")
    bn.save(path, layout="torch")
    saved = load_file(str(path))
    assert {k: v.shape for k, v in saved.items()} == {
        "0.weight": (5, 3, 3, 3), "0.bias": (5,), "1.weight": (5,), "1.bias": (5,), "1.running_mean": (5,),
        "1.running_var": (5,), "1.num_batches_tracked": (), "4.weight": (2, 5), "4.bias": (2,)}
    np.testing.assert_array_equal(saved["1.running_var"], bn.layers[1].get_param("running_var"))
    seq, _ = built("conv1d_last")
    seq.save(path, layout="torch")
    assert load_file(str(path))["3.weight"].shape == (6, 2, 2)  # Conv1d(4, 6, 2, groups=2)


def test_source_uses_the_plain_modules_for_channels_first(tmp_path):
    model, _ = built("conv2d_first_cnn")
    source = fn.torch_layout.torch_source(model)
    assert "nn.Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), dilation=(1, 1), groups=1, bias=True, " \
           "padding=(1, 1))" in source
    assert "nn.MaxPool2d((2, 2), stride=(2, 2))" in source and "Layout" not in source
    last = fn.torch_layout.torch_source(built("conv2d_last_cnn")[0])
    assert "LayoutConv2d(2, 4," in last and "channels_last=True" in last


def test_a_kernel_of_the_wrong_shape_is_refused_with_the_model_unchanged(tmp_path):
    model, x = built("conv2d_last_cnn")
    path = tmp_path / "w.safetensors"
    model.save(path, layout="torch")
    tensors = load_file(str(path))
    tensors["0.weight"] = np.zeros((4, 2, 3, 2), np.float32)
    save_file(tensors, str(path))
    before = model.predict_raw(x)
    with pytest.raises(fn.ShapeError, match=r"'0\.weight' has shape \[4, 2, 3, 2\], expected \[4, 2, 3, 3\].*"
                                             r"stored with axes \(3, 2, 0, 1\)"):
        fn.load_torch_weights(model, path)
    np.testing.assert_array_equal(model.predict_raw(x), before)


def test_per_channel_forms_and_the_downsample_are_named_as_pytorch_names_them(tmp_path):
    # A ResNet BasicBlock with downsample: Residual(block=Sequential(conv, bn, relu, conv, bn),
    # projection=Sequential(Conv2d(2, 4, 1, stride=2, bias=False), BatchNorm2d(4))), ReLU, GlobalPool, Linear.
    model, _ = built("resnet_basic_block_downsample")
    path = tmp_path / "w.safetensors"
    model.save(path, layout="torch")
    saved = load_file(str(path))
    assert saved["0.projection.0.weight"].shape == (4, 2, 1, 1) and "0.projection.0.bias" not in saved
    assert {k for k in saved if k.startswith("0.projection.1.")} == {
        f"0.projection.1.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    block = model.layers[0]
    np.testing.assert_array_equal(saved["0.projection.0.weight"],
                                  block.get_param("projection.0.weight").transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(saved["0.projection.1.running_var"], block.get_param("projection.1.running_var"))
    source = fn.torch_layout.torch_source(model)
    assert "projection=nn.Sequential(LayoutConv2d(2, 4, kernel_size=(1, 1), stride=(2, 2)" in source

    # channels_first: the plain nn modules act on axis 1, the channels.
    first = fn.torch_layout.torch_source(built("batch_norm_channels_first")[0])
    assert "nn.BatchNorm2d(2, eps=1e-05, momentum=0.1)" in first and "LayoutBatchNorm" not in first
    sequences, _ = built("batch_norm_channels_first_sequences")
    assert "nn.BatchNorm1d(3, eps=1e-05" in fn.torch_layout.torch_source(sequences)
    prelu_first, _ = built("prelu_per_channel_first")
    assert "nn.PReLU(3, init=0.25)" in fn.torch_layout.torch_source(prelu_first)
    prelu_last, _ = built("prelu_per_channel_last")
    assert "LayoutPReLU(3, init=0.25, channels_last=True)" in fn.torch_layout.torch_source(prelu_last)
    prelu_last.save(path, layout="torch")
    assert load_file(str(path))["1.weight"].shape == (3,)
    values, _ = built("prelu_per_value_and_shared_on_images")
    values.save(path, layout="torch")
    saved = load_file(str(path))
    assert saved["1.weight"].shape == (4 * 3 * 3,) and saved["2.weight"].shape == (1,)  # FlatPReLU(36), nn.PReLU(1)
