"""The optimisers: L-BFGS-B lowers the objective and never stops early because of the loss's scale."""
import numpy as np
import pytest

from vggnumpy.nn.network import Network
from vggnumpy.style.objective import Objective
from vggnumpy.optim import adam, lbfgs
from vggnumpy.weights.file import random_weights


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


@pytest.mark.parametrize("name", ["lbfgs", "lbfgs-device"])
@pytest.mark.parametrize("n", [3 * 64 * 64, 3 * 384 * 512])
def test_the_first_step_moves_each_value_by_first_step_whatever_the_size(name, n):
    """L-BFGS-B's own first step has unit length, 1/sqrt(n) per value: at 512 px a 0.0011 nudge, and the run stalled
    for a dozen iterations (benchmarks/README.md, "The stall at the start"). The first point tried after x0 is
    FIRST_STEP away from it, root-mean-square per value, at any n (to 1e-3 relative)."""
    from vggnumpy.optim import steps
    from vggnumpy.optim.step import FIRST_STEP
    rng = np.random.default_rng(0)
    target = rng.random(n, dtype=np.float32)
    tried = []

    def fun(x):
        tried.append(x.copy())
        d = x - target
        return float(np.dot(d, d)), 2 * d

    x0 = np.full(n, 0.5, np.float32)
    gen = steps(name, fun, x0, 1)
    next(gen)
    gen.close()
    rms = float(np.sqrt(np.mean((tried[1].astype(np.float64) - x0) ** 2)))
    assert rms == pytest.approx(FIRST_STEP, rel=1e-3)


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
@pytest.mark.slow
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


_MEASURE = """
import sys, numpy as np
from vggnumpy import optim
from vggnumpy.run import memory
from vggnumpy.nn.backend import proc_bytes
name, pixels, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = 3 * pixels
rng = np.random.default_rng(0)
t = rng.random(n, dtype=np.float32)
a = (10 ** rng.uniform(0, 4, n)).astype(np.float32)        # ill-conditioned: no early convergence
def fun(x):
    d = x - t
    return float(np.dot(a * d, d)), 2 * a * d, {}
x0 = np.full(n, 0.5, np.float32)
base = memory.resident()
for step in optim.steps(name, fun, x0, 6, memory=m):   # the history (m=5) is full by step 6
    pass
print(proc_bytes("/proc/self/status", "VmHWM") - base)    # ru_maxrss would keep the forking parent's
"""


@pytest.mark.parametrize("name", ["lbfgs", "lbfgs-device", "adam"])
@pytest.mark.slow
def test_the_memory_model_bounds_each_optimiser(name):
    """Peak resident memory of 6 iterations on 3e6 values stays within the plan's optimiser bytes plus the whole-image
    arrays it counts beside them (memory.py; without SCIPY_EXTRA, scipy's 470 bytes per value broke a 4096 px plan)."""
    import subprocess
    import sys
    from vggnumpy.run import memory
    from vggnumpy.nn.backend import proc_bytes
    if proc_bytes("/proc/self/status", "VmHWM") is None:
        pytest.skip("needs /proc/self/status (Linux)")
    pixels, m = 1_000_000, 5
    p = subprocess.run([sys.executable, "-c", _MEASURE, name, str(pixels), str(m)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    used = int(p.stdout.split()[-1])
    model = memory.optimiser_bytes(name, pixels, m) + memory.whole_image_bytes(pixels, 0)
    assert used <= model, f"{name}: {used / 3e6:.0f} bytes per value, model {model / 3e6:.0f}"
