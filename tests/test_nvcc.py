"""The CUDA sources without a GPU: nvcc compiles every one for sm_90 (and rejects a broken copy), and the same
text, built for the host with a C++ compiler and launched over the grid and block the GPU code asks for
(tests/fakecupy.py), runs the GPU layer code against the NumPy loop references."""
import glob
import os
import shutil
import subprocess
import types

import numpy as np
import pytest

import fakecupy
from vggnumpy.nn.gpu import kernels as gk
from vggnumpy.nn.kernels import conv as np_conv, pool as np_pool, relu as np_relu

GPU_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vggnumpy", "nn", "gpu")
SOURCES = sorted(glob.glob(os.path.join(GPU_DIR, "*.cu")))
NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if os.path.exists("/usr/local/bin/nvcc") else None)


def _nvcc(paths, outdir):
    """One nvcc call for all sources, device code for the H200 (sm_90), warnings as errors."""
    cmd = [NVCC, "-arch=sm_90", "-c", "-Werror", "all-warnings", "-odir", str(outdir), *paths]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_sources_present():
    names = {os.path.basename(p) for p in SOURCES}
    assert {"conv.cu", "pool.cu", "relu.cu"} <= names


@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
@pytest.mark.slow
def test_every_cuda_source_compiles_with_nvcc(tmp_path):
    res = _nvcc(SOURCES, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    for p in SOURCES:
        assert (tmp_path / (os.path.splitext(os.path.basename(p))[0] + ".o")).stat().st_size > 0


@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
@pytest.mark.slow
def test_nvcc_rejects_a_broken_source(tmp_path):
    """The check above can fail: a copy with one syntax error does not compile."""
    src = open(os.path.join(GPU_DIR, "relu.cu")).read()
    broken = src.replace("mask[i] = r > 0.0f;", "mask[i] = r > 0.0f", 1)
    assert broken != src
    path = tmp_path / "broken.cu"
    path.write_text(broken)
    res = _nvcc([str(path)], tmp_path)
    assert res.returncode != 0


# ---------------------------------------------------------------- host emulation of the same sources

@pytest.fixture(scope="module")
def host_cp():
    """A NumPy 'cupy' to build vggnumpy.nn.gpu.kernels from: NumPy's namespace, and RawModule built for the host.

    The host build and the launch over the real grid and block are tests/fakecupy.py's (HostModule); here the
    kernels take plain NumPy arrays, while tests/test_gpu_dryrun.py runs the same sources under the whole
    stand-in (device arrays, the GPU path end to end). The kernels take their CuPy module as an argument, so
    this one is simply passed in: sys.modules is never touched."""
    reason = fakecupy.host_unavailable()
    if reason:
        pytest.skip(reason)
    host = types.ModuleType("numpy_as_cupy")       # a module: hashable, as the kernels' per-module cache needs
    host.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    host.RawModule = lambda code, options=(): fakecupy.HostModule(code, options)
    return host


@pytest.fixture(scope="module")
def host_kernels(host_cp):
    """gk.build(host_cp): host_kernels.conv, .pool, .relu on NumPy arrays."""
    return types.SimpleNamespace(**gk.build(host_cp))


def test_compile_all_names_every_kernel_of_the_sources(host_cp):
    """compile_all() resolves exactly the extern "C" kernels the .cu files define, each built for the host."""
    defined = set()
    for path in SOURCES:
        with open(path) as f:
            defined |= set(fakecupy.kernel_signatures(f.read()))
    names = gk.compile_all(host_cp)
    assert len(names) == len(set(names))
    assert set(names) == defined


CONV_CASES = [  # (C, O, H, W, K, stride, pad)
    (3, 4, 7, 9, 3, 1, 1),
    (2, 3, 23, 21, 11, 4, 0),
    (3, 2, 9, 8, 5, 1, 2),
    (4, 3, 6, 5, 1, 1, 0),
    (3, 4, 9, 10, 3, 2, 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("banded", [False, True])
def test_host_emulated_conv_matches_loop_reference(host_kernels, case, banded, rng, monkeypatch):
    c, o, h, w, k, s, p = case
    if banded:   # force several bands of output rows: exercises the chunked im2col/col2im path
        monkeypatch.setattr(gk, "CHUNK_ELEMS", c * k * k * 3)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, k, k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    out, cache = host_kernels.conv.forward(x, wt, b, s, p)
    ref, rcache = np_conv.forward_ref(x, wt, b, s, p)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    d = rng.standard_normal(ref.shape).astype(np.float32)
    np.testing.assert_allclose(host_kernels.conv.backward(d, cache), np_conv.backward_ref(d, rcache),
                               rtol=1e-4, atol=1e-4)
    # The fused conv + bias + ReLU: its output, mask and the masked input gradient.
    fused, fcache = host_kernels.conv.forward_relu(x, wt, b, s, p)
    np.testing.assert_allclose(fused, np.maximum(ref, 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(fcache[4], fused > 0)
    np.testing.assert_allclose(host_kernels.conv.backward(d, fcache), np_conv.backward_ref(d * fcache[4], rcache),
                               rtol=1e-4, atol=1e-4)


POOL_CASES = [  # (H, W, k, stride, pad, ceil)
    (8, 8, 2, 2, 0, False), (7, 9, 2, 2, 0, True), (7, 7, 3, 2, 1, True), (9, 6, 3, 1, 1, False),
    (5, 8, 3, 3, 0, True),
]


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_host_emulated_pool_matches_loop_reference(host_kernels, case, mode, rng):
    h, w, k, s, p, ceil = case
    # Few distinct values: many ties, which must go to the first maximum as in the reference.
    x = rng.integers(-2, 3, size=(2, 3, h, w)).astype(np.float32)
    out, cache = host_kernels.pool.forward(x, k, s, p, ceil, mode)
    ref, rcache = np_pool.forward_ref(x, k, s, p, ceil, mode)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    d = rng.standard_normal(ref.shape).astype(np.float32)
    np.testing.assert_allclose(host_kernels.pool.backward(d, cache), np_pool.backward_ref(d, rcache),
                               rtol=1e-5, atol=1e-5)
    _, ncache = np_pool.forward(x, k, s, p, ceil, mode)   # the same cache as the NumPy kernel
    if mode == "max":
        np.testing.assert_array_equal(cache[-1], ncache[-1])


@pytest.mark.parametrize("inplace", [False, True])
def test_host_emulated_relu_matches_loop_reference(host_kernels, inplace, rng):
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    x[0, 0, 0, :2] = 0.0
    ref, rmask = np_relu.forward_ref(x)
    xin = x.copy()
    out, mask = host_kernels.relu.forward(xin, inplace=inplace)
    assert (out is xin) == inplace
    np.testing.assert_array_equal(out, ref)
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, rmask)
    d = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(host_kernels.relu.backward(d, mask), np_relu.backward_ref(d, rmask))


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.slow
def test_host_emulated_network_matches_numpy_path(host_cp, pooling, rng):
    """The whole VGG-19 to relu5_1 and its input gradient through the GPU layer code, against the NumPy path."""
    from vggnumpy.nn.network import Network
    from vggnumpy.weights.file import random_weights
    w = random_weights("vgg19", seed=3)
    x = rng.standard_normal((1, 3, 32, 40)).astype(np.float32)
    ref_net, net = Network(w, pooling), Network(w, pooling, kernels=gk.build(host_cp))
    f_ref, c_ref = ref_net.forward(x.copy(), ["relu1_1", "relu5_1"])
    f, c = net.forward(x.copy(), ["relu1_1", "relu5_1"])
    r = {n: rng.standard_normal(f_ref[n].shape).astype(np.float32) for n in f_ref}
    rel = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())
    for n in f_ref:
        assert rel(f[n], f_ref[n]) < 1e-4
    assert rel(net.backward(r, c), ref_net.backward(r, c_ref)) < 1e-4
