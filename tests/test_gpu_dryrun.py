"""The GPU path on the CPU: vggnumpy's CuPy code under tests/fakecupy.py (NumPy arrays inside a device-array type,
the real CUDA sources of vggnumpy/nn/gpu built for the host and launched over their grids), against the NumPy path.

The kernels are built from the stand-in passed in (kernels.build(cp), backend.gpu(cp)); only the tests whose code
imports cupy itself (Network and the objective through backend.xp_of, backend.select, stylize) also patch that
import with fakecupy.install.

It catches what the GPU tests would catch without needing a GPU: a kernel that disagrees with the NumPy kernel,
a wrong argument type or a non-contiguous array passed to a raw kernel, a host/device mix-up (np.asarray of a
device array, NumPy and device arrays in one expression), a device array leaking out of stylize.
"""
import dataclasses
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import fakecupy
from vggnumpy.nn import backend
from vggnumpy.nn.gpu import kernels as gk
from vggnumpy.nn.kernels import conv as np_conv, pool as np_pool, relu as np_relu
from vggnumpy.nn.network import Network
from vggnumpy.style.objective import Objective
from vggnumpy.weights.file import random_weights

pytestmark = pytest.mark.filterwarnings("ignore:running an UNTRAINED network")


@pytest.fixture
def cp():
    """The stand-in, to pass as the CuPy module (skipped without a host C++ compiler); sys.modules untouched."""
    return fakecupy.stand_in()


@pytest.fixture
def installed(monkeypatch):
    """The stand-in, with `import cupy` patched to it for this test (undone afterwards)."""
    return fakecupy.install(monkeypatch)


@pytest.fixture
def kern(cp):
    """The GPU kernels built from the stand-in: kern.conv, kern.pool, kern.relu."""
    return SimpleNamespace(**gk.build(cp))


@pytest.fixture(scope="module")
def vgg19():
    return random_weights("vgg19", 0)


