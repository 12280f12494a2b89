"""The GPU layer kernels: conv, pool and relu with the NumPy kernels' API and caches, as CUDA through CuPy.

build(cupy) -> dict(conv=..., relu=..., pool=...) plugs into Network(kernels=...) (backend.gpu does it); every
function here takes the CuPy module as its first argument, `cp`, so nothing binds CuPy at import and the tests'
stand-in (tests/fakecupy.py) is simply passed in. Everything around the layers
(losses, Gram matrices, objective, optimiser) is the shared code running on CuPy arrays. The CUDA sources are
the *.cu files beside this module, compiled by NVRTC on first use (cupy.RawModule) and by nvcc in the tests.
All kernels take float32, C-contiguous arrays.
"""
import functools
import os
from functools import partial
from types import SimpleNamespace

import numpy as np

from ..kernels import output_size

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ("conv.cu", "pool.cu", "relu.cu")

# Largest column matrix (floats) unrolled at once; a layer whose im2col is bigger is done in bands of output
# rows. 2**28 floats is 1 GiB: big enough that 512 and 1024 px layers need one or a few GEMMs, small enough
# that a 4096 px image fits.
CHUNK_ELEMS = 1 << 28
THREADS = 256
MAX_BLOCKS = 1 << 16


@functools.lru_cache(maxsize=None)
def _module(cp, name):
    with open(os.path.join(HERE, name)) as f:
        return cp.RawModule(code=f.read(), options=("--std=c++14",))


def _fn(cp, source, name):
    return _module(cp, source).get_function(name)


