"""fn.plot.filters and fn.plot.feature_maps: the panels show the layer's own weights and
outputs (checked against get_param and the float64 PyTorch-definition convolution), every
layout and kernel count, and bad inputs raise ferronn's named errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import conv_reference as cr  # noqa: E402
import ferronn as fn  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def images(fig):
    """The panels that show an image (colour bars left out), in order."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.images]


def built(shape, layers, seed=0):
    model = fn.Sequential([fn.Input(shape=shape), *layers], seed=seed)
    model.compile(optimizer="adam", loss="cross_entropy")
    model.build(shape)
    return model


def test_filters_one_image_per_filter_with_its_weights():
    model = built((10, 10, 1), [fn.layers.Conv2D(6, 3, activation="relu"), fn.layers.Flatten(), fn.Dense(2)])
    w = model.layers[0].get_param("weight")  # [3, 3, 1, 6]
    fig = fn.plot.filters(model, 0, ncols=4)
    assert isinstance(fig, Figure)
    panels = images(fig)
    assert len(panels) == 6 and [ax.get_title() for ax in panels] == [f"filter {i}" for i in range(6)]
    for f, ax in enumerate(panels):
        np.testing.assert_array_equal(ax.images[0].get_array(), w[:, :, 0, f])
    # One shared symmetric scale, so filters compare.
    scale = np.abs(w).max()
    assert panels[0].images[0].get_clim() == pytest.approx((-scale, scale))
    assert "6 of 6 filters" in fig.get_suptitle()
    assert len(images(fn.plot.filters(model, model.layers[0], max_filters=2))) == 2


def test_filters_rgb_and_per_channel():
    rgb = built((8, 8, 3), [fn.layers.Conv2D(4, 3), fn.layers.Flatten(), fn.Dense(2)])
    w = rgb.layers[0].get_param("weight")
    panels = images(fn.plot.filters(rgb))
    assert len(panels) == 4
    shown = panels[2].images[0].get_array()
    k = w[..., 2]
    np.testing.assert_allclose(shown, (k - k.min()) / (k.max() - k.min()), rtol=1e-6)  # one RGB image per filter
    two = built((2, 8, 8), [fn.layers.Conv2D(3, 3, data_format="channels_first"), fn.layers.Flatten(), fn.Dense(2)])
    panels = images(fn.plot.filters(two))
    assert len(panels) == 3 * 2  # a row per filter, an image per input channel
    assert panels[3].get_title() == "filter 1, in 1"
    np.testing.assert_array_equal(panels[3].images[0].get_array(), two.layers[0].get_param("weight")[:, :, 1, 1])
    seq = built((12, 2), [fn.layers.Conv1D(3, 5), fn.layers.Flatten(), fn.Dense(2)])
    panels = images(fn.plot.filters(seq))
    assert len(panels) == 3 and panels[0].images[0].get_array().shape == (2, 5)  # channels × positions


@pytest.mark.parametrize("channels_first", [False, True])
def test_feature_maps_are_the_layers_outputs(channels_first):
    fmt = "channels_first" if channels_first else "channels_last"
    shape = (2, 9, 7) if channels_first else (9, 7, 2)
    model = built(shape, [fn.layers.Conv2D(5, 3, data_format=fmt), fn.ReLU(),
                          fn.layers.MaxPool2D(2, data_format=fmt), fn.layers.Flatten(), fn.Dense(2)], seed=3)
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    w, b = model.layers[0].get_weights()
    pre = cr.conv2d(cr.to_nchw(image.reshape(1, -1), shape, channels_first), cr.torch_weight(w), b,
                    (1, 1), (0, 0, 0, 0), (1, 1), 1)[0]  # [5, 7, 5]
    fig = fn.plot.feature_maps(model, 1, image)
    panels = images(fig)
    assert len(panels) == 5
    for c, ax in enumerate(panels):
        np.testing.assert_allclose(ax.images[0].get_array(), np.maximum(pre[c], 0), rtol=1e-4, atol=1e-5)
    pooled = images(fn.plot.feature_maps(model, 2, image[None], max_channels=3))
    assert len(pooled) == 3 and pooled[0].images[0].get_array().shape == (3, 2)


def test_feature_maps_of_a_sequence_layer_is_one_panel():
    model = built((16, 2), [fn.layers.Conv1D(4, 3, padding="same"), fn.layers.Flatten(), fn.Dense(2)])
    fig = fn.plot.feature_maps(model, 0, np.ones((16, 2)))
    (ax,) = images(fig)
    assert ax.images[0].get_array().shape == (4, 16)
    assert ax.get_xlabel() == "position" and ax.get_ylabel() == "channel"


def test_bad_inputs_are_named_errors():
    model = built((8, 8, 1), [fn.layers.Conv2D(2, 3), fn.layers.Flatten(), fn.Dense(2)])
    with pytest.raises(fn.ConfigError, match="Conv2D or Conv1D"):
        fn.plot.filters(model, 2)
    with pytest.raises(fn.ConfigError, match="out of range"):
        fn.plot.filters(model, 5)
    with pytest.raises(fn.ConfigError, match="not one of"):
        fn.plot.filters(model, fn.layers.Conv2D(2, 3))
    with pytest.raises(fn.ConfigError, match="max_filters"):
        fn.plot.filters(model, 0, max_filters=0)
    with pytest.raises(fn.ConfigError, match="flat outputs"):
        fn.plot.feature_maps(model, 1, np.zeros((8, 8, 1)))
    with pytest.raises(fn.ShapeError, match=r"\(8, 8, 1\)"):
        fn.plot.feature_maps(model, 0, np.zeros((8, 8)))
    with pytest.raises(fn.ShapeError):
        fn.plot.feature_maps(model, 0, np.zeros((2, 8, 8, 1)))  # one image, not a batch
    unbuilt = fn.Sequential([fn.Input(shape=(8, 8, 1)), fn.layers.Conv2D(2, 3)])
    with pytest.raises(fn.NotFittedError):
        fn.plot.filters(unbuilt)
