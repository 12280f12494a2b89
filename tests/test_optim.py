"""The optimisers: L-BFGS-B lowers the objective and never stops early because of the loss's scale."""
import numpy as np
import pytest

from vggnumpy.network import Network
from vggnumpy.objective import Objective
from vggnumpy.optim import adam, lbfgs
from vggnumpy.weights import random_weights


@pytest.mark.parametrize("scale", [1e-9, 1.0, 2.9e12])
def test_lbfgs_runs_every_iteration_whatever_the_scale(scale):
    """A peer's scipy run stopped after 2 iterations (REL_REDUCTION_OF_F) at f ~ 2.9e12."""
    target = np.linspace(0.2, 0.8, 500).astype(np.float32)
    fun = lambda x: (scale * float(np.sum((x - target) ** 4)), (scale * 4 * (x - target) ** 3).astype(np.float32))
    seen = []
    x, info = lbfgs(fun, np.full(500, 0.5, np.float32), 30, on_iter=lambda i, x, f: seen.append(f) and False)
    assert info["iterations"] == 30 and len(seen) == 30
    assert seen[-1] < seen[0] and x.dtype == np.float32


def test_lbfgs_respects_bounds():
    fun = lambda x: (float(np.sum((x - 3) ** 2)), (2 * (x - 3)).astype(np.float32))
    x, _ = lbfgs(fun, np.zeros(10, np.float32), 10)
    np.testing.assert_allclose(x, 1.0)


def test_on_iter_can_stop():
    fun = lambda x: (float(np.sum(x ** 2)), (2 * x).astype(np.float32))
    _, info = lbfgs(fun, np.full(4, 0.7, np.float32), 50, lower=-1, on_iter=lambda i, x, f: i >= 3)
    assert info["iterations"] == 3


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_optimisers_lower_the_style_objective(method, rng):
    net = Network(random_weights("vgg19", 0), "max")
    content = rng.random((3, 32, 32), dtype=np.float32)
    style = rng.random((3, 32, 32), dtype=np.float32) ** 3
    obj = Objective(net, content, [style], [1], {"relu4_2": 1}, {"relu1_1": 0.5, "relu2_1": 0.5}, 1, 10, 1)
    fun = lambda x: (lambda r: (r[0], r[1].ravel()))(obj.evaluate(x.reshape(3, 32, 32)))
    x0 = content.ravel().copy()
    start = fun(x0)[0]
    if method == "lbfgs":
        x, _ = lbfgs(fun, x0, 15)
    else:
        x, _ = adam(fun, x0, 15, lr=0.02)
    assert fun(x)[0] < 0.7 * start
    assert 0 <= x.min() and x.max() <= 1
