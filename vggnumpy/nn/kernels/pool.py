"""Max and average pooling forward and backward, NCHW, any window, stride and padding, with ceil mode.

Max-pool ties (common after ReLU, where many inputs are 0) send the whole gradient to one element: the first
maximum in row-major window order, as PyTorch and Caffe do. Average pooling divides by the window's size clipped
to the padded input (PyTorch's count_include_pad=True, Caffe's rule); with pad=0 that is the in-image count.
forward and backward take engine= (engine.Engine, whose threads run the 2x2 average pooling; default a fresh one).
"""
import numpy as np

from . import output_size
from .engine import Engine


def _geometry(h, w, k, stride, pad, ceil):
    ho, wo = output_size(h, k, stride, pad, ceil), output_size(w, k, stride, pad, ceil)
    # The padded frame must hold every window, including ceil mode's last partial one.
    hp = max(h + 2 * pad, (ho - 1) * stride + k)
    wp = max(w + 2 * pad, (wo - 1) * stride + k)
    return ho, wo, hp, wp


def _divisor(h, w, k, stride, pad, ho, wo, dtype):
    """(Ho, Wo) window sizes clipped to the padded input [-pad, size+pad)."""
    def one(size, n):
        start = np.arange(n) * stride - pad
        return np.minimum(start + k, size + pad) - start
    return np.outer(one(h, ho), one(w, wo)).astype(dtype)


def _taps(k, stride, ho, wo):
    """Slices of the padded frame that give tap (i, j) of every window."""
    for i in range(k):
        for j in range(k):
            yield i * k + j, (slice(i, i + stride * (ho - 1) + 1, stride), slice(j, j + stride * (wo - 1) + 1, stride))


def forward(x, k=2, stride=2, pad=0, ceil=False, mode="max", engine=None):
    """x (N, C, H, W) -> out (N, C, Ho, Wo)."""
    n, c, h, w = x.shape
    ho, wo, hp, wp = _geometry(h, w, k, stride, pad, ceil)
    if ho < 1 or wo < 1:
        raise ValueError(f"pool: input {h}x{w} is smaller than the {k}x{k} window")
    if mode == "max" and k == stride == 2 and pad == 0 and hp == h and wp == w:
        out, arg = _max2x2(x, ho, wo)
        return out, (x.shape, k, stride, pad, ceil, mode, arg)
    if mode == "avg" and k == stride == 2 and pad == 0 and hp == h and wp == w:
        return _avg2x2(x, ho, wo, engine), (x.shape, k, stride, pad, ceil, mode, None)
    fill = -np.inf if mode == "max" else 0
    if pad == 0 and hp == h and wp == w:
        xp = x
    else:
        xp = np.full((n, c, hp, wp), fill, dtype=x.dtype)
        xp[:, :, pad:pad + h, pad:pad + w] = x
    if mode == "max":
        # Why it is fast: one vectorised compare per tap (k*k of them) instead of a loop per window;
        # the winning tap is kept as one byte per output, all that backward needs.
        out, arg = None, np.zeros((n, c, ho, wo), dtype=np.uint8)
        better = np.empty((n, c, ho, wo), dtype=bool)
        for t, (si, sj) in _taps(k, stride, ho, wo):
            v = xp[:, :, si, sj]
            if out is None:
                out = v.copy()
                continue
            np.greater(v, out, out=better)        # strict: ties keep the first maximum
            np.copyto(arg, np.uint8(t), where=better)
            np.maximum(out, v, out=out)
        return out, (x.shape, k, stride, pad, ceil, mode, arg)
    out = np.zeros((n, c, ho, wo), dtype=x.dtype)
    for _, (si, sj) in _taps(k, stride, ho, wo):
        out += xp[:, :, si, sj]
    out /= _divisor(h, w, k, stride, pad, ho, wo, x.dtype)
    return out, (x.shape, k, stride, pad, ceil, mode, None)


def _max2x2(x, ho, wo):
    """VGG's 2x2 stride-2 max pooling as two pairwise reductions: (N, C, H, W) -> out, arg (N, C, Ho, Wo).

    Why it is fast: comparing the two columns of every window first, then the two rows of the (half as large)
    result, takes 4 passes over the data instead of 3 per tap for 4 taps, and the second stage reads whole
    contiguous rows. Ties still go to the first maximum in row-major window order: within a row the left element
    wins a tie, then the top row's winner wins a tie with the bottom row's.
    """
    x = x[:, :, :2 * ho, :2 * wo]
    left, right = x[:, :, :, 0::2], x[:, :, :, 1::2]                  # (N, C, 2Ho, Wo)
    colmax = np.maximum(left, right)
    colarg = right > left                                            # 1 where the right column wins
    top, bot = colmax[:, :, 0::2], colmax[:, :, 1::2]                # (N, C, Ho, Wo)
    out = np.maximum(top, bot)
    lower = bot > top
    arg = colarg[:, :, 0::2].view(np.uint8).copy()                   # tap 0 or 1: top row
    np.add(colarg[:, :, 1::2].view(np.uint8), np.uint8(2), out=arg, where=lower)   # tap 2 or 3: bottom row
    return out, arg


