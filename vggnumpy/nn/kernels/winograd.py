"""Winograd F(4x4, 3x3) convolution of one image: 36 multiplications per 4x4 block of outputs instead of 144.

Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). Every 4x4 block of outputs of a 3x3
convolution is A^T [ (G g G^T) * (B^T d B) ] A, where d is the 6x6 input tile under the block and g the kernel.
Summed over input channels, the elementwise product becomes, for each of the 36 positions e of the 6x6
transformed tile, one matrix product U[e] (O, C) @ V[e] (C, tiles): the matrix products do 4x less work than
direct convolution. Why it is fast here, in NumPy: every step is either one long copy or one BLAS call.
  1. the tiles are gathered from a zero-padded band of input rows by ONE strided copy: (C, rows, tiles, 6, 6);
  2. B^T d B for every tile and channel is ONE product with kron(B^T, B^T) (36 x 36), giving V (36, C*tiles);
  3. 36 products U[e] @ V[e] (the real work), then the bias, added to one of the 36 positions (see _BIAS_AT);
  4. A^T m A for every tile is ONE product with kron(A^T, A^T) (16 x 36), laid out (O, rows, tiles, 4, 4) so
     that placing the outputs is a copy of runs of 4.
The copies and the ReLU run on all cores (engine.split); the products use BLAS's threads. Blocks of tile
rows bound the memory, so no buffer holds a whole large layer. The transform's points are 0, +-1, +-2 and
infinity: float32 results differ from direct convolution by about 1e-5 relative (tests state the tolerance).
The reference it is tested against is the loop convolution beside the other routines, conv.forward_ref and
conv.backward_ref (tests/test_kernels.py, in float64 to 1e-12, and by finite differences).
"""
import types

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import band as band_mod
from .engine import Engine


def _constant(a):
    """a made read-only: the tables below are constants."""
    a.setflags(write=False)
    return a


BT = _constant(np.array([[4, 0, -5, 0, 1, 0],
                        [0, -4, -4, 1, 1, 0],
                        [0, 4, -4, -1, 1, 0],
                        [0, -2, -1, 2, 1, 0],
                        [0, 2, -1, -2, 1, 0],
                        [0, 4, 0, -5, 0, 1]], dtype=np.float64))       # (6, 6): input tile transform
G = _constant(np.array([[1 / 4, 0, 0],
                       [-1 / 6, -1 / 6, -1 / 6],
                       [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6],
                       [1 / 24, -1 / 12, 1 / 6],
                       [0, 0, 1]], dtype=np.float64))                  # (6, 3): kernel transform
AT = _constant(np.array([[1, 1, 1, 1, 1, 0],
                        [0, 1, -1, 2, -2, 0],
                        [0, 1, 1, 4, 4, 0],
                        [0, 1, -1, 8, -8, 1]], dtype=np.float64))      # (4, 6): output transform

_BIAS_AT = 1 * 6 + 1     # position (1, 1) of the 6x6 transformed tile: A^T e_1 e_1^T A is all ones


# The transforms as matrices on flattened tiles, made once at import for the float types (read-only constants,
# nothing is added later; another dtype gets them made per call): vec(B^T d B) = KB vec(d) with KB =
# kron(B^T, B^T) (36, 36), vec(A^T m A) = KA vec(m) with KA = kron(A^T, A^T) (16, 36), vec(G g G^T) = KG vec(g)
# with KG = kron(G, G) (36, 9).
_KB, _KA, _KG = (types.MappingProxyType({np.dtype(t): _constant(np.kron(m, m).astype(t))
                                         for t in (np.float32, np.float64)}) for m in (BT, AT, G))


def _krons(dtype):
    """(KB, KA) in dtype."""
    dt = np.dtype(dtype)
    if dt in _KB:
        return _KB[dt], _KA[dt]
    return np.kron(BT, BT).astype(dt), np.kron(AT, AT).astype(dt)


def weights(w, flipped=False):
    """(O, C, 3, 3) -> U (36, O, C) = G g G^T for every (O, C) pair, in w's dtype.

    flipped=True transforms every kernel turned by 180 degrees (the input gradient's kernel is that, with C and O
    swapped: pass U.transpose(0, 2, 1) to conv3x3). U is 4x the size of w, so it is made per call, not kept:
    one (36, 9) @ (9, O*C) product, a few milliseconds even for 512x512 kernels, instead of hundreds of MB held.
    """
    o, c, kh, kw = w.shape
    assert kh == kw == 3, "Winograd F(4x4, 3x3) needs a 3x3 kernel"
    kg = _kgg(w.dtype)
    if flipped:
        kg = kg[:, ::-1]                      # tap (i, j) of the turned kernel is tap (2-i, 2-j): columns reversed
    u = np.matmul(kg, np.ascontiguousarray(w).reshape(o * c, 9).T)          # (36, O*C)
    return u.reshape(36, o, c)


def _kgg(dtype):
    """KG (36, 9) in dtype."""
    dt = np.dtype(dtype)
    return _KG[dt] if dt in _KG else np.kron(G, G).astype(dt)


