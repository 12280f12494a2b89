"""The VGG layer tables and the network's forward/backward over named layers."""
import numpy as np
import pytest

from vggnumpy.nn import arch
from vggnumpy.nn.network import Network
from vggnumpy.weights.file import random_weights


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


@pytest.mark.slow
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


def test_conv_and_its_relu_both_asked_for(net, rng):
    """An asked-for conv output is returned without a copy: the ReLU after it then runs out of place."""
    x = rng.standard_normal((1, 3, 20, 18)).astype(np.float32)
    feats, _ = net.forward(x, ["conv1_1", "relu1_1", "conv1_2"])
    assert feats["conv1_1"] is not feats["relu1_1"]
    assert np.any(feats["conv1_1"] < 0)
    np.testing.assert_array_equal(feats["relu1_1"], np.maximum(feats["conv1_1"], 0))
    alone, _ = net.forward(x, ["conv1_2"])
    np.testing.assert_array_equal(feats["conv1_2"], alone["conv1_2"])


def test_backward_leaves_the_callers_gradients_alone(net, rng):
    """Gradients at several layers are summed into the kernels' own outputs, never into the caller's arrays."""
    x = rng.standard_normal((1, 3, 24, 24)).astype(np.float32)
    layers = ["relu1_1", "relu1_2", "pool1", "relu2_1"]
    feats, cache = net.forward(x, layers)
    g = {n: rng.standard_normal(f.shape).astype(np.float32) for n, f in feats.items()}
    kept = {n: a.copy() for n, a in g.items()}
    net.backward(g, cache)
    for n in layers:
        np.testing.assert_array_equal(g[n], kept[n])


def test_engine_settings(rng):
    """threads and way build the network's own CPU engine (read once); kernels= (another backend) takes neither."""
    w = random_weights("vgg16", seed=1)
    net = Network(w, "max", threads=2, way="columns")
    assert net.engine.threads == 2 and net.engine.way == "columns"
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    f, _ = net.forward(x, ["relu2_1"])
    np.testing.assert_allclose(f["relu2_1"], Network(w, "max").forward(x, ["relu2_1"])[0]["relu2_1"],
                               rtol=1e-4, atol=1e-4)
    assert {kind for _, kind in net.engine._derived} == {("columns", False)}
    assert Network(w).engine is not Network(w).engine
    from vggnumpy.nn.network import cpu_kernels
    with pytest.raises(ValueError, match="threads and way"):
        Network(w, "max", kernels=cpu_kernels(net.engine), threads=2)