def _launch(kernel, n, args):
    """Run a grid-stride kernel over n items."""
    if n <= 0:
        return
    blocks = int(min((n + THREADS - 1) // THREADS, MAX_BLOCKS))
    kernel((blocks,), (THREADS,), args)


def _f32(cp, a, what):
    if a.dtype != np.float32:
        raise TypeError(f"GPU {what}: float32 only, got {a.dtype}")
    return a if a.flags.c_contiguous else cp.ascontiguousarray(a)


i32, i64 = np.int32, np.int64


# ---------------------------------------------------------------- convolution

def _bands(k_rows, ho, wo):
    """Output rows per band so that the (k_rows, rows*Wo) column matrix stays under CHUNK_ELEMS."""
    return max(1, min(ho, CHUNK_ELEMS // max(1, k_rows * wo)))


def conv_forward(cp, x, w, b, stride=1, pad=0):
    """x (N, C, H, W), w (O, C, KH, KW), b (O,) -> out (N, O, Ho, Wo): im2col per band + one cuBLAS GEMM."""
    return _conv_forward(cp, x, w, b, stride, pad, relu=False)


def conv_forward_relu(cp, x, w, b, stride=1, pad=0):
    """max(conv(x), 0) with the bias, ReLU and mask in one pass; the cache carries the mask for backward."""
    return _conv_forward(cp, x, w, b, stride, pad, relu=True)


def _conv_forward(cp, x, w, b, stride, pad, relu):
    x = _f32(cp, x, "conv")
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2, f"conv: input has {c} channels, kernel expects {c2}"
    ho, wo = output_size(h, kh, stride, pad, False), output_size(wd, kw, stride, pad, False)
    k_rows = c * kh * kw
    wmat = cp.ascontiguousarray(w, dtype=cp.float32).reshape(o, k_rows)         # (O, C*KH*KW)
    out = cp.empty((n, o, ho, wo), dtype=cp.float32)
    rows = _bands(k_rows, ho, wo)
    cols = cp.empty(k_rows * rows * wo, dtype=cp.float32)                       # reused for every band
    im2col = _fn(cp, "conv.cu", "im2col_rows")
    for i in range(n):
        oi = out[i].reshape(o, ho * wo)                                          # (O, Ho*Wo)
        for r0 in range(0, ho, rows):
            r1 = min(r0 + rows, ho)
            colv = cols[:k_rows * (r1 - r0) * wo].reshape(k_rows, (r1 - r0) * wo)   # (C*KH*KW, rows*Wo)
            _launch(im2col, c * (r1 - r0) * wo,
                    (x[i], colv, i32(c), i32(h), i32(wd), i32(kh), i32(kw), i32(stride), i32(pad), i32(wo),
                     i32(r0), i32(r1 - r0)))
            if r0 == 0 and r1 == ho:
                cp.matmul(wmat, colv, out=oi)                                    # whole image: straight in
            else:
                oi[:, r0 * wo:r1 * wo] = cp.matmul(wmat, colv)
    bias = cp.ascontiguousarray(b, dtype=cp.float32)
    if not relu:
        _launch(_fn(cp, "conv.cu", "add_bias"), out.size, (out, bias, i32(o), i64(ho * wo), i64(out.size)))
        return out, (x.shape, w, stride, pad)
    mask = cp.empty(out.shape, dtype=cp.bool_)
    _launch(_fn(cp, "conv.cu", "add_bias_relu"), out.size, (out, bias, mask, i32(o), i64(ho * wo), i64(out.size)))
    return out, (x.shape, w, stride, pad, mask)


def conv_backward(cp, dout, cache):
    """dout (N, O, Ho, Wo) -> dx (N, C, H, W): one GEMM W^T @ dout per band, then a gather col2im.

    A cache from forward_relu (five entries) first passes dout through the ReLU's mask."""
    (n, c, h, wd), w, stride, pad = cache[:4]
    dout = _f32(cp, dout, "conv backward")
    if len(cache) > 4 and cache[4] is not None:
        dout = relu_backward(cp, dout, cache[4])
    o, _, kh, kw = w.shape
    _, _, ho, wo = dout.shape
    k_rows = c * kh * kw
    wmat_t = cp.ascontiguousarray(w, dtype=cp.float32).reshape(o, k_rows).T     # (C*KH*KW, O), a view
    rows = _bands(k_rows, ho, wo)
    single = rows >= ho
    dx = cp.empty((n, c, h, wd), dtype=cp.float32) if single else cp.zeros((n, c, h, wd), dtype=cp.float32)
    col2im = _fn(cp, "conv.cu", "col2im_rows")
    for i in range(n):
        d = dout[i].reshape(o, ho * wo)                                          # (O, Ho*Wo)
        for r0 in range(0, ho, rows):
            r1 = min(r0 + rows, ho)
            dcols = cp.matmul(wmat_t, d[:, r0 * wo:r1 * wo])                     # (C*KH*KW, rows*Wo)
            if single:
                h_lo, h_hi = 0, h                     # every input row written once, uncovered rows get 0
            else:
                h_lo, h_hi = max(0, r0 * stride - pad), min(h, (r1 - 1) * stride - pad + kh)
            if h_hi <= h_lo:
                continue
            _launch(col2im, c * (h_hi - h_lo) * wd,
                    (dcols, dx[i], i32(c), i32(h), i32(wd), i32(kh), i32(kw), i32(stride), i32(pad), i32(wo),
                     i32(r0), i32(r1 - r0), i32(h_lo), i32(h_hi), i32(0 if single else 1)))
    return dx


def conv_weights(cp, dout, x, kshape, stride=1, pad=0):
    """dout (N, O, Ho, Wo), x (N, C, H, W) the convolution's input -> dw (O, C, KH, KW), db (O,): the same
    im2col bands as the forward pass, then dW += dout_band @ cols^T (cuBLAS); what training a network needs."""
    x, dout = _f32(cp, x, "conv weights"), _f32(cp, dout, "conv weights")
    o, c, kh, kw = kshape
    n, _, h, wd = x.shape
    _, _, ho, wo = dout.shape
    k_rows = c * kh * kw
    rows = _bands(k_rows, ho, wo)
    cols = cp.empty(k_rows * rows * wo, dtype=cp.float32)
    dw = cp.zeros((o, k_rows), dtype=cp.float32)                                # (O, C*KH*KW)
    im2col = _fn(cp, "conv.cu", "im2col_rows")
    for i in range(n):
        d = dout[i].reshape(o, ho * wo)
        for r0 in range(0, ho, rows):
            r1 = min(r0 + rows, ho)
            colv = cols[:k_rows * (r1 - r0) * wo].reshape(k_rows, (r1 - r0) * wo)
            _launch(im2col, c * (r1 - r0) * wo,
                    (x[i], colv, i32(c), i32(h), i32(wd), i32(kh), i32(kw), i32(stride), i32(pad), i32(wo),
                     i32(r0), i32(r1 - r0)))
            dw += cp.matmul(d[:, r0 * wo:r1 * wo], colv.T)
    return dw.reshape(o, c, kh, kw), dout.sum(axis=(0, 2, 3))


# ---------------------------------------------------------------- pooling

def pool_forward(cp, x, k=2, stride=2, pad=0, ceil=False, mode="max"):
    """x (N, C, H, W) -> out (N, C, Ho, Wo); max keeps the winning tap index as uint8 for backward."""
    x = _f32(cp, x, "pool")
    n, c, h, w = x.shape
    ho, wo = output_size(h, k, stride, pad, ceil), output_size(w, k, stride, pad, ceil)
    if ho < 1 or wo < 1:
        raise ValueError(f"pool: input {h}x{w} is smaller than the {k}x{k} window")
    if k * k > 256:
        raise ValueError(f"pool: window {k}x{k} too large (tap index kept in one byte)")
    out = cp.empty((n, c, ho, wo), dtype=cp.float32)
    geo = (i32(h), i32(w), i32(ho), i32(wo), i32(k), i32(stride), i32(pad))
    if mode == "max":
        arg = cp.empty((n, c, ho, wo), dtype=cp.uint8)
        _launch(_fn(cp, "pool.cu", "maxpool_fwd"), out.size, (x, out, arg, i64(out.size)) + geo)
    elif mode == "avg":
        arg = None
        _launch(_fn(cp, "pool.cu", "avgpool_fwd"), out.size, (x, out, i64(out.size)) + geo)
    else:
        raise ValueError(f"pool mode must be 'max' or 'avg', not {mode!r}")
    return out, (x.shape, k, stride, pad, ceil, mode, arg)


def pool_backward(cp, dout, cache):
    """dout (N, C, Ho, Wo) -> dx (N, C, H, W)."""
    (n, c, h, w), k, stride, pad, ceil, mode, arg = cache
    dout = _f32(cp, dout, "pool backward")
    _, _, ho, wo = dout.shape
    dx = cp.empty((n, c, h, w), dtype=cp.float32)
    geo = (i32(h), i32(w), i32(ho), i32(wo), i32(k), i32(stride), i32(pad))
    if mode == "max":
        _launch(_fn(cp, "pool.cu", "maxpool_bwd"), dx.size, (dout, cp.ascontiguousarray(arg), dx, i64(dx.size)) + geo)
    else:
        _launch(_fn(cp, "pool.cu", "avgpool_bwd"), dx.size, (dout, dx, i64(dx.size)) + geo)
    return dx


# ---------------------------------------------------------------- ReLU

def relu_forward(cp, x, inplace=False):
    """x (any shape) -> (max(x, 0), mask out > 0 as bool), in one pass; in place when asked and possible."""
    x = _f32(cp, x, "relu")        # a copy only if x was not contiguous, then 'in place' is on that copy
    out = x if inplace else cp.empty_like(x)
    mask = cp.empty(x.shape, dtype=cp.bool_)
    _launch(_fn(cp, "relu.cu", "relu_fwd"), x.size, (x, out, mask, i64(x.size)))
    return out, mask


def relu_backward(cp, dout, cache):
    dout = _f32(cp, dout, "relu backward")
    dx = cp.empty_like(dout)
    _launch(_fn(cp, "relu.cu", "relu_bwd"), dout.size, (dout, cache, dx, i64(dout.size)))
    return dx


def build(cp):
    """The kernels on CuPy module `cp`, in the interface Network(kernels=...) takes: dict(conv=, pool=, relu=)."""
    bind = lambda **fns: SimpleNamespace(**{k: partial(f, cp) for k, f in fns.items()})
    return dict(conv=bind(forward=conv_forward, forward_relu=conv_forward_relu, backward=conv_backward,
                           weights=conv_weights),
                pool=bind(forward=pool_forward, backward=pool_backward),
                relu=bind(forward=relu_forward, backward=relu_backward))


def compile_all(cp):
    """Compile every kernel now (NVRTC, needs a device); returns the kernel names. For tests and warm-up."""
    names = {"conv.cu": ("im2col_rows", "col2im_rows", "add_bias", "add_bias_relu"),
             "pool.cu": ("maxpool_fwd", "maxpool_bwd", "avgpool_fwd", "avgpool_bwd"),
             "relu.cu": ("relu_fwd", "relu_bwd")}
    for src, fns in names.items():
        for f in fns:
            _fn(cp, src, f)
    return [f for fns in names.values() for f in fns]
