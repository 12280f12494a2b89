"""2-D convolution (cross-correlation, as in every framework) forward and input gradient, NCHW, any kernel/stride/pad.

forward(x, w, b, stride, pad) -> (out, cache); forward_relu(...) the same followed by a ReLU, fused;
backward(dout, cache) -> dx (applying the ReLU's mask when the cache came from forward_relu). Weight gradients
are never needed: style transfer optimises pixels only. forward_ref/backward_ref are loop versions for tests and
benchmarks. Stride 1 runs as Winograd F(4x4, 3x3) (winograd.py) where the channel counts make it pay, else as
shifted-slice GEMMs or a column block (_conv_s1); other strides as chunked im2col.
"""
import weakref

import numpy as np

from . import parallel, winograd

# How many float elements one block of work may hold (columns of im2col, an input band, an output block):
# blocks are built, multiplied and dropped one after another, so nothing of a whole large layer is duplicated.
CHUNK_ELEMS = 1 << 22


def _out_size(size, k, stride, pad):
    return (size + 2 * pad - k) // stride + 1


def _pad(x, pad):
    """Zero-pad the two spatial axes of (C, H, W)."""
    if pad == 0:
        return x
    c, h, w = x.shape
    xp = np.zeros((c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    xp[:, pad:pad + h, pad:pad + w] = x
    return xp


def _tap_weights(w, transposed=False):
    """(O, C, KH, KW) -> (KH*KW*O, C): the (O, C) matrices of the kernel taps stacked in row-major tap order.

    transposed=True gives the taps of the input gradient's kernel (flipped in space, channels swapped):
    the same matrices in reverse tap order, each transposed: (KH*KW*C, O).
    """
    o, c, kh, kw = w.shape
    taps = w.transpose(2, 3, 0, 1).reshape(kh * kw, o, c)
    if transposed:
        taps = taps[::-1].transpose(0, 2, 1)
    return np.ascontiguousarray(taps).reshape(-1, taps.shape[2])


def _conv_s1(x, wmat, kh, kw, pad, out, bias=None, relu_mask=None, in_mask=None, columns=False):
    """Stride-1 convolution of one image x (C, H, W), written into out (O, Ho, Wo).

    wmat is (KH*KW*O, C) from _tap_weights (shifted slices) or, with columns=True, (O, KH*KW*C) from
    _column_weights (a column block per band, for inputs with few channels).
    Why it is fast: a block of whole output rows needs a band of padded input rows; flattened to (C, m), moving
    the kernel by (i, j) is a plain offset i*Wp + j into that band. So ONE GEMM (KH*KW*O, C) @ (C, m) gives every
    tap's response at every band position, and tap t's contribution to the outputs is the slice Y[t][:, off_t:]:
    the KH*KW shifted slices are summed (no window or column matrix is ever copied, only the band, with KH-1 halo
    rows). One call per block with M = KH*KW*O rows lets BLAS pack the band once for all taps, which matters for
    the 64- and 128-channel layers where a K=C, M=O product is dominated by packing. When C is small (conv1_1's
    3 channels) a K=C product is hopeless, so the shifted slices are instead copied, each one contiguous run per
    channel, into a (KH*KW*C, m) column block for one (O, KH*KW*C) GEMM. Either way the block stays in cache
    while the bias, the ReLU and its mask are applied, split over the cores (parallel.split), and is then
    written out once; the KW-1 wrap-around columns of each row are dropped.
    in_mask (C, H, W) bool multiplies x while the band is copied (the backward of the ReLU that followed, for
    free); relu_mask (O, Ho, Wo) bool, when given, asks for out = max(conv, 0) and receives out > 0.
    """
    c, h, w = x.shape
    taps = kh * kw
    o = wmat.shape[0] if columns else wmat.shape[0] // taps
    wp = w + 2 * pad
    ho, wo = h + 2 * pad - kh + 1, wp - kw + 1
    offs = [i * wp + j for i in range(kh) for j in range(kw)]
    per_col = taps * c + o if columns else max(taps * o, c)
    rows = max(1, min(ho, CHUNK_ELEMS // (per_col * wp)))            # whole output rows per block
    band_buf = np.empty(c * ((rows + kh - 1) * wp + kw - 1), dtype=x.dtype)
    y_buf = np.empty((taps * c + o if columns else taps * o) * ((rows + kh - 1) * wp + kw - 1), dtype=x.dtype)
    for r0 in range(0, ho, rows):
        r1 = min(r0 + rows, ho)
        n, m = (r1 - r0) * wp, (r1 - r0 + kh - 1) * wp + kw - 1
        band = band_buf[:c * m].reshape(c, m)                          # (C, band rows * Wp + KW-1)
        top, bot = max(r0 - pad, 0), min(r1 + kh - 1 - pad, h)         # image rows inside the band

        def fill(a, b):
            band[a:b] = 0
            if bot > top:
                dst = band[a:b, :m - kw + 1].reshape(b - a, -1, wp)[:, top - (r0 - pad):bot - (r0 - pad), pad:pad + w]
                if in_mask is None:
                    dst[...] = x[a:b, top:bot]
                else:
                    np.multiply(x[a:b, top:bot], in_mask[a:b, top:bot], out=dst)
        parallel.split(fill, c, min_size=8)
        if columns:
            cols = y_buf[:taps * c * n].reshape(taps, c, n)
            parallel.split(lambda a, b: [np.copyto(cols[t], band[:, offs[t]:offs[t] + n]) for t in range(a, b)], taps)
            acc = y_buf[taps * c * n:taps * c * n + o * n].reshape(o, n)
            np.matmul(wmat, cols.reshape(taps * c, n), out=acc)          # (O, KH*KW*C) @ (KH*KW*C, n)
        else:
            y = y_buf[:taps * o * m].reshape(taps, o, m)
            np.matmul(wmat, band, out=y.reshape(taps * o, m))             # (KH*KW*O, m): all taps at once

        def finish(a, b):                                              # output channels a..b
            if columns:
                s = acc[a:b]
            else:
                s = y[0, a:b, :n]                                      # tap 0 has offset 0: sum in place
                for t in range(1, taps):
                    s += y[t, a:b, offs[t]:offs[t] + n]
            if bias is not None:
                s += bias[a:b, None]
            blk = s.reshape(b - a, r1 - r0, wp)[:, :, :wo]            # (O, rows, Wo)
            if relu_mask is None:
                out[a:b, r0:r1] = blk
            else:
                np.maximum(blk, 0, out=out[a:b, r0:r1])
                np.greater(out[a:b, r0:r1], 0, out=relu_mask[a:b, r0:r1])
        parallel.split(finish, o, min_size=8)
    return out


# Winograd F(4x4, 3x3) (winograd.py) does 4x fewer multiplications but adds two transforms whose cost grows with
# C and O separately, and a per-call kernel transform whose cost grows with C*O only: it pays once both channel
# counts and the image are large. The thresholds come from bench_layers.py (benchmarks/README.md): at 512 px it
# wins from conv3_2 on (256 channels, 128x128) and loses on conv3_1 (128 -> 256) and on 32x32 and smaller maps.
WINOGRAD_MIN_CHANNELS = 256       # Winograd when C and O are both at least this; None: never
WINOGRAD_MIN_PIXELS = 48 * 48     # ... and the output has at least this many pixels
COLUMNS_MAX_K = 64                # a column block (one K = KH*KW*C GEMM) when KH*KW*C is at most this


def _cached(w, kind, make):
    """make(w), computed once per kernel array (weights do not change between evaluations)."""
    key = (id(w), kind)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is w:
        return hit[1]
    val = make(w)
    try:
        _CACHE[key] = (weakref.ref(w, lambda _, key=key: _CACHE.pop(key, None)), val)
    except TypeError:             # no weak reference possible: do not cache
        pass
    return val


_CACHE = {}                       # (id(kernel), kind) -> (weak reference to the kernel, derived array)


def _column_weights(w):
    """(O, C, KH, KW) -> (O, KH*KW*C), columns in tap-major order like the column block."""
    o, c, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c))


def stride1_path(c, o, kh, kw, pixels):
    """Which stride-1 routine runs a C -> O convolution with a KH x KW kernel and `pixels` outputs per channel:
    'winograd', 'columns' or 'slices'."""
    if (kh == kw == 3 and WINOGRAD_MIN_CHANNELS is not None and min(c, o) >= WINOGRAD_MIN_CHANNELS
            and pixels >= WINOGRAD_MIN_PIXELS):
        return "winograd"
    return "columns" if kh * kw * c <= COLUMNS_MAX_K else "slices"


def _conv_s1_any(x, w, pad, out, bias=None, relu_mask=None, in_mask=None, transposed=False):
    """Stride-1 convolution of one image with kernel w (O, C, KH, KW), or with its flipped transpose
    (transposed=True: the input gradient's kernel), by Winograd, a column block or shifted slices."""
    o, c, kh, kw = w.shape
    if transposed:
        o, c = c, o
    path = stride1_path(c, o, kh, kw, out.shape[1] * out.shape[2])
    if path == "winograd":
        u = winograd.weights(w, flipped=transposed)                   # (36, O, C), made per call: see weights()
        if transposed:
            u = u.transpose(0, 2, 1)                                   # (36, C, O): channels swapped, no copy
        return winograd.conv3x3(x, u, pad, out, bias, relu_mask, in_mask, chunk=CHUNK_ELEMS)
    if path == "columns":
        wmat = _cached(w, ("columns", transposed), lambda w: _column_weights(_flipped(w) if transposed else w))
        return _conv_s1(x, wmat, kh, kw, pad, out, bias, relu_mask, in_mask, columns=True)
    wall = _cached(w, ("taps", transposed), lambda w: _tap_weights(w, transposed))
    return _conv_s1(x, wall, kh, kw, pad, out, bias, relu_mask, in_mask)


def _im2col_rows(xp, kh, kw, stride, r0, r1, wo, cols):
    """Fill cols (KH*KW*C, (r1-r0)*Wo) with the windows of output rows r0..r1 of padded image xp (C, Hp, Wp)."""
    c = xp.shape[0]
    n = r1 - r0
    t = 0
    for i in range(kh):
        for j in range(kw):
            win = xp[:, i + stride * r0:i + stride * (r1 - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            cols[t * c:(t + 1) * c].reshape(c, n, wo)[...] = win
            t += 1


def _rows_per_chunk(k_rows, wo):
    return max(1, CHUNK_ELEMS // max(1, k_rows * wo))


def forward(x, w, b, stride=1, pad=0):
    """x (N, C, H, W), w (O, C, KH, KW), b (O,) -> out (N, O, Ho, Wo)."""
    return _forward(x, w, b, stride, pad, relu=False)


def forward_relu(x, w, b, stride=1, pad=0):
    """max(conv(x), 0) in one pass (N, O, Ho, Wo); the cache carries the ReLU mask, which backward applies.

    Fused because the bias, the ReLU and its mask are then applied to each block of outputs while it is still in
    cache, and the ReLU's backward becomes part of the copy that pads dout: three passes over a whole activation
    (and one whole temporary) fewer per layer and direction.
    """
    return _forward(x, w, b, stride, pad, relu=True)


def _forward(x, w, b, stride, pad, relu):
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2, f"conv: input has {c} channels, kernel expects {c2}"
    ho, wo = _out_size(h, kh, stride, pad), _out_size(wd, kw, stride, pad)
    out = np.empty((n, o, ho, wo), dtype=x.dtype)
    mask = np.empty((n, o, ho, wo), dtype=bool) if relu else None
    bias = b.astype(x.dtype, copy=False)
    if stride == 1:
        w = w.astype(x.dtype, copy=False)
        for i in range(n):
            _conv_s1_any(x[i], w, pad, out[i], bias, None if mask is None else mask[i])
        return out, (x.shape, w, stride, pad, mask)
    wmat = np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c), dtype=x.dtype)  # (O, KH*KW*C)
    for i in range(n):
        xp = _pad(x[i], pad)
        rows = _rows_per_chunk(kh * kw * c, wo)
        cols = np.empty((kh * kw * c, min(rows, ho) * wo), dtype=x.dtype)
        oi = out[i].reshape(o, ho * wo)
        for r0 in range(0, ho, rows):
            r1 = min(r0 + rows, ho)
            colv = cols[:, :(r1 - r0) * wo]
            _im2col_rows(xp, kh, kw, stride, r0, r1, wo, colv)
            np.matmul(wmat, colv, out=oi[:, r0 * wo:r1 * wo])
    out += bias.reshape(1, o, 1, 1)
    if relu:
        np.maximum(out, 0, out=out)
        np.greater(out, 0, out=mask)
    return out, (x.shape, w, stride, pad, mask)


def _flipped(w):
    """The kernel of the input gradient of a stride-1 convolution: flipped in space, transposed in channels."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))                  # (C, O, KH, KW)


def backward(dout, cache):
    """dout (N, O, Ho, Wo) -> dx (N, C, H, W). A cache from forward_relu also applies the ReLU's mask to dout."""
    (n, c, h, wd), w, stride, pad = cache[:4]
    mask = cache[4] if len(cache) > 4 else None
    o, _, kh, kw = w.shape
    _, _, ho, wo = dout.shape
    dx = np.empty((n, c, h, wd), dtype=dout.dtype)
    if stride == 1 and pad <= min(kh, kw) - 1 and kh == kw:
        # The input gradient of a stride-1 convolution is itself a stride-1 convolution of dout with the kernel
        # flipped in space and transposed in channels, padded by K-1-pad: the same fast routine serves both.
        wd_ = w.astype(dout.dtype, copy=False)
        for i in range(n):
            _conv_s1_any(dout[i], wd_, kh - 1 - pad, dx[i], in_mask=None if mask is None else mask[i],
                         transposed=True)
        return dx
    if mask is not None:
        dout = dout * mask
    wmat_t = np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c).T, dtype=dout.dtype)  # (KH*KW*C, O)
    rows = _rows_per_chunk(kh * kw * c, wo)
    for i in range(n):
        dxp = np.zeros((c, h + 2 * pad + stride, wd + 2 * pad + stride), dtype=dout.dtype)
        d = dout[i].reshape(o, ho * wo)
        for r0 in range(0, ho, rows):
            r1 = min(r0 + rows, ho)
            dcols = wmat_t @ d[:, r0 * wo:r1 * wo]                                          # (KH*KW*C, rows*Wo)
            t = 0
            for a in range(kh):
                for bb in range(kw):
                    dxp[:, a + stride * r0:a + stride * (r1 - 1) + 1:stride,
                        bb:bb + stride * (wo - 1) + 1:stride] += dcols[t * c:(t + 1) * c].reshape(c, r1 - r0, wo)
                    t += 1
        dx[i] = dxp[:, pad:pad + h, pad:pad + wd]
    return dx


def forward_ref(x, w, b, stride=1, pad=0):
    """Loop reference: out[n, o, i, j] = sum(window * kernel) + bias."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = _out_size(h, kh, stride, pad), _out_size(wd, kw, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, o, ho, wo), dtype=x.dtype)
    for b_ in range(n):
        for k in range(o):
            for i in range(ho):
                for j in range(wo):
                    win = xp[b_, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[b_, k, i, j] = np.sum(win * w[k]) + b[k]
    return out, (x.shape, w, stride, pad)


def backward_ref(dout, cache):
    """Loop reference: every output's gradient flows back to each input of its window, weighted by the kernel."""
    (n, c, h, wd), w, stride, pad = cache
    o, _, kh, kw = w.shape
    _, _, ho, wo = dout.shape
    dxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=dout.dtype)
    for b_ in range(n):
        for k in range(o):
            for i in range(ho):
                for j in range(wo):
                    dxp[b_, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += dout[b_, k, i, j] * w[k]
    return dxp[:, :, pad:pad + h, pad:pad + wd]