def rel(a, b):
    """Largest absolute difference over the largest magnitude of the reference (host arrays)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# ---------------------------------------------------------------- the stand-in itself

def test_select_gpu_returns_the_stand_in(installed):
    cp = installed
    assert backend.gpu_status() == (True, fakecupy.DEVICE_NAME)
    b = backend.select("gpu")
    assert (b.name, b.xp, b.on_gpu) == ("gpu", cp, True) and set(b.kernels) == {"conv", "pool", "relu"}
    msgs = []
    b = backend.select("auto", log=msgs.append)
    assert (b.name, b.xp) == ("gpu", cp) and "GPU" in msgs[0]
    a = cp.zeros((2, 3), dtype=cp.float32)
    assert not isinstance(a, np.ndarray) and backend.xp_of(a) is cp and backend.xp_of(a.get()) is np
    assert type(backend.to_numpy(a)) is np.ndarray


def test_install_is_undone_after_the_test():
    before = {name: sys.modules.get(name) for name in ["cupy", *fakecupy.SUBMODULES]}
    mp = pytest.MonkeyPatch()
    cp = fakecupy.install(mp)
    assert sys.modules["cupy"] is cp and sys.modules["cupy.cuda.runtime"] is cp.cuda.runtime
    mp.undo()
    assert {name: sys.modules.get(name) for name in before} == before


def test_the_kernels_run_on_the_cupy_module_they_are_built_from(cp, rng):
    """build(cp) binds the module given, not whatever `import cupy` finds: the stand-in runs its CUDA sources
    with sys.modules untouched; another module given gets its own kernels (the NumPy stand-in of test_nvcc
    uses that); the kernels module holds no CuPy of its own."""
    assert sys.modules.get("cupy") is not cp and not hasattr(gk, "cp")
    k = backend.gpu(cp).kernels
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    out, mask = k["relu"].forward(cp.asarray(x))
    assert isinstance(out, cp.ndarray) and isinstance(mask, cp.ndarray)
    np.testing.assert_array_equal(out.get(), np.maximum(x, 0))
    pooled, _ = k["pool"].forward(out, 2, 2, 0, False, "max")
    assert isinstance(pooled, cp.ndarray) and pooled.shape == (2, 3, 2, 2)
    assert fakecupy.launches["relu_fwd"] == 1 and fakecupy.launches["maxpool_fwd"] == 1
    assert sys.modules.get("cupy") is not cp


def test_the_stand_in_refuses_what_cupy_refuses(cp):
    """Host/device mix-ups and badly typed raw-kernel arguments fail here, as they would (or would corrupt) on a GPU."""
    a = cp.asarray(np.arange(6, dtype=np.float32))
    with pytest.raises(TypeError, match="get"):
        np.asarray(a)
    with pytest.raises(TypeError):
        a + np.ones(6, np.float32)
    with pytest.raises(TypeError):
        cp.matmul(a.reshape(2, 3), np.ones((3, 2), np.float32))
    with pytest.raises(AttributeError):
        cp.not_a_cupy_function
    relu = gk._fn(cp, "relu.cu", "relu_fwd")
    out, mask = cp.empty_like(a), cp.empty(a.shape, dtype=cp.bool_)
    with pytest.raises(TypeError, match="long long"):            # n is long long: np.int32 would be garbage
        relu((1,), (32,), (a, out, mask, np.int32(a.size)))
    with pytest.raises(TypeError, match="bool"):                 # mask is bool*
        relu((1,), (32,), (a, out, cp.empty(a.shape, dtype=cp.uint8), np.int64(a.size)))
    with pytest.raises(TypeError, match="device array"):
        relu((1,), (32,), (a.get(), out, mask, np.int64(a.size)))
    with pytest.raises(ValueError, match="contiguous"):
        relu((1,), (32,), (cp.asarray(np.arange(12, dtype=np.float32))[::2], out, mask, np.int64(6)))
    with pytest.raises(fakecupy.CUDADriverError):
        relu((1,), (2048,), (a, out, mask, np.int64(a.size)))
    relu((1,), (4,), (a - 2, out, mask, np.int64(a.size)))     # 4 threads, grid-stride over 6 items
    np.testing.assert_array_equal(out.get(), np.maximum(np.arange(6) - 2, 0))


def test_empty_is_poisoned_and_views_write_through(cp):
    e = cp.empty((3,), dtype=cp.float32)
    assert np.isnan(e.get()).all()
    z = cp.zeros((2, 3), dtype=cp.float32)
    z[1].reshape(3)[:] = 5
    z[:, :1] += cp.ones((2, 1), dtype=cp.float32)
    np.testing.assert_array_equal(z.get(), [[1, 0, 0], [6, 5, 5]])


def test_elementwise_and_reduction_kernels_compile_their_c_expressions(cp, rng):
    dot = backend.gpu(cp).dot64()               # backend.dot64(cp): a cupy.ReductionKernel
    x = rng.standard_normal(1001).astype(np.float32)
    y = rng.standard_normal(1001).astype(np.float32)
    d = dot(cp.asarray(x), cp.asarray(y))
    assert isinstance(d, cp.ndarray) and d.dtype == np.float64 and d.shape == ()
    assert abs(float(d) - np.dot(x.astype(np.float64), y.astype(np.float64))) < 1e-12 * np.abs(x * y).sum()
    with pytest.raises(TypeError, match="mismatched"):
        dot(cp.asarray(x.astype(np.float64)), cp.asarray(y))
    axpy = cp.ElementwiseKernel("T a, T x, T y", "T z", "z = a * x + y", "axpy")
    z = axpy(np.float32(2), cp.asarray(x), cp.asarray(y))
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.get(), 2 * x + y, rtol=1e-6, atol=1e-6)
    ssq = cp.ReductionKernel("T x", "T y", "x * x", "a + b", "y = sqrt(a)", "0", "norm")
    np.testing.assert_allclose(float(ssq(cp.asarray(x))), np.linalg.norm(x), rtol=1e-5)


# ---------------------------------------------------------------- each GPU kernel against the NumPy kernel

CONV_CASES = [  # (C, O, H, W, K, stride, pad)
    (3, 4, 7, 9, 3, 1, 1), (2, 3, 13, 11, 5, 3, 0), (3, 2, 9, 8, 5, 1, 2), (4, 3, 6, 5, 1, 1, 0),
    (3, 4, 9, 10, 3, 2, 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("banded", [False, True])
def test_conv_kernels_match_numpy(cp, kern, case, banded, rng, monkeypatch):
    c, o, h, w, k, s, p = case
    if banded:   # several bands of output rows: the chunked im2col and accumulating col2im
        monkeypatch.setattr(gk, "CHUNK_ELEMS", c * k * k * 3)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, k, k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    d = rng.standard_normal((2, o, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)).astype(np.float32)
    ref, rcache = np_conv.forward(x, wt, b, s, p)
    out, cache = kern.conv.forward(cp.asarray(x), cp.asarray(wt), cp.asarray(b), s, p)
    assert isinstance(out, cp.ndarray) and out.dtype == np.float32 and out.shape == ref.shape
    assert rel(out.get(), ref) < 1e-5
    dx = kern.conv.backward(cp.asarray(d), cache)
    assert isinstance(dx, cp.ndarray) and rel(dx.get(), np_conv.backward(d, rcache)) < 1e-5
    fused, fcache = kern.conv.forward_relu(cp.asarray(x), cp.asarray(wt), cp.asarray(b), s, p)
    mask = fcache[4].get()
    assert rel(fused.get(), np.maximum(ref, 0)) < 1e-5
    np.testing.assert_array_equal(mask, fused.get() > 0)
    assert rel(kern.conv.backward(cp.asarray(d), fcache).get(), np_conv.backward(d * mask, rcache)) < 1e-5
    assert fakecupy.launches["im2col_rows"] >= (4 if banded else 2) and fakecupy.launches["col2im_rows"] >= 2
    assert fakecupy.launches["add_bias"] == 1 and fakecupy.launches["add_bias_relu"] == 1


POOL_CASES = [  # (H, W, k, stride, pad, ceil)
    (8, 8, 2, 2, 0, False), (7, 9, 2, 2, 0, True), (7, 7, 3, 2, 1, True), (9, 6, 3, 1, 1, False),
]


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_kernels_match_numpy(cp, kern, case, mode, rng):
    h, w, k, s, p, ceil = case
    x = rng.integers(-2, 3, size=(2, 3, h, w)).astype(np.float32)     # many ties: the first maximum wins
    ref, rcache = np_pool.forward(x, k, s, p, ceil, mode)
    out, cache = kern.pool.forward(cp.asarray(x), k, s, p, ceil, mode)
    assert isinstance(out, cp.ndarray)
    np.testing.assert_allclose(out.get(), ref, rtol=1e-6, atol=1e-6)
    if mode == "max":
        np.testing.assert_array_equal(cache[-1].get(), rcache[-1])     # the same winning taps
    d = rng.standard_normal(ref.shape).astype(np.float32)
    dx = kern.pool.backward(cp.asarray(d), cache)
    np.testing.assert_allclose(dx.get(), np_pool.backward(d, rcache), rtol=1e-5, atol=1e-5)
    assert fakecupy.launches[f"{mode}pool_fwd"] == 1 and fakecupy.launches[f"{mode}pool_bwd"] == 1


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_kernels_match_numpy(cp, kern, inplace, rng):
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    x[0, 0, 0, :2] = 0.0
    ref, rmask = np_relu.forward(x.copy())
    xin = cp.asarray(x)
    out, mask = kern.relu.forward(xin, inplace=inplace)
    assert (out is xin) == inplace and mask.dtype == np.bool_
    np.testing.assert_array_equal(out.get(), ref)
    np.testing.assert_array_equal(mask.get(), x > 0)
    d = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(kern.relu.backward(cp.asarray(d), mask).get(), np_relu.backward(d, rmask))
    assert fakecupy.launches["relu_fwd"] == 1 and fakecupy.launches["relu_bwd"] == 1


# ---------------------------------------------------------------- the untrained VGG-19: network and objective

def test_network_features_and_input_gradient_match_numpy(installed, vgg19, rng):
    """Max pooling, features asked at a conv (unfused) and at ReLUs (fused), gradient back to the pixels."""
    cp = installed
    x = rng.standard_normal((1, 3, 32, 36)).astype(np.float32)
    layers = ["relu1_1", "conv3_1", "relu5_1"]
    ref_net, net = Network(vgg19, "max"), Network(vgg19, "max", kernels=gk.build(cp))
    f_ref, c_ref = ref_net.forward(x.copy(), layers)
    f, c = net.forward(cp.asarray(x), layers)
    r = {n: rng.standard_normal(f_ref[n].shape).astype(np.float32) for n in layers}
    for n in layers:
        assert isinstance(f[n], cp.ndarray) and rel(f[n].get(), f_ref[n]) < 1e-5, n
    dx = net.backward({n: cp.asarray(v) for n, v in r.items()}, c)
    assert isinstance(dx, cp.ndarray) and rel(dx.get(), ref_net.backward(r, c_ref)) < 1e-5


@pytest.mark.slow
def test_objective_loss_and_gradient_match_numpy(installed, vgg19, rng):
    """Gatys' objective (content relu4_2, style relu1_1..relu5_1, TV; avg pooling) at 40x32 px."""
    cp = installed
    content = rng.uniform(0, 1, (3, 32, 40)).astype(np.float32)
    style = rng.uniform(0, 1, (3, 36, 36)).astype(np.float32)
    img = np.clip(content + 0.1 * rng.standard_normal(content.shape), 0, 1).astype(np.float32)
    style_layers = {n: 0.2 for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}
    args = ([1.0], {"relu4_2": 1.0}, style_layers, 1.0, 5.0, 0.5)
    obj_np = Objective(Network(vgg19, "avg"), content, [style], *args)
    obj_gpu = Objective(Network(vgg19, "avg", kernels=gk.build(cp)), cp.asarray(content), [cp.asarray(style)], *args)
    loss, g, parts = obj_np.evaluate(img.copy())
    lg, gg, pg = obj_gpu.evaluate(cp.asarray(img))
    assert isinstance(gg, cp.ndarray) and gg.dtype == np.float32 and gg.shape == img.shape
    assert abs(lg - loss) < 1e-5 * loss
    assert parts.keys() == pg.keys() and all(abs(pg[k] - parts[k]) < 1e-5 * loss for k in parts)
    assert rel(gg.get(), g) < 1e-4


