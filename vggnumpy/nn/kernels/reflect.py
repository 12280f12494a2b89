"""Reflection padding of NCHW by p on each side (torch.nn.ReflectionPad2d): the border mirrors the image without
repeating its edge row or column. backward folds each padded border's gradient back into the pixels it mirrors."""
import numpy as np

from ..backend import xp_of


def _check(h, w, p):
    if p < 0 or p >= h or p >= w:
        raise ValueError(f"reflect: padding {p} needs 0 <= p < H and p < W, but the input is {h}x{w} (HxW)")


def forward(x, p):
    """x (N, C, H, W) -> out (N, C, H + 2p, W + 2p). One array written once: the image, then the mirrored rows
    above and below it, then the mirrored columns of the whole height (corners included). Slice copies only:
    NumPy and CuPy alike."""
    n, c, h, w = x.shape
    _check(h, w, p)
    out = xp_of(x).empty((n, c, h + 2 * p, w + 2 * p), dtype=x.dtype)
    out[:, :, p:p + h, p:p + w] = x
    if p:
        out[:, :, :p, p:p + w] = x[:, :, p:0:-1]                       # padded row i < p shows row p - i
        out[:, :, p + h:, p:p + w] = x[:, :, h - 2:h - 2 - p:-1] if h - 2 - p >= 0 else x[:, :, h - 2::-1]
        out[..., :p] = out[..., 2 * p:p:-1]                             # padded col j < p shows padded col 2p - j
        out[..., p + w:] = out[..., p + w - 2:w - 2:-1]                 # padded col p + w + k shows p + w - 2 - k
    return out, (x.shape, p)


def _fold_last(g, p):
    """(..., L + 2p) -> (..., L): the middle, plus each border reversed onto the pixels it mirrors."""
    n = g.shape[-1] - 2 * p
    out = g[..., p:p + n].copy()
    out[..., 1:p + 1] += g[..., :p][..., ::-1]                 # padded col j < p mirrors col p - j
    out[..., n - 1 - p:n - 1] += g[..., p + n:][..., ::-1]     # padded col p + n + k mirrors col n - 2 - k
    return out


def backward(dout, cache):
    """dout (N, C, H + 2p, W + 2p) -> dx (N, C, H, W)."""
    _, p = cache
    cols = _fold_last(dout, p)                                 # (N, C, H + 2p, W)
    rows = _fold_last(cols.swapaxes(2, 3), p)                  # (N, C, W, H)
    return xp_of(rows).ascontiguousarray(rows.swapaxes(2, 3))


def _source(i, size, p):
    """The input index that padded index i shows."""
    r = i - p
    if r < 0:
        r = -r
    if r >= size:
        r = 2 * (size - 1) - r
    return r


def forward_ref(x, p):
    """Loop reference: every output pixel copies the input pixel it mirrors."""
    n, c, h, w = x.shape
    _check(h, w, p)
    out = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=x.dtype)
    for b, ch, i, j in np.ndindex(out.shape):
        out[b, ch, i, j] = x[b, ch, _source(i, h, p), _source(j, w, p)]
    return out, (x.shape, p)


def backward_ref(dout, cache):
    (n, c, h, w), p = cache
    dx = np.zeros((n, c, h, w), dtype=dout.dtype)
    for b, ch, i, j in np.ndindex(dout.shape):
        dx[b, ch, _source(i, h, p), _source(j, w, p)] += dout[b, ch, i, j]
    return dx
