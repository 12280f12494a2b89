"""The GPU path against the NumPy path, the loop references and PyTorch CUDA (skipped without CuPy and a device),
plus the device selection and the device-resident L-BFGS, which run on NumPy anywhere."""
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from vggnumpy.nn import backend
from vggnumpy.optim import device_lbfgs as dev_lbfgs
from vggnumpy.nn.kernels import conv as np_conv, pool as np_pool, relu as np_relu
from vggnumpy.nn.network import Network
from vggnumpy.style.objective import Objective
from vggnumpy.weights.file import random_weights

GPU_OK, GPU_WHY = backend.gpu_status()
needs_gpu = pytest.mark.skipif(not GPU_OK, reason=f"needs CuPy and a CUDA device: {GPU_WHY}")


def rel(a, b):
    a, b = backend.to_numpy(a).astype(np.float64), backend.to_numpy(b).astype(np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# ---------------------------------------------------------------- anywhere

def test_importing_vggnumpy_does_not_import_cupy():
    """Not even the GPU kernels: they are built from the CuPy module given (kernels.build(cupy))."""
    code = ("import sys, vggnumpy, vggnumpy.nn.gpu, vggnumpy.nn.gpu.kernels, vggnumpy.nn.backend, "
            "vggnumpy.optim.device, vggnumpy.nn.network; print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_auto_says_which_device_it_uses():
    msgs = []
    b = backend.select("auto", log=msgs.append)
    assert b.name == ("gpu" if GPU_OK else "cpu") and b.on_gpu == GPU_OK
    assert len(msgs) == 1 and ("GPU" in msgs[0] if GPU_OK else "CPU" in msgs[0])
    cpu = backend.select("cpu")
    assert (cpu.name, cpu.xp, cpu.kernels, cpu.on_gpu) == ("cpu", np, None, False)
    if not GPU_OK:
        with pytest.raises(RuntimeError, match="pip install vggnumpy\\[gpu\\]"):
            backend.select("gpu")


def test_device_lbfgs_solves_a_box_constrained_quadratic(rng):
    n = 4000
    a = rng.uniform(0.1, 10, n)
    c = rng.uniform(-0.5, 1.5, n).astype(np.float32)

    calls = []

    def fun(x):
        calls.append(1)
        r = x.astype(np.float64) - c
        return float(0.5 * np.sum(a * r * r)), (a * r).astype(np.float32)
    x, info = dev_lbfgs(fun, np.full(n, 0.5, np.float32), 60)
    assert x.dtype == np.float32 and info["iterations"] == 60
    assert np.abs(x - np.clip(c, 0, 1)).max() < 1e-3
    assert len(calls) < 2 * 60


def _tiny_objective(xp, kernels=None):
    w = random_weights("vgg19", seed=5)
    rng = np.random.default_rng(0)
    content = xp.asarray(rng.uniform(0, 1, (3, 24, 24)).astype(np.float32))
    style = xp.asarray(rng.uniform(0, 1, (3, 24, 24)).astype(np.float32))
    net = Network(w, "max", kernels=kernels)
    return Objective(net, content, [style], [1.0], {"relu2_1": 1.0}, {"relu1_1": 0.5, "relu2_1": 0.5},
                     1.0, 10.0, 1.0), content


@pytest.mark.slow
def test_device_lbfgs_lowers_the_style_loss_like_scipy_on_numpy():
    from vggnumpy.optim import lbfgs as scipy_lbfgs
    obj, content = _tiny_objective(np)
    x0 = np.clip(content + 0.1, 0, 1).ravel()

    def fun(flat):
        loss, g, _ = obj.evaluate(flat.reshape(3, 24, 24))
        return loss, g.ravel()
    f0 = fun(x0)[0]
    xd, info = dev_lbfgs(fun, x0, 15)
    xs, _ = scipy_lbfgs(fun, x0, 15)
    fd, fs = fun(xd)[0], fun(xs)[0]
    assert info["iterations"] == 15 and xd.min() >= 0 and xd.max() <= 1
    assert fd < 0.5 * f0
    assert fd < 2 * fs + 1e-6 * f0


# ---------------------------------------------------------------- GPU against NumPy and the loop references

CONV_CASES = [  # (C, O, H, W, K, stride, pad)
    (3, 4, 8, 9, 3, 1, 1), (2, 3, 27, 25, 11, 4, 0), (3, 2, 9, 8, 5, 1, 2), (4, 3, 6, 5, 1, 1, 0),
    (3, 4, 9, 10, 3, 2, 1),
]
POOL_CASES = [  # (H, W, k, stride, pad, ceil)
    (8, 8, 2, 2, 0, False), (7, 9, 2, 2, 0, True), (7, 7, 3, 2, 1, True), (9, 6, 3, 1, 1, False),
    (5, 8, 3, 3, 0, True),
]


@pytest.fixture
def gk():
    """The kernels module (CHUNK_ELEMS is patched there)."""
    from vggnumpy.nn.gpu import kernels
    return kernels


@pytest.fixture
def kern(gk):
    """The GPU kernels built from the real CuPy: kern.conv, kern.pool, kern.relu."""
    cp = pytest.importorskip("cupy")
    return SimpleNamespace(**gk.build(cp))


@needs_gpu
def test_compile_all_builds_every_kernel_with_nvrtc(gk):
    import cupy as cp
    names = gk.compile_all(cp)
    assert len(names) == len(set(names)) >= 10 and {"im2col_rows", "relu_fwd", "maxpool_bwd"} <= set(names)


@needs_gpu
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("banded", [False, True])
def test_conv_matches_loop_reference_and_numpy(gk, kern, case, banded, rng, monkeypatch):
    import cupy as cp
    c, o, h, w, k, s, p = case
    if banded:
        monkeypatch.setattr(gk, "CHUNK_ELEMS", c * k * k * 3)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, k, k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    out, cache = kern.conv.forward(cp.asarray(x), cp.asarray(wt), cp.asarray(b), s, p)
    ref, rcache = np_conv.forward_ref(x, wt, b, s, p)
    fast, fcache = np_conv.forward(x, wt, b, s, p)
    assert isinstance(out, cp.ndarray) and out.dtype == cp.float32
    assert rel(out, ref) < 1e-5 and rel(out, fast) < 1e-5
    d = rng.standard_normal(ref.shape).astype(np.float32)
    dx = kern.conv.backward(cp.asarray(d), cache)
    assert rel(dx, np_conv.backward_ref(d, rcache)) < 1e-5
    assert rel(dx, np_conv.backward(d, fcache)) < 1e-5
    fused, rcache2 = kern.conv.forward_relu(cp.asarray(x), cp.asarray(wt), cp.asarray(b), s, p)
    mask = rcache2[4].get()
    assert rel(fused, np.maximum(ref, 0)) < 1e-5
    np.testing.assert_array_equal(mask, fused.get() > 0)
    assert rel(kern.conv.backward(cp.asarray(d), rcache2), np_conv.backward_ref(d * mask, rcache)) < 1e-5


@needs_gpu
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_matches_loop_reference_and_numpy(kern, case, mode, rng):
    import cupy as cp
    h, w, k, s, p, ceil = case
    x = rng.integers(-2, 3, size=(2, 3, h, w)).astype(np.float32)     # many ties
    out, cache = kern.pool.forward(cp.asarray(x), k, s, p, ceil, mode)
    ref, rcache = np_pool.forward_ref(x, k, s, p, ceil, mode)
    fast, fcache = np_pool.forward(x, k, s, p, ceil, mode)
    np.testing.assert_allclose(out.get(), ref, rtol=1e-6, atol=1e-6)
    if mode == "max":
        np.testing.assert_array_equal(cache[-1].get(), fcache[-1])    # same winning taps: first maximum
    d = rng.standard_normal(ref.shape).astype(np.float32)
    dx = kern.pool.backward(cp.asarray(d), cache)
    np.testing.assert_allclose(dx.get(), np_pool.backward_ref(d, rcache), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx.get(), np_pool.backward(d, fcache), rtol=1e-5, atol=1e-5)


@needs_gpu
@pytest.mark.parametrize("inplace", [False, True])
def test_relu_matches_loop_reference(kern, inplace, rng):
    import cupy as cp
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    x[0, 0, 0, :2] = 0.0
    ref, rmask = np_relu.forward_ref(x)
    xin = cp.asarray(x)
    out, mask = kern.relu.forward(xin, inplace=inplace)
    assert (out is xin) == inplace and mask.dtype == cp.bool_
    np.testing.assert_array_equal(out.get(), ref)
    np.testing.assert_array_equal(mask.get(), rmask)
    d = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(kern.relu.backward(cp.asarray(d), mask).get(), np_relu.backward_ref(d, rmask))


@needs_gpu
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_network_relu5_1_features_and_input_gradient_match_numpy(gk, pooling, rng):
    import cupy as cp
    w = random_weights("vgg19", seed=7)
    x = rng.standard_normal((1, 3, 64, 80)).astype(np.float32)
    ref_net, net = Network(w, pooling), Network(w, pooling, kernels=gk.build(cp))
    layers = ["relu1_1", "conv3_1", "relu5_1"]
    f_ref, c_ref = ref_net.forward(x.copy(), layers)
    f, c = net.forward(cp.asarray(x), layers)
    r = {n: rng.standard_normal(f_ref[n].shape).astype(np.float32) for n in layers}
    for n in layers:
        assert rel(f[n], f_ref[n]) < 1e-4, n
    dx = net.backward({n: cp.asarray(v) for n, v in r.items()}, c)
    assert isinstance(dx, cp.ndarray)
    assert rel(dx, ref_net.backward(r, c_ref)) < 1e-4


@needs_gpu
def test_objective_matches_numpy(gk):
    import cupy as cp
    obj_np, content = _tiny_objective(np)
    obj_gpu, _ = _tiny_objective(cp, gk.build(cp))
    img = np.clip(content + 0.05, 0, 1)
    loss, g, parts = obj_np.evaluate(img)
    lg, gg, pg = obj_gpu.evaluate(cp.asarray(img))
    assert isinstance(gg, cp.ndarray) and gg.dtype == cp.float32
    assert abs(lg - loss) <= 1e-4 * abs(loss)
    assert set(pg) == set(parts)
    assert rel(gg, g) < 1e-4


@needs_gpu
def test_device_lbfgs_on_gpu_matches_numpy_run(gk):
    import cupy as cp
    obj_np, content = _tiny_objective(np)
    obj_gpu, _ = _tiny_objective(cp, gk.build(cp))
    x0 = np.clip(content + 0.1, 0, 1).ravel()
    f_np = lambda z: (lambda r: (r[0], r[1].ravel()))(obj_np.evaluate(z.reshape(3, 24, 24)))
    f_gpu = lambda z: (lambda r: (r[0], r[1].ravel()))(obj_gpu.evaluate(z.reshape(3, 24, 24)))
    xn, _ = dev_lbfgs(f_np, x0, 10)
    xg, info = dev_lbfgs(f_gpu, cp.asarray(x0), 10)
    assert isinstance(xg, cp.ndarray) and info["iterations"] == 10
    ln, lg = f_np(xn)[0], f_np(xg.get())[0]
    assert abs(lg - ln) <= 0.05 * abs(ln) + 1e-6


@needs_gpu
def test_large_layer_is_banded_and_correct(gk, kern, monkeypatch, rng):
    """A layer whose column matrix exceeds CHUNK_ELEMS runs in bands of rows and gives the same answer."""
    import cupy as cp
    x = cp.asarray(rng.standard_normal((1, 16, 96, 96)).astype(np.float32))
    wt = cp.asarray(rng.standard_normal((8, 16, 3, 3)).astype(np.float32))
    b = cp.zeros(8, dtype=cp.float32)
    whole, cache = kern.conv.forward(x, wt, b, 1, 1)
    d = cp.asarray(rng.standard_normal(whole.shape).astype(np.float32))
    dwhole = kern.conv.backward(d, cache)
    monkeypatch.setattr(gk, "CHUNK_ELEMS", 16 * 9 * 96 * 7)
    banded, cache = kern.conv.forward(x, wt, b, 1, 1)
    assert rel(banded, whole) < 1e-6 and rel(kern.conv.backward(d, cache), dwhole) < 1e-6


# ---------------------------------------------------------------- against PyTorch with CUDA

def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


@needs_gpu
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_network_matches_pytorch_cuda(gk, pooling, rng):
    torch = _torch_cuda()
    if torch is None:
        pytest.skip("PyTorch with CUDA not available")
    import cupy as cp
    try:
        from test_torch import torch_vgg
    except ImportError:
        from tests.test_torch import torch_vgg
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    w = random_weights("vgg19", seed=7)
    x = rng.standard_normal((1, 3, 64, 80)).astype(np.float32)
    net = Network(w, pooling, kernels=gk.build(cp))
    f, c = net.forward(cp.asarray(x), ["relu5_1"])
    r = rng.standard_normal(f["relu5_1"].shape).astype(np.float32)
    dx = net.backward({"relu5_1": cp.asarray(r)}, c)
    tx = torch.from_numpy(x.copy()).cuda().requires_grad_(True)
    ty = torch_vgg(w, pooling, "relu5_1").cuda()(tx)
    (ty * torch.from_numpy(r).cuda()).sum().backward()
    assert rel(f["relu5_1"], ty.detach().cpu().numpy()) < 1e-4
    assert rel(dx, tx.grad.cpu().numpy()) < 1e-4
