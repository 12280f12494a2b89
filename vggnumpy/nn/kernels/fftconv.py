"""Stride-1 convolution of one image through the FFT, tile by tile (overlap-save): for large kernels on few
channels, the style network's 9x9 layers at full resolution.

Why it pays there: a KxK convolution costs K*K*C*O multiply-adds per output; by the convolution theorem it is a
pointwise product of spectra. The image is cut into T x T tiles overlapping by K-1 (overlap-save: of each tile's
circular convolution, the (T-K+1)^2 outputs the wrap-around does not reach are kept). Per tile that costs C
forward and O inverse real 2-D FFTs of T x T, and per frequency one (O, C) @ (C, tiles) product: for 9x9 3 -> 16
at T = 64, about a seventh of direct convolution's arithmetic, and none of its K*K-fold copies or sums.
Layout: the tiles are a strided view of a zero-padded band of input rows, laid out (T, T, C, tiles), so the FFT
over the first two axes leaves the spectrum as (frequencies, C, tiles): one batched product over the
frequencies, no transposes; the inverse FFT gives (T, T, O, tiles), whose valid part is copied out once. The
FFTs are scipy.fft's (float32 stays float32); rounding is about 1e-6 of the output's largest value in float32.
The reference it is tested against is the loop convolution, conv.forward_ref and conv.backward_ref.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import band as band_mod
from .engine import Engine

TILES = (16, 32, 64, 128, 256)        # FFT sizes tried (powers of two: the FFT's fastest sizes)


def tile_size(k, c, o, ho, wo):
    """The FFT size T (from TILES, at least 2K) whose estimated work is least: tiles * T^2 * (FFTs + products)."""
    best = None
    for t in TILES:
        s = t - k + 1
        if t < 2 * k:
            continue
        tiles = -(-ho // s) * -(-wo // s)
        cost = tiles * t * t * (2.5 * np.log2(t * t) * (c + o) + 2 * c * o)
        if best is None or cost < best[0]:
            best = (cost, t)
    return best[1] if best else 2 * k


def spectrum(w, t):
    """Kernel w (O, C, K, K) -> its spectrum for T x T tiles, (T, T//2+1, O, C) complex, in w's precision.

    The tiles are correlated with w, i.e. convolved with w turned by 180 degrees, so that is what is transformed:
    output i of a tile is then entry i + K - 1 of the circular convolution. Made once per kernel and T (the
    engine keeps it: a few MB for the style network's layers)."""
    import scipy.fft as sfft
    o, c, k, _ = w.shape
    kt = np.zeros((t, t, o, c), dtype=w.dtype)
    kt[:k, :k] = w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
    return sfft.rfft2(kt, axes=(0, 1))


def conv(x, spec, k, pad, out, bias=None, relu_mask=None, in_mask=None, chunk=1 << 22, engine=None):
    """Stride-1 KxK convolution of x (C, H, W) with spec = spectrum(w, T), written into out (O, Ho, Wo).

    bias (O,) is added; relu_mask (O, Ho, Wo) bool, when given, asks for out = max(conv, 0) and receives out > 0;
    in_mask (C, H, W) multiplies x as it is read (the backward of a ReLU that followed). chunk bounds the
    elements of each block of tile rows; engine (default a fresh one) gives the threads.
    """
    import scipy.fft as sfft
    engine = Engine() if engine is None else engine
    c, h, w = x.shape
    t, o = spec.shape[0], spec.shape[2]
    s = t - k + 1                                                   # valid outputs per tile and side
    ho, wo = out.shape[1:]
    ty, tx = -(-ho // s), -(-wo // s)
    wb = tx * s + k - 1                                             # band width: every tile's columns
    nb = max(1, min(ty, chunk // (t * (t // 2 + 2) * 2 * (c + o) * tx)))    # tile rows per block
    band_buf = np.empty(c * (nb * s + k - 1) * wb, dtype=x.dtype)
    blk_buf = np.empty(o * nb * s * tx * s, dtype=x.dtype)
    freq = spec.reshape(-1, o, c)                                   # (F, O, C)
    for r0 in range(0, ty, nb):
        n = min(nb, ty - r0)
        rows = n * s + k - 1
        band = band_buf[:c * rows * wb].reshape(c, rows, wb)        # padded rows r0*s - pad ..
        engine.split(lambda a, b: band_mod.fill(band, x, r0 * s - pad, pad, a, b, in_mask), c)
        e = band.itemsize
        tiles = as_strided(band, (t, t, c, n, tx), (wb * e, e, rows * wb * e, s * wb * e, s * e))
        xf = sfft.rfft2(tiles, axes=(0, 1), workers=engine.threads).reshape(-1, c, n * tx)    # (F, C, tiles)
        yf = np.empty((freq.shape[0], o, n * tx), dtype=xf.dtype)
        engine.split(lambda a, b: np.matmul(freq[a:b], xf[a:b], out=yf[a:b]), freq.shape[0], min_size=64)
        y = sfft.irfft2(yf.reshape(t, t // 2 + 1, o, n, tx), s=(t, t), axes=(0, 1), workers=engine.threads)
        valid = y[k - 1:, k - 1:]                                   # (s, s, O, n, tx)
        blk = blk_buf[:o * n * s * tx * s].reshape(o, n, s, tx, s)
        r1 = min(ho, (r0 + n) * s)

        def emit(a, b):                                             # channels a..b: place, bias, ReLU and mask
            np.copyto(blk[a:b], valid[:, :, a:b].transpose(2, 3, 0, 4, 1))
            dst = out[a:b, r0 * s:r1]
            dst[...] = blk[a:b].reshape(b - a, n * s, tx * s)[:, :r1 - r0 * s, :wo]
            if bias is not None:
                dst += bias[a:b, None, None]
            if relu_mask is not None:
                np.maximum(dst, 0, out=dst)
                np.greater(dst, 0, out=relu_mask[a:b, r0 * s:r1])
        engine.split(emit, o)
    return out
