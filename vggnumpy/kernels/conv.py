"""2-D convolution (cross-correlation, as in every framework) forward and input gradient, NCHW, any kernel/stride/pad.

forward(x, w, b, stride, pad) -> (out, cache); backward(dout, cache) -> dx. Weight gradients are never needed:
style transfer optimises pixels only. forward_ref/backward_ref are loop versions for tests and benchmarks.
"""
import numpy as np

# How many float elements one chunk of the column matrix may hold. A chunk of columns is built, multiplied
# and dropped before the next, so no im2col matrix of a whole large layer ever exists.
CHUNK_ELEMS = 1 << 20


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


def _conv_s1(x, wmat, kh, kw, pad):
    """Stride-1 convolution of one image x (C, H, W) with wmat (O, KH*KW*C) ordered (tap, channel).

    Why it is fast: the padded image is flattened to (C, Hp*Wp). Moving the kernel by (i, j) is then a plain
    offset i*Wp + j into that flat array, so the columns for tap (i, j) are a contiguous slice: no window copy
    and no index arithmetic. Output is computed on the padded-width grid (Ho, Wp) and the KW-1 wrap-around
    columns of each row are dropped at the end. Columns are built and multiplied a chunk at a time (in cache),
    and one GEMM per chunk contracts over all taps and channels at once (K = KH*KW*C), which BLAS runs near peak.
    """
    c, h, w = x.shape
    o = wmat.shape[0]
    hp, wp = h + 2 * pad, w + 2 * pad
    ho, wo = hp - kh + 1, wp - kw + 1
    flat = np.zeros((c, hp * wp + kw - 1), dtype=x.dtype)          # (C, Hp*Wp + KW-1)
    flat[:, :hp * wp].reshape(c, hp, wp)[:, pad:pad + h, pad:pad + w] = x
    n_cols = ho * wp                                                # output on the padded-width grid
    out = np.empty((o, n_cols), dtype=x.dtype)                      # (O, Ho*Wp)
    taps = [i * wp + j for i in range(kh) for j in range(kw)]
    block = max(wp, CHUNK_ELEMS // (c * len(taps)))
    cols = np.empty((len(taps) * c, min(block, n_cols)), dtype=x.dtype)
    for s in range(0, n_cols, block):
        e = min(s + block, n_cols)
        colv = cols[:, :e - s]
        for t, off in enumerate(taps):
            colv[t * c:(t + 1) * c] = flat[:, off + s:off + e]
        np.matmul(wmat, colv, out=out[:, s:e])
    return out.reshape(o, ho, wp)[:, :, :wo]                        # (O, Ho, Wo), a view


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
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2, f"conv: input has {c} channels, kernel expects {c2}"
    ho, wo = _out_size(h, kh, stride, pad), _out_size(wd, kw, stride, pad)
    wmat = np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c), dtype=x.dtype)  # (O, KH*KW*C)
    out = np.empty((n, o, ho, wo), dtype=x.dtype)
    for i in range(n):
        if stride == 1:
            out[i] = _conv_s1(x[i], wmat, kh, kw, pad)
        else:
            xp = _pad(x[i], pad)
            rows = _rows_per_chunk(kh * kw * c, wo)
            cols = np.empty((kh * kw * c, min(rows, ho) * wo), dtype=x.dtype)
            oi = out[i].reshape(o, ho * wo)
            for r0 in range(0, ho, rows):
                r1 = min(r0 + rows, ho)
                colv = cols[:, :(r1 - r0) * wo]
                _im2col_rows(xp, kh, kw, stride, r0, r1, wo, colv)
                np.matmul(wmat, colv, out=oi[:, r0 * wo:r1 * wo])
    out += b.astype(x.dtype, copy=False).reshape(1, o, 1, 1)
    return out, (x.shape, w, stride, pad)


def backward(dout, cache):
    """dout (N, O, Ho, Wo) -> dx (N, C, H, W)."""
    (n, c, h, wd), w, stride, pad = cache
    o, _, kh, kw = w.shape
    _, _, ho, wo = dout.shape
    dx = np.empty((n, c, h, wd), dtype=dout.dtype)
    if stride == 1 and pad <= min(kh, kw) - 1 and kh == kw:
        # The input gradient of a stride-1 convolution is itself a stride-1 convolution of dout with the kernel
        # flipped in space and transposed in channels, padded by K-1-pad: the same fast routine serves both.
        wflip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)                                  # (C, O, KH, KW)
        wmat = np.ascontiguousarray(wflip.transpose(0, 2, 3, 1).reshape(c, kh * kw * o), dtype=dout.dtype)
        for i in range(n):
            dx[i] = _conv_s1(dout[i], wmat, kh, kw, kh - 1 - pad)
        return dx
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
