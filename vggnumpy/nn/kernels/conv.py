"""2-D convolution (cross-correlation, as in every framework) forward and input gradient, NCHW, any kernel/stride/pad.

forward(x, w, b, stride, pad) -> (out, cache); forward_relu(...) the same followed by a ReLU, fused;
backward(dout, cache) -> dx (applying the ReLU's mask when the cache came from forward_relu). Weight gradients
are never needed: style transfer optimises pixels only. forward_ref/backward_ref are loop versions for tests and
benchmarks. Stride 1 runs as Winograd F(4x4, 3x3) (winograd.py) where the channel counts make it pay, through
the FFT (fftconv.py) for kernels of 7x7 and wider with fewer outputs than inputs, else as GEMMs over shifted
slices of a band of input rows (_conv_s1, three ways); stride 2 as a stride-1 convolution of the input's phases
(phases.py); other strides as chunked im2col.
Every fast function takes engine= (engine.Engine: threads, derived-weight cache, forced way); without one a call
makes a fresh default Engine (a Network passes its own, kept between calls).
"""
import numpy as np

from . import band as band_mod, fftconv, output_size, phases, winograd
from .engine import WAYS, Engine

# How many float elements one block of work may hold (columns of im2col, an input band, an output block):
# blocks are built, multiplied and dropped one after another, so nothing of a whole large layer is duplicated.
CHUNK_ELEMS = 1 << 22