@pytest.mark.slow
def test_tiled_objective_on_the_gpu_path_matches_the_cpu(installed, vgg19, rng):
    """Exact tiling (tiling.py) on device arrays: 6 tiles of 32 px with the 80 px halo at 72x56 px, against the
    NumPy objective evaluated whole and in the same tiles (float32: to rounding)."""
    cp = installed
    content = rng.uniform(0, 1, (3, 56, 72)).astype(np.float32)
    style = rng.uniform(0, 1, (3, 40, 40)).astype(np.float32)
    img = np.clip(content + 0.1 * rng.standard_normal(content.shape), 0, 1).astype(np.float32)
    args = ([1.0], {"relu4_2": 1.0}, {n: 0.25 for n in ("relu1_1", "relu3_1", "relu5_1")}, 1.0, 5.0, 0.5)
    whole = Objective(Network(vgg19, "avg"), content, [style], *args)
    tiled_np = Objective(Network(vgg19, "avg"), content, [style], *args, tile=32)
    tiled = Objective(Network(vgg19, "avg", kernels=gk.build(cp)), cp.asarray(content), [cp.asarray(style)], *args,
                      tile=32)
    assert len(tiled.tiles) == len(tiled_np.tiles) == 6
    loss, g, _ = whole.evaluate(img.copy())
    ln, gn, _ = tiled_np.evaluate(img.copy())
    lg, gg, _ = tiled.evaluate(cp.asarray(img))
    assert isinstance(gg, cp.ndarray) and gg.shape == img.shape
    assert abs(lg - loss) < 1e-5 * loss and abs(ln - loss) < 1e-5 * loss
    assert rel(gg.get(), g) < 1e-4 and rel(gg.get(), gn) < 1e-4