def _avg2x2(x, ho, wo, engine=None):
    """VGG's 2x2 stride-2 average pooling (N, C, H, W) -> (N, C, Ho, Wo).

    Why it is fast: the two columns of every window are added first, then the two rows of the half-size result
    (3 passes, the last over whole contiguous rows), split over the cores by channel.
    """
    n, c = x.shape[:2]
    xs = x.reshape(n * c, x.shape[2], x.shape[3])[:, :2 * ho, :2 * wo]
    out = np.empty((n * c, ho, wo), dtype=x.dtype)
    cols = np.empty((n * c, 2 * ho, wo), dtype=x.dtype)

    def run(a, b):
        np.add(xs[a:b, :, 0::2], xs[a:b, :, 1::2], out=cols[a:b])
        np.add(cols[a:b, 0::2], cols[a:b, 1::2], out=out[a:b])
        out[a:b] *= x.dtype.type(0.25)
    (Engine() if engine is None else engine).split(run, n * c)
    return out.reshape(n, c, ho, wo)


def _avg2x2_backward(dout, h, w, engine=None):
    """Each input of a 2x2 window receives a quarter of its output's gradient: four strided writes, no sums."""
    n, c, ho, wo = dout.shape
    dx = np.empty((n * c, h, w), dtype=dout.dtype)
    d = dout.reshape(n * c, ho, wo)

    def run(a, b):
        dx[a:b, 2 * ho:] = 0                       # rows and columns no window covers (odd sizes)
        dx[a:b, :, 2 * wo:] = 0
        np.multiply(d[a:b], dout.dtype.type(0.25), out=dx[a:b, 0:2 * ho:2, 0:2 * wo:2])
        dx[a:b, 0:2 * ho:2, 1:2 * wo:2] = dx[a:b, 0:2 * ho:2, 0:2 * wo:2]
        dx[a:b, 1:2 * ho:2, :2 * wo] = dx[a:b, 0:2 * ho:2, :2 * wo]
    (Engine() if engine is None else engine).split(run, n * c)
    return dx.reshape(n, c, h, w)


def backward(dout, cache, engine=None):
    """dout (N, C, Ho, Wo) -> dx (N, C, H, W)."""
    (n, c, h, w), k, stride, pad, ceil, mode, arg = cache
    ho, wo, hp, wp = _geometry(h, w, k, stride, pad, ceil)
    if mode == "max" and k == stride and pad == 0 and hp == h and wp == w:
        # Why it is fast: windows that tile the input without overlap give every input element to exactly one
        # tap, so each tap writes its share straight into dx (a strided view): no zero fill of covered
        # elements, no accumulation and no temporary but one reused mask.
        dx = np.empty((n, c, h, w), dtype=dout.dtype)
        dx[:, :, k * ho:] = 0                      # rows and columns no window covers (odd sizes)
        dx[:, :, :, k * wo:] = 0
        hit = np.empty((n, c, ho, wo), dtype=bool)
        for t, (si, sj) in _taps(k, stride, ho, wo):
            np.equal(arg, t, out=hit)
            np.multiply(dout, hit, out=dx[:, :, si, sj])
        return dx
    if mode == "avg" and k == stride == 2 and pad == 0 and hp == h and wp == w:
        return _avg2x2_backward(dout, h, w, engine)
    dxp = np.zeros((n, c, hp, wp), dtype=dout.dtype)
    if mode == "max":
        for t, (si, sj) in _taps(k, stride, ho, wo):
            dxp[:, :, si, sj] += np.where(arg == t, dout, 0)
    else:
        share = dout / _divisor(h, w, k, stride, pad, ho, wo, dout.dtype)
        for _, (si, sj) in _taps(k, stride, ho, wo):
            dxp[:, :, si, sj] += share
    return dxp[:, :, pad:pad + h, pad:pad + w]


def forward_ref(x, k=2, stride=2, pad=0, ceil=False, mode="max"):
    """Loop reference over every output and every element of its window."""
    n, c, h, w = x.shape
    ho, wo = output_size(h, k, stride, pad, ceil), output_size(w, k, stride, pad, ceil)
    out = np.zeros((n, c, ho, wo), dtype=x.dtype)
    arg = np.zeros((n, c, ho, wo, 2), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, where, total = -np.inf, None, 0.0
                    r_end, c_end = min(i * stride - pad + k, h + pad), min(j * stride - pad + k, w + pad)
                    count = (r_end - (i * stride - pad)) * (c_end - (j * stride - pad))
                    for r in range(i * stride - pad, i * stride - pad + k):
                        for s in range(j * stride - pad, j * stride - pad + k):
                            if 0 <= r < h and 0 <= s < w:
                                v = x[b, ch, r, s]
                                total += v
                                if v > best:
                                    best, where = v, (r, s)
                    if mode == "max":
                        out[b, ch, i, j] = best
                        arg[b, ch, i, j] = where
                    else:
                        out[b, ch, i, j] = total / count
    return out, (x.shape, k, stride, pad, ceil, mode, arg)


def backward_ref(dout, cache):
    (n, c, h, w), k, stride, pad, ceil, mode, arg = cache
    _, _, ho, wo = dout.shape
    dx = np.zeros((n, c, h, w), dtype=dout.dtype)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    if mode == "max":
                        r, s = arg[b, ch, i, j]
                        dx[b, ch, r, s] += dout[b, ch, i, j]
                    else:
                        r_end, c_end = min(i * stride - pad + k, h + pad), min(j * stride - pad + k, w + pad)
                        count = (r_end - (i * stride - pad)) * (c_end - (j * stride - pad))
                        for r in range(i * stride - pad, i * stride - pad + k):
                            for s in range(j * stride - pad, j * stride - pad + k):
                                if 0 <= r < h and 0 <= s < w:
                                    dx[b, ch, r, s] += dout[b, ch, i, j] / count
    return dx
