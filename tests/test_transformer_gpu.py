"""The style network's GPU path on the CPU (tests/fakecupy.py: the real CUDA sources built for the host, inside a
device-array type that refuses host/device mix-ups): the convolution's weight gradient, the whole network's output
and every gradient, the inference pass and a training step, each against the NumPy path. A real GPU runs the same
checks in test_gpu.py's style when one is present (needs_gpu there)."""
import numpy as np
import pytest

import fakecupy
from vggnumpy.feedforward import apply
from vggnumpy.nn import transformer as T
from vggnumpy.nn.gpu import kernels as gk
from vggnumpy.nn.kernels import convgrad
from vggnumpy.optim.weight_adam import Adam

RTOL = 1e-4              # device against NumPy, float32: relative to the largest magnitude of the reference


@pytest.fixture
def installed(monkeypatch):
    return fakecupy.install(monkeypatch)


def rel(a, b):
    a = a.get() if hasattr(a, "get") else a
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def device_params(cp, width, seed):
    p = T.init_params(width, seed)
    rng = np.random.default_rng(seed)
    for k in p:
        if not k.endswith(".w"):
            p[k] = p[k] + rng.standard_normal(p[k].shape).astype(np.float32) * 0.3
    return p, {k: cp.asarray(v) for k, v in p.items()}


@pytest.mark.parametrize("case", [(2, 3, 9, 10, 4, 3, 1), (1, 4, 10, 9, 3, 3, 2), (1, 3, 14, 12, 2, 9, 1)])
def test_conv_weight_gradient_matches_numpy(installed, case, rng):
    cp = installed
    n, c, h, w, o, k, s = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    d = rng.standard_normal((n, o, ho, wo)).astype(np.float32)
    dw, db = gk.conv_weights(cp, cp.asarray(d), cp.asarray(x), (o, c, k, k), s, 0)
    rw, rb = convgrad.weights_ref(d, x, (o, c, k, k), s, 0)
    assert rel(dw, rw) < RTOL and rel(db, rb) < RTOL


def test_network_forward_backward_match_numpy(installed, rng):
    cp = installed
    p, pd = device_params(cp, 0.125, 1)
    x = rng.random((2, 3, 16, 24), dtype=np.float32)
    r = rng.standard_normal(x.shape).astype(np.float32)
    ref = T.Transformer(p)
    net = T.Transformer(pd, kernels=gk.build(cp))
    y0, c0 = ref.forward(x)
    g0, dx0 = ref.backward(r, c0, input_grad=True)
    y, c = net.forward(cp.asarray(x))
    g, dx = net.backward(cp.asarray(r), c, input_grad=True)
    assert isinstance(y, cp.ndarray) and rel(y, y0) < RTOL and rel(dx, dx0) < RTOL
    scale = max(np.abs(v).max() for v in g0.values())
    for name in p:
        assert np.abs(g[name].get() - g0[name]).max() < RTOL * scale, name
    assert rel(apply.forward(net, cp.asarray(x[:1])), y0[:1]) < RTOL


def test_stylize_array_on_the_device_matches_numpy(installed, rng):
    """The whole photo-in, picture-out call: padding to a multiple of 4, the pass and the clip run on the device
    and a host (H, W, 3) float32 array comes back, equal to the NumPy path's."""
    cp = installed
    p, pd = device_params(cp, 0.125, 3)
    img = rng.random((18, 23, 3), dtype=np.float32)                 # neither side a multiple of 4: padded
    want = apply.stylize_array(T.Transformer(p), img)
    got = apply.stylize_array(T.Transformer(pd, kernels=gk.build(cp)), img)
    assert isinstance(got, np.ndarray) and got.shape == (18, 23, 3) and got.dtype == np.float32
    assert got.flags.c_contiguous and rel(got, want) < RTOL


def test_adam_step_matches_numpy(installed, rng):
    cp = installed
    p, pd = device_params(cp, 0.125, 2)
    grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in p.items()}
    a, b = Adam(1e-2), Adam(1e-2)
    for _ in range(3):
        a.step(p, grads)
        b.step(pd, {k: cp.asarray(v) for k, v in grads.items()})
    for k in p:
        assert rel(pd[k], p[k]) < 1e-6, k
