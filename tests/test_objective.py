"""Losses and the whole objective: explicit formulas and float64 finite differences (relative error < 1e-6)."""
import numpy as np
import pytest

from conftest import fd_grad, rel_error
from vggnumpy.style import losses
from vggnumpy.nn.network import Network
from vggnumpy.style.objective import Objective
from vggnumpy.nn.preprocess import preprocess_backward, preprocess_forward
from vggnumpy.weights.file import CAFFE, random_weights


def test_gram_is_mean_outer_product(rng):
    f = rng.standard_normal((1, 4, 3, 5))
    g, _ = losses.gram_forward(f)
    fm = f.reshape(4, 15)
    np.testing.assert_allclose(g[0], fm @ fm.T / 15, rtol=1e-12)


@pytest.mark.parametrize("term", ["content", "style", "tv"])
def test_loss_terms_finite_differences(term, rng):
    f = rng.standard_normal((1, 3, 6, 5))
    target = rng.standard_normal((1, 3, 6, 5))
    if term == "content":
        fwd = lambda z: losses.content_forward(z, target)
        bwd = losses.content_backward
    elif term == "style":                  # from the Gram statistics, to the features through their backward
        a = losses.gram_forward(target)[0]
        fwd = lambda z: losses.style_forward(*losses.gram_stats(z), a)
        bwd = lambda d, cache: losses.gram_stats_backward(losses.style_backward(d, cache), f.shape[2] * f.shape[3], f)
    else:
        fwd, bwd = losses.tv_forward, losses.tv_backward
    loss, cache = fwd(f)
    grad = bwd(1.7, cache)
    num = fd_grad(lambda z: 1.7 * fwd(z)[0], f, range(f.size))
    assert rel_error(num, grad.reshape(-1)) < 1e-6


def test_normalisation_makes_terms_scale_free(rng):
    """Dividing by the target's energy: scaling features and target together leaves the loss unchanged."""
    f, p = rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((1, 3, 4, 4))
    assert losses.content_forward(10 * f, 10 * p)[0] == pytest.approx(losses.content_forward(f, p)[0])
    a = losses.gram_forward(p)[0]
    style = lambda z, t: losses.style_forward(*losses.gram_stats(z), t)[0]
    assert style(10 * f, 100 * a) == pytest.approx(style(f, a))


@pytest.mark.parametrize("convention", ["torch", "caffe"])
def test_preprocess_pair(convention, rng):
    w = random_weights("vgg16", 0)
    if convention == "caffe":
        for k, v in CAFFE.items():
            setattr(w, k, v)
    img = rng.random((3, 4, 5))
    x, cache = preprocess_forward(img, w)
    d = rng.standard_normal(x.shape)
    num = fd_grad(lambda z: float(np.sum(preprocess_forward(z, w)[0] * d)), img, range(img.size))
    assert rel_error(num, preprocess_backward(d, cache).reshape(-1)) < 1e-6
    if convention == "caffe":                       # BGR, 0..255, minus the ImageNet mean
        np.testing.assert_allclose(x[0, 0], img[2] * 255 - 103.939)


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.slow
def test_whole_objective_finite_differences(pooling, rng):
    """content + two blended styles + TV through VGG-19 to relu5_1, float64, relative error < 1e-6."""
    net = Network(random_weights("vgg19", seed=5), pooling)
    content = rng.random((3, 20, 18))
    styles = [rng.random((3, 24, 22)), rng.random((3, 16, 20))]
    obj = Objective(net, content, styles, [1.0, 2.0], {"relu4_2": 1.0},
                    {n: 0.2 for n in ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]},
                    content_weight=1.0, style_weight=10.0, tv_weight=0.5)
    img = rng.random((3, 20, 18))
    loss, grad, parts = obj.evaluate(img)
    assert grad.dtype == np.float64 and grad.shape == img.shape
    assert loss == pytest.approx(sum(parts.values()))
    assert set(parts) == {"content relu4_2", "tv"} | {f"style relu{i}_1" for i in range(1, 6)}
    idx = rng.choice(img.size, 24, replace=False)
    num = fd_grad(lambda z: obj.evaluate(z, with_grad=False)[0], img, idx, h=1e-5)
    assert rel_error(num, grad.reshape(-1)[idx]) < 1e-6