def _view(a, shape, strides):
    """A writeable view of a with the given shape and strides in elements of a (never a copy)."""
    return as_strided(a, shape, tuple(s * a.itemsize for s in strides))


def conv3x3(x, u, pad, out, bias=None, relu_mask=None, in_mask=None, chunk=1 << 22, engine=None):
    """Stride-1 3x3 convolution of x (C, H, W) with U (36, O, C) from weights(), written into out (O, Ho, Wo).

    bias (O,) is added; relu_mask (O, Ho, Wo) bool, when given, asks for out = max(conv, 0) and receives
    out > 0; in_mask (C, H, W) multiplies x as it is read (the backward of a ReLU that followed). chunk bounds
    the elements of each block's buffers; engine (engine.Engine, default a fresh one) runs the copies on its threads.
    """
    c, h, w = x.shape
    o = u.shape[1]
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    th, tw = -(-ho // 4), -(-wo // 4)                              # 4x4 output tiles
    wp = 4 * tw + 2                                                # padded width that holds every 6x6 tile
    rows = max(1, min(th, chunk // (36 * max(c, o) * tw)))         # tile rows per block
    kb, ka = _krons(x.dtype)
    engine = Engine() if engine is None else engine
    band_buf = np.empty(c * (4 * rows + 2) * wp, dtype=x.dtype)
    d_buf = np.empty(36 * c * rows * tw, dtype=x.dtype)
    v_buf = np.empty(36 * c * rows * tw, dtype=x.dtype)
    m_buf = np.empty(36 * o * rows * tw, dtype=x.dtype)
    y_buf = np.empty(16 * o * rows * tw, dtype=x.dtype)
    for t0 in range(0, th, rows):
        nb = min(rows, th - t0)
        nt = nb * tw                                               # tiles in this block
        band = band_buf[:c * (4 * nb + 2) * wp].reshape(c, 4 * nb + 2, wp)   # padded rows 4*t0 .. 4*(t0+nb)+2
        engine.split(lambda a, b: band_mod.fill(band, x, 4 * t0 - pad, pad, a, b, in_mask), c)
        d = d_buf[:36 * c * nt].reshape(c, nb, tw, 6, 6)           # (C, rows, tiles, 6, 6)
        tiles = _view(band, (c, nb, tw, 6, 6), (band.shape[1] * wp, 4 * wp, 4, wp, 1))
        engine.split(lambda a, b: np.copyto(d[a:b], tiles[a:b]), c)
        v = v_buf[:36 * c * nt].reshape(36, c * nt)
        np.matmul(kb, d.reshape(c * nt, 36).T, out=v)                # B^T d B: (36, C*tiles)
        m = m_buf[:36 * o * nt].reshape(36, o, nt)
        np.matmul(u, v.reshape(36, c, nt), out=m)                    # 36 x (O, C) @ (C, tiles)
        if bias is not None:
            # Column 1 of A^T is all ones (the point 1), so adding b to position (1, 1) of every transformed
            # tile adds b to all 16 outputs: the bias costs a pass over 1/36 of m instead of one over the output.
            m[_BIAS_AT] += bias[:, None]
        y = y_buf[:16 * o * nt].reshape(o * nt, 16)
        np.matmul(m.reshape(36, o * nt).T, ka.T, out=y)              # A^T m A: (O*tiles, 16)
        y5 = y.reshape(o, nb, tw, 4, 4)
        r0, r1 = 4 * t0, min(ho, 4 * (t0 + nb))

        def emit(a, b):                                            # channels a..b: place, ReLU and mask
            dst = out[a:b, r0:r1]
            _untile(y5[a:b], dst)
            if relu_mask is not None:
                np.maximum(dst, 0, out=dst)
                np.greater(dst, 0, out=relu_mask[a:b, r0:r1])
        engine.split(emit, o)
    return out


def _untile(y5, dst):
    """Write tiles y5 (O, nb, tw, 4, 4) into dst (O, R, Wd) (R <= 4 nb, Wd <= 4 tw).

    The full 4x4 tiles go in one copy of (O, nb, 4, tw, 4) runs; a last row or column of partial tiles (when the
    output size is not a multiple of 4) in up to three more.
    """
    o, r, wd = dst.shape
    fr, fc, rr, rc = r // 4, wd // 4, r % 4, wd % 4
    s0, s1, s2 = (s // dst.itemsize for s in dst.strides)
    parts = [(_view(dst, (o, fr, 4, fc, 4), (s0, 4 * s1, s1, 4 * s2, s2)), y5[:, :fr, :fc].transpose(0, 1, 3, 2, 4))]
    if rr:
        parts.append((_view(dst[:, 4 * fr:], (o, rr, fc, 4), (s0, s1, 4 * s2, s2)),
                      y5[:, fr, :fc, :rr].transpose(0, 2, 1, 3)))
    if rc:
        parts.append((_view(dst[:, :, 4 * fc:], (o, fr, 4, rc), (s0, 4 * s1, s1, s2)), y5[:, :fr, fc, :, :rc]))
    if rr and rc:
        parts.append((dst[:, 4 * fr:, 4 * fc:], y5[:, fr, fc, :rr, :rc]))
    for view, src in parts:
        np.copyto(view, src)
