"""Nearest-neighbour upsampling of NCHW by an integer factor s (torch.nn.Upsample(mode="nearest")): every pixel
becomes an s x s block. backward sums each s x s block of the gradient back onto its pixel."""
import numpy as np


def _check(s):
    if int(s) != s or s < 1:
        raise ValueError(f"upsample: the factor must be a whole number >= 1, not {s!r}")
    return int(s)


def forward(x, s=2):
    """x (N, C, H, W) -> out (N, C, sH, sW)."""
    s = _check(s)
    out = x.repeat(s, axis=2).repeat(s, axis=3)
    return out, (x.shape, s)


def backward(dout, cache):
    """dout (N, C, sH, sW) -> dx (N, C, H, W)."""
    (n, c, h, w), s = cache
    return dout.reshape(n, c, h, s, w, s).sum(axis=(3, 5))      # (N, C, H, s, W, s) -> (N, C, H, W)


def forward_ref(x, s=2):
    """Loop reference: output pixel (i, j) copies input pixel (i // s, j // s)."""
    s = _check(s)
    n, c, h, w = x.shape
    out = np.zeros((n, c, h * s, w * s), dtype=x.dtype)
    for b, ch, i, j in np.ndindex(out.shape):
        out[b, ch, i, j] = x[b, ch, i // s, j // s]
    return out, (x.shape, s)


def backward_ref(dout, cache):
    (n, c, h, w), s = cache
    dx = np.zeros((n, c, h, w), dtype=dout.dtype)
    for b, ch, i, j in np.ndindex(dout.shape):
        dx[b, ch, i // s, j // s] += dout[b, ch, i, j]
    return dx
