"""The VGG layer tables and the network's forward/backward over named layers."""
import numpy as np
import pytest

from vggnumpy import arch
from vggnumpy.network import Network
from vggnumpy.weights import random_weights


def test_tables_match_published_sizes():
    count = lambda a: sum(o * i * k * k + o for _, (o, i, k, _) in arch.conv_layers(a))
    assert count("vgg19") == 20_024_384            # conv-only parameters of VGG-19
    assert count("vgg16") == 14_714_688
    names = arch.layer_names("vgg19")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert "conv3_4" in names and "conv3_4" not in arch.layer_names("vgg16")


def test_feature_shapes_and_min_size():
    s = arch.feature_shapes("vgg19", 512, 384)
    assert s["relu4_2"] == (512, 64, 48) and s["pool5"] == (512, 16, 12)
    assert arch.min_input_size("vgg19", ["relu5_1"]) == 16
    assert arch.min_input_size("vgg19", ["relu1_1"]) == 1
    assert arch.output_size(13, 3, 2, 0, True) == 6 and arch.output_size(13, 3, 2, 0, False) == 6
    assert arch.output_size(14, 3, 2, 0, True) == 7 and arch.output_size(14, 3, 2, 0, False) == 6


@pytest.fixture(scope="module")
def net():
    return Network(random_weights("vgg19", seed=3), "max")


def test_forward_returns_named_layers_and_stops_at_deepest(net, rng):
    x = rng.standard_normal((1, 3, 40, 36)).astype(np.float32)
    feats, (caches, last) = net.forward(x, ["conv1_1", "relu2_1", "pool3"])
    assert set(feats) == {"conv1_1", "relu2_1", "pool3"}
    assert arch.layer_names("vgg19")[last] == "pool3" and len(caches) == last + 1
    shapes = arch.feature_shapes("vgg19", 40, 36)
    for name, f in feats.items():
        assert f.shape == (1,) + shapes[name] and f.dtype == np.float32
    assert np.any(feats["conv1_1"] < 0)            # conv output asked for: not rectified in place
    assert np.all(feats["relu2_1"] >= 0)


def test_unknown_layer_is_a_clear_error(net):
    with pytest.raises(ValueError, match="relu9_9"):
        net.forward(np.zeros((1, 3, 16, 16), np.float32), ["relu9_9"])


def test_backward_is_linear_in_layer_gradients(net, rng):
    """Gradients at several layers at once equal the sum of running each alone."""
    x = rng.standard_normal((1, 3, 32, 32))
    layers = ["relu1_1", "relu3_1", "relu4_2"]
    feats, cache = net.forward(x, layers)
    g = {n: rng.standard_normal(f.shape) for n, f in feats.items()}
    together = net.backward(g, cache)
    alone = sum(net.backward({n: g[n]}, net.forward(x, layers)[1]) for n in layers)
    np.testing.assert_allclose(together, alone, rtol=1e-10, atol=1e-12)
    assert together.shape == x.shape


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_pooling_selectable(pooling, rng):
    net = Network(random_weights("vgg16", seed=1), pooling)
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    f, _ = net.forward(x, ["pool1"])
    r, _ = net.forward(x, ["relu1_2"])
    blocks = r["relu1_2"].reshape(1, 64, 8, 2, 8, 2)
    expect = blocks.max(axis=(3, 5)) if pooling == "max" else blocks.mean(axis=(3, 5))
    np.testing.assert_allclose(f["pool1"], expect, rtol=1e-6)