def _pad(x, pad):
    """Zero-pad the two spatial axes of (C, H, W)."""
    if pad == 0:
        return x
    c, h, w = x.shape
    xpad = np.zeros((c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    xpad[:, pad:pad + h, pad:pad + w] = x
    return xpad


# The three ways of running a stride-1 convolution as GEMMs over a band of padded input rows (see _conv_s1). A tap
# (i, j) of the kernel reads the band at offset i*Wp + j; each way splits that offset into a part applied by
# copying shifted slices of the band into a column block before the GEMM ("copied") and a part applied by summing
# shifted slices of the GEMM's output ("summed").
DIRECT_WAYS = WAYS[1:4]                                                # ("rows", "slices", "columns")


def _offsets(way, kh, kw, wp):
    """(copied offsets, summed offsets) of a way; every tap is one pair, in row-major tap order."""
    if way == "slices":                                                # no copy; KH*KW output slices summed
        return [0], [i * wp + j for i in range(kh) for j in range(kw)]
    if way == "columns":                                               # KH*KW copies; one GEMM gives the output
        return [i * wp + j for i in range(kh) for j in range(kw)], [0]
    return list(range(kw)), [i * wp for i in range(kh)]               # rows: KW copies, KH output slices


def _direct_weights(k, way):
    """Kernel k (O, C, KH, KW) as the GEMM's left matrix: rows (summed tap, O), columns (copied tap, C)."""
    o, c, kh, kw = k.shape
    if way == "slices":
        m = k.transpose(2, 3, 0, 1).reshape(kh * kw * o, c)            # [(i, j, o), c]
    elif way == "columns":
        m = k.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)            # [o, (i, j, c)]
    else:
        m = k.transpose(2, 0, 3, 1).reshape(kh * o, kw * c)            # [(i, o), (j, c)]
    return np.ascontiguousarray(m)


def _conv_s1(x, wmat, kh, kw, pad, out, engine, bias=None, relu_mask=None, in_mask=None, way="rows"):
    """Stride-1 convolution of one image x (C, H, W) with wmat = _direct_weights(kernel, way), into out (O, Ho, Wo).

    Why it is fast: a block of whole output rows needs a band of padded input rows; flattened to (C, m), moving
    the kernel by (i, j) is a plain offset i*Wp + j into that band, so no window is ever gathered. The "rows" way
    copies the band KW times, shifted by 0..KW-1 (each copy one contiguous run per channel), into a (KW*C, m)
    column block; ONE GEMM (KH*O, KW*C) @ (KW*C, m) then gives each kernel row's response everywhere, and row i's
    contribution to the outputs is that response shifted by i*Wp: KH shifted slices are summed. Compared with
    copying all KH*KW taps ("columns", a K = KH*KW*C GEMM: the right choice for conv1_1's 3 channels) it copies
    3x less, and compared with summing all KH*KW taps ("slices", K = C: packing-bound for 64-128 channels) it sums
    3x less with a 3x deeper GEMM. The block stays in cache while the bias, the ReLU and its mask are applied,
    split over the cores (engine.split), and is written out once; the KW-1 wrap-around columns of each row are
    dropped. in_mask (C, H, W) bool multiplies x while the band is copied (the backward of the ReLU that
    followed, for free); relu_mask (O, Ho, Wo) bool, when given, asks for out = max(conv, 0) and receives out > 0.
    """
    c, h, w = x.shape
    wp = w + 2 * pad
    ho, wo = h + 2 * pad - kh + 1, wp - kw + 1
    copied, summed = _offsets(way, kh, kw, wp)
    o = wmat.shape[0] // len(summed)
    per_col = max(len(copied) * c + len(summed) * o, c)
    rows = max(1, min(ho, CHUNK_ELEMS // (per_col * wp)))             # whole output rows per block
    mmax = (rows + kh - 1) * wp + kw - 1                              # band columns of a full block
    band_buf = np.empty(c * mmax, dtype=x.dtype)
    cols_buf = np.empty(len(copied) * c * mmax, dtype=x.dtype) if len(copied) > 1 else None
    y_buf = np.empty(len(summed) * o * mmax, dtype=x.dtype)
    for r0 in range(0, ho, rows):
        r1 = min(r0 + rows, ho)
        n, m = (r1 - r0) * wp, (r1 - r0 + kh - 1) * wp + kw - 1
        band = band_buf[:c * m].reshape(c, m)                          # (C, band rows * Wp + KW-1)
        rows3 = band[:, :m - kw + 1].reshape(c, -1, wp)                # (C, band rows, Wp): padded rows r0-pad ..

        def fill(a, b):
            band_mod.fill(rows3, x, r0 - pad, pad, a, b, in_mask)
            band[a:b, m - kw + 1:] = 0     # KW-1 columns past the last row: read only for dropped outputs; no garbage
        engine.split(fill, c, min_size=8)
        mc = n + summed[-1]                                            # GEMM columns the summed slices reach
        if cols_buf is None:
            cols = band[:, :mc]                                        # (C, mc): the band itself
        else:
            cols = cols_buf[:len(copied) * c * mc].reshape(len(copied), c, mc)
            engine.split(lambda a, b: [np.copyto(cols[t], band[:, copied[t]:copied[t] + mc]) for t in range(a, b)],
                         len(copied))
            cols = cols.reshape(-1, mc)                                # (copied taps * C, mc)
        y = y_buf[:len(summed) * o * mc].reshape(len(summed), o, mc)
        np.matmul(wmat, cols, out=y.reshape(-1, mc))                   # (summed taps * O, mc)

        def finish(a, b):                                              # output channels a..b
            acc = y[0, a:b, :n]                                        # offset 0 first: sum in place
            for t in range(1, len(summed)):
                acc += y[t, a:b, summed[t]:summed[t] + n]
            if bias is not None:
                acc += bias[a:b, None]
            blk = acc.reshape(b - a, r1 - r0, wp)[:, :, :wo]          # (O, rows, Wo)
            if relu_mask is None:
                out[a:b, r0:r1] = blk
            else:
                np.maximum(blk, 0, out=out[a:b, r0:r1])
                np.greater(out[a:b, r0:r1], 0, out=relu_mask[a:b, r0:r1])
        engine.split(finish, o, min_size=8)
    return out


# Winograd F(4x4, 3x3) (winograd.py) does 4x fewer multiplications but adds two transforms whose cost grows with
# C and O separately, and a per-call kernel transform whose cost grows with C*O only: it pays once both channel
# counts and the image are large. The thresholds come from bench_layers.py (benchmarks/README.md): at 512 px it
# wins from conv3_2 on (256 channels, 128x128) and loses on conv3_1 (128 -> 256) and on 32x32 and smaller maps.
WINOGRAD_MIN_CHANNELS = 256       # Winograd when C and O are both at least this; None: never
WINOGRAD_MIN_PIXELS = 48 * 48     # ... and the output has at least this many pixels
COLUMNS_MAX_K = 64                # "columns" when KH*KW*C is at most this (conv1_1: 27), "slices" when KH*KW*O is,
                                  # else "rows"
# The FFT (fftconv.py) when the kernel is square and at least this wide, with fewer output channels than input
# channels (the style network's last layer, 9x9 16 -> 3; no VGG layer): its cost hardly grows with K, while every
# direct way's grows with K*K. With more outputs than inputs (its first layer, 9x9 3 -> 16) the O inverse FFTs
# per tile cost as much as the direct "rows" way: 307 against 277 ms at 1200x632 (benchmarks/README.md).
FFT_MIN_KERNEL = 7
# Strides run as a stride-1 convolution of the input's phases (phases.py) instead of im2col: 2 (the style network's
# downsampling layers). Stride 4 (NIN's conv1) stays im2col: its 4x4 phases of an 11x11 kernel would be 3x3 taps on
# 48 channels, 27 % more multiply-adds, not measured.
PHASE_STRIDES = (2,)


def stride1_path(c, o, kh, kw, pixels, way=None):
    """Which routine runs a stride-1 C -> O convolution with a KH x KW kernel and `pixels` outputs per channel:
    'winograd', 'fft' or one of DIRECT_WAYS. way (an Engine's forced way) wins where it can run: Winograd is 3x3
    only, the FFT square kernels only."""
    if way is not None:
        runs = {"winograd": kh == kw == 3, "fft": kh == kw}.get(way, True)
        return way if runs else "rows"
    if kh == kw >= FFT_MIN_KERNEL and o < c:
        return "fft"
    if (kh == kw == 3 and WINOGRAD_MIN_CHANNELS is not None and min(c, o) >= WINOGRAD_MIN_CHANNELS
            and pixels >= WINOGRAD_MIN_PIXELS):
        return "winograd"
    if kh * kw * c <= COLUMNS_MAX_K:
        return "columns"          # few input channels (conv1_1): copying every tap is cheap, one deep GEMM
    if kh * kw * o <= COLUMNS_MAX_K:
        return "slices"           # few output channels (conv1_1's input gradient): summing every tap is cheap
    return "rows"


def _conv_s1_any(x, w, pad, out, engine, bias=None, relu_mask=None, in_mask=None, transposed=False):
    """Stride-1 convolution of one image with kernel w (O, C, KH, KW), or with its flipped transpose
    (transposed=True: the input gradient's kernel), by the routine stride1_path picks (or the engine forces)."""
    o, c, kh, kw = w.shape
    if transposed:
        o, c = c, o
    path = stride1_path(c, o, kh, kw, out.shape[1] * out.shape[2], engine.way)
    if path == "winograd":
        u = winograd.weights(w, flipped=transposed)                   # (36, O, C), made per call: see weights()
        if transposed:
            u = u.transpose(0, 2, 1)                                   # (36, C, O): channels swapped, no copy
        return winograd.conv3x3(x, u, pad, out, bias, relu_mask, in_mask, chunk=CHUNK_ELEMS, engine=engine)
    if path == "fft":
        t = fftconv.tile_size(kh, c, o, out.shape[1], out.shape[2])
        spec = engine.derived(w, ("fft", t, transposed),
                              lambda w: fftconv.spectrum(_flipped(w) if transposed else w, t))
        return fftconv.conv(x, spec, kh, pad, out, bias, relu_mask, in_mask, chunk=CHUNK_ELEMS, engine=engine)
    # Direct weights are the kernel's size, so the engine keeps them (the input gradient's too: flipped and
    # transposed).
    wmat = engine.derived(w, (path, transposed), lambda w: _direct_weights(_flipped(w) if transposed else w, path))
    return _conv_s1(x, wmat, kh, kw, pad, out, engine, bias, relu_mask, in_mask, way=path)


def _im2col_rows(xpad, kh, kw, stride, r0, r1, wo, cols):
    """Fill cols (KH*KW*C, (r1-r0)*Wo) with the windows of output rows r0..r1 of padded image xpad (C, Hp, Wp)."""
    c = xpad.shape[0]
    n = r1 - r0
    t = 0
    for i in range(kh):
        for j in range(kw):
            win = xpad[:, i + stride * r0:i + stride * (r1 - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            cols[t * c:(t + 1) * c].reshape(c, n, wo)[...] = win
            t += 1


def _output_shape(h, w, kh, kw, stride, pad):
    """(Ho, Wo) of a convolution, by output_size (kernels/__init__.py: the one rule, pools' and the GPU's too)."""
    return output_size(h, kh, stride, pad, False), output_size(w, kw, stride, pad, False)


def _rows_per_chunk(k_rows, wo):
    return max(1, CHUNK_ELEMS // max(1, k_rows * wo))


def forward(x, w, b, stride=1, pad=0, engine=None):
    """x (N, C, H, W), w (O, C, KH, KW), b (O,) -> out (N, O, Ho, Wo)."""
    return _forward(x, w, b, stride, pad, relu=False, engine=engine)


def forward_relu(x, w, b, stride=1, pad=0, engine=None):
    """max(conv(x), 0) in one pass (N, O, Ho, Wo); the cache carries the ReLU mask, which backward applies.

    Fused because the bias, the ReLU and its mask are then applied to each block of outputs while it is still in
    cache, and the ReLU's backward becomes part of the copy that pads dout: three passes over a whole activation
    (and one whole temporary) fewer per layer and direction.
    """
    return _forward(x, w, b, stride, pad, relu=True, engine=engine)


def _forward(x, w, b, stride, pad, relu, engine):
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2, f"conv: input has {c} channels, kernel expects {c2}"
    ho, wo = _output_shape(h, wd, kh, kw, stride, pad)
    out = np.empty((n, o, ho, wo), dtype=x.dtype)
    mask = np.empty((n, o, ho, wo), dtype=bool) if relu else None
    bias = b.astype(x.dtype, copy=False)
    if stride == 1:
        w = w.astype(x.dtype, copy=False)
        engine = Engine() if engine is None else engine
        for i in range(n):
            _conv_s1_any(x[i], w, pad, out[i], engine, bias, None if mask is None else mask[i])
        return out, (x.shape, w, stride, pad, mask)
    if stride in PHASE_STRIDES and kh == kw:
        engine = Engine() if engine is None else engine
        wph = _phase_kernel(w, stride, x.dtype, engine)                          # (O, s*s*C, K', K')
        k2 = wph.shape[2]
        for i in range(n):
            xph = phases.to_phases(x[i], stride, pad, ho + k2 - 1, wo + k2 - 1)    # (s*s*C, Ho + K'-1, Wo + K'-1)
            _conv_s1_any(xph, wph, 0, out[i], engine, bias, None if mask is None else mask[i])
        return out, (x.shape, w, stride, pad, mask)
    wmat = np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c), dtype=x.dtype)  # (O, KH*KW*C)
    for i in range(n):
        xpad = _pad(x[i], pad)
        rows = _rows_per_chunk(kh * kw * c, wo)
        cols = np.empty((kh * kw * c, min(rows, ho) * wo), dtype=x.dtype)
        oi = out[i].reshape(o, ho * wo)
        for r0 in range(0, ho, rows):
            r1 = min(r0 + rows, ho)
            colv = cols[:, :(r1 - r0) * wo]
            _im2col_rows(xpad, kh, kw, stride, r0, r1, wo, colv)
            np.matmul(wmat, colv, out=oi[:, r0 * wo:r1 * wo])
    out += bias.reshape(1, o, 1, 1)
    if relu:
        np.maximum(out, 0, out=out)
        np.greater(out, 0, out=mask)
    return out, (x.shape, w, stride, pad, mask)


def _phase_kernel(w, stride, dtype, engine):
    """The stride-1 kernel of the input's phases (phases.kernel), in dtype, kept by the engine."""
    return engine.derived(w, ("phases", stride, np.dtype(dtype).str), lambda w: phases.kernel(w.astype(dtype), stride))


def _flipped(w):
    """The kernel of the input gradient of a stride-1 convolution: flipped in space, transposed in channels."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))                  # (C, O, KH, KW)


def backward(dout, cache, engine=None):
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
        engine = Engine() if engine is None else engine
        for i in range(n):
            _conv_s1_any(dout[i], wd_, kh - 1 - pad, dx[i], engine, in_mask=None if mask is None else mask[i],
                         transposed=True)
        return dx
    if stride in PHASE_STRIDES and kh == kw:
        # The phases' stride-1 convolution (phases.py) has a stride-1 input gradient; each pixel's is copied back.
        engine = Engine() if engine is None else engine
        wph = _phase_kernel(w, stride, dout.dtype, engine)
        k2 = wph.shape[2]
        dph = np.empty((wph.shape[1], ho + k2 - 1, wo + k2 - 1), dtype=dout.dtype)
        for i in range(n):
            _conv_s1_any(dout[i], wph, k2 - 1, dph, engine, in_mask=None if mask is None else mask[i], transposed=True)
            dx[i] = phases.from_phases(dph, stride, pad, h, wd)
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
    ho, wo = _output_shape(h, wd, kh, kw, stride, pad)
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, o, ho, wo), dtype=x.dtype)
    for b_ in range(n):
        for k in range(o):
            for i in range(ho):
                for j in range(wo):
                    win = xpad[b_, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
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
