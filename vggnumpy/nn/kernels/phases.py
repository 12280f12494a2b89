"""A strided convolution as a stride-1 convolution of the input's phases (space-to-depth), so that it runs on the
fast stride-1 routines instead of im2col's strided copies: the style network's two stride-2 layers.

With stride s, output (i, j) reads padded input rows s*i + a. Writing a = s*a' + p (0 <= p < s), that is row
i + a' of phase p, the padded input's rows p, p + s, p + 2s, ...; the same along columns. So the convolution is a
stride-1 convolution of the s*s phases (s*s*C channels, channel (p*s + q)*C + c) with a ceil(K/s)-wide kernel
whose tap (a', b') of channel (p, q, c) is the original's tap (s*a' + p, s*b' + q), or zero past the kernel.
For 3x3 and s = 2 that is a 2x2 kernel on 4C channels: 16/9 of the multiply-adds, on matrices shaped for BLAS.
Every input pixel lands in exactly one phase, so the input gradient is the stride-1 input gradient copied back
(from_phases: the transpose of to_phases).
"""
import numpy as np


def kernel(w, s):
    """w (O, C, KH, KW) -> (O, s*s*C, ceil(KH/s), ceil(KW/s)): the phases' stride-1 kernel."""
    o, c, kh, kw = w.shape
    out = np.zeros((o, s, s, c, -(-kh // s), -(-kw // s)), dtype=w.dtype)
    for p in range(s):
        for q in range(s):
            sub = w[:, :, p::s, q::s]                                       # taps s*a' + p, s*b' + q
            out[:, p, q, :, :sub.shape[2], :sub.shape[3]] = sub
    return out.reshape(o, s * s * c, out.shape[4], out.shape[5])


def _runs(n, s, pad, phase, size):
    """Along one axis: (first, last + 1) phase index i whose padded position s*i + phase is an input pixel
    (0 <= s*i + phase - pad < n), clipped to the phase's size; and that pixel's index for the first one."""
    lo = max(0, -(-(pad - phase) // s))
    hi = min(size, (n - 1 + pad - phase) // s + 1)
    return lo, hi, s * lo + phase - pad


def _slices(x_shape, s, pad, hh, wh, p, q):
    """(phase slice, input slice) of phase (p, q): where its pixels come from, or None when it has none."""
    h, w = x_shape[-2:]
    i0, i1, r0 = _runs(h, s, pad, p, hh)
    j0, j1, c0 = _runs(w, s, pad, q, wh)
    if i1 <= i0 or j1 <= j0:
        return None
    return ((slice(i0, i1), slice(j0, j1)),
            (slice(r0, r0 + s * (i1 - i0 - 1) + 1, s), slice(c0, c0 + s * (j1 - j0 - 1) + 1, s)))


def to_phases(x, s, pad, hh, wh):
    """x (C, H, W), zero-padded by pad -> (s*s*C, hh, wh): the phases, zeros where the padding or the end is."""
    c = x.shape[0]
    out = np.zeros((s, s, c, hh, wh), dtype=x.dtype)
    for p in range(s):
        for q in range(s):
            sl = _slices(x.shape, s, pad, hh, wh, p, q)
            if sl is not None:
                out[p, q][(slice(None),) + sl[0]] = x[(slice(None),) + sl[1]]
    return out.reshape(s * s * c, hh, wh)


def from_phases(d, s, pad, h, w):
    """The transpose of to_phases: d (s*s*C, hh, wh) -> dx (C, H, W), each input pixel's one phase entry."""
    hh, wh = d.shape[1:]
    c = d.shape[0] // (s * s)
    d5 = d.reshape(s, s, c, hh, wh)
    dx = np.zeros((c, h, w), dtype=d.dtype)            # pixels no output reads (past the last window) get zero
    for p in range(s):
        for q in range(s):
            sl = _slices((h, w), s, pad, hh, wh, p, q)
            if sl is not None:
                dx[(slice(None),) + sl[1]] = d5[p, q][(slice(None),) + sl[0]]
    return dx