def test_the_memory_plan_on_the_gpu_reads_the_device_and_keeps_scipy_history_on_the_host(cp, vgg19, monkeypatch):
    """The budget is 80% of the device's free memory; scipy's L-BFGS history is not counted against it, so a
    2048 px run on a 3 GiB device is tiled with scipy's history kept, where the host budget would shorten it."""
    from vggnumpy.run import pipeline as api
    from vggnumpy import config
    from vggnumpy.run import memory
    monkeypatch.setattr(cp.cuda.Device, "mem_info", property(lambda self: (3 << 30, 16 << 30)))
    # what earlier tests left resident in this process must not shrink the host budget (the plan counts it)
    monkeypatch.setattr(memory, "resident", lambda: memory.CALIBRATION_RESIDENT)
    o = config.make(size=2048).resolved(True)
    setup = api.network(vgg19, o, backend.gpu(cp))
    assert setup.backend.available() == (3 << 30)        # the device's free memory (the stand-in's pool is empty)
    logs = []
    p = api.memory_plan(setup, (2048, 2048), [(512, 512)], logs.append)
    assert p.tile is not None and p.optimizer == "lbfgs" and p.memory == o.lbfgs_memory, p
    assert p.peak <= int(0.8 * (3 << 30)) and "(GPU)" in logs[0]
    host_setup = api.network(vgg19, dataclasses.replace(o, max_memory=int(0.8 * (3 << 30))), backend.cpu())
    host = api.memory_plan(host_setup, (2048, 2048), [(512, 512)], lambda m: None)
    assert (host.optimizer, host.memory) != ("lbfgs", o.lbfgs_memory)


# ---------------------------------------------------------------- stylize end to end: device gpu against cpu

@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs-device", "adam"])
@pytest.mark.slow
def test_stylize_on_the_gpu_path_matches_the_cpu(installed, vgg19, optimizer, rng):
    import vggnumpy
    content = rng.uniform(0, 1, (24, 32, 3)).astype(np.float32)      # 32 px on its long side: not resized
    style = rng.uniform(0, 1, (28, 28, 3)).astype(np.float32)
    kw = dict(size=32, iterations=4, scales=1, weights=vgg19, progress=False, optimizer=optimizer,
              log=lambda msg: None)
    ref = vggnumpy.stylize(content, [style], device="cpu", **kw)
    assert sum(fakecupy.launches.values()) == 0                          # the CPU run never touches the stand-in
    res = vggnumpy.stylize(content, [style], device="gpu", **kw)
    assert type(res.image) is np.ndarray and res.image.dtype == np.float32 and res.image.shape == ref.image.shape
    assert res.iterations == ref.iterations == 4
    diff = np.abs(res.image - ref.image)
    assert diff.mean() < 1e-4 and diff.max() < 1 / 255
    assert abs(res.loss - ref.loss) < 1e-4 * ref.loss
    assert np.abs(ref.image - content).mean() > 1e-3                     # the run did move the pixels
    # The layers ran as the CUDA kernels (fused conv+ReLU, avg pooling of the untrained defaults, backward).
    for name in ("im2col_rows", "add_bias_relu", "col2im_rows", "relu_bwd", "avgpool_fwd", "avgpool_bwd"):
        assert fakecupy.launches[name] > 0, name
    assert (fakecupy.launches["vggnumpy_dot64"] > 0) == (optimizer == "lbfgs-device")


@pytest.mark.slow
def test_masks_and_colour_control_on_the_gpu_path_match_the_cpu(installed, vgg19, rng, tmp_path):
    """Guided Gram terms (their guides moved to the device) and histogram matching on the GPU path: the same
    image as on the CPU (mean difference below 1e-4)."""
    import vggnumpy
    from PIL import Image
    content = rng.uniform(0, 1, (24, 32, 3)).astype(np.float32)
    styles = [rng.uniform(0, 1, (28, 28, 3)).astype(np.float32) ** k for k in (1, 3)]
    left = np.zeros((24, 32), np.uint8)
    left[:, :16] = 255
    Image.fromarray(left).save(tmp_path / "l.png")
    Image.fromarray(255 - left).save(tmp_path / "r.png")
    kw = dict(size=32, iterations=4, scales=1, weights=vgg19, progress=False, log=lambda msg: None,
              masks=(str(tmp_path / "l.png"), str(tmp_path / "r.png")), color_transfer="histogram:chol")
    ref = vggnumpy.stylize(content, styles, device="cpu", **kw)
    res = vggnumpy.stylize(content, styles, device="gpu", **kw)
    assert "style relu5_1 region 2" in res.parts and res.parts.keys() == ref.parts.keys()
    diff = np.abs(res.image - ref.image)
    assert diff.mean() < 1e-4 and diff.max() < 1 / 255
    assert fakecupy.launches["add_bias_relu"] > 0
