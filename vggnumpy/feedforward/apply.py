"""Paint a photo with a style network in one forward pass: whole, or tile by tile with exactly the same result.

Exact tiling: a pixel of the output depends on the input within transformer.receptive_radius() pixels, except
through instance normalisation, whose mean and variance are taken over the whole image. So each unit's
normalisation statistics are gathered first, unit by unit, over the cores of all tiles (each tile run with a
halo of the receptive radius, the statistics of earlier units already known), and a last pass paints every
tile's core with all of them known. Memory is that of one tile; the cost is about 8 forward passes.
"""
import numpy as np

from ..nn import transformer
from ..nn.backend import xp_of
from ..nn.kernels import instnorm, reflect, upsample

HALO = -(-transformer.receptive_radius() // transformer.MULTIPLE) * transformer.MULTIPLE


def phase_kernels(w):
    """w (O, C, 3, 3) of a 3x3 convolution that follows a nearest x2 upsampling -> (4 O, C, 2, 2): the 2x2 kernel
    each of the four output phases (r, s) applies to the *original* grid. Output row 2p + r reads upsampled rows
    2p + r - 1 .. 2p + r + 1, i.e. original rows p - 1, p, p (r = 0: taps [w0, w1 + w2]) or p, p, p + 1 (r = 1:
    taps [w0 + w1, w2]); the same along columns. 16 multiply-adds per output where the upsampled 3x3 takes 36."""
    xp = xp_of(w)                                                                  # on w's device: no round trip
    rows = [xp.stack([w[:, :, 0], w[:, :, 1] + w[:, :, 2]], 2), xp.stack([w[:, :, 0] + w[:, :, 1], w[:, :, 2]], 2)]
    out = []
    for r in range(2):
        k = rows[r]                                                                # (O, C, 2, 3)
        cols = [xp.stack([k[..., 0], k[..., 1] + k[..., 2]], 3), xp.stack([k[..., 0] + k[..., 1], k[..., 2]], 3)]
        out += cols                                                                # phases (r, 0), (r, 1)
    return xp.ascontiguousarray(xp.concatenate(out, 0))                             # (4 O, C, 2, 2)


def _edge_pad(h):
    """h (N, C, H, W) with its border rows and columns repeated once: (N, C, H + 2, W + 2), written once."""
    n, c, hh, ww = h.shape
    out = xp_of(h).empty((n, c, hh + 2, ww + 2), dtype=h.dtype)
    out[:, :, 1:-1, 1:-1] = h
    out[:, :, 0, 1:-1], out[:, :, -1, 1:-1] = h[:, :, 0], h[:, :, -1]
    out[..., 0], out[..., -1] = out[..., 1], out[..., -2]
    return out


def _up_conv(net, u, h):
    """Nearest x2 upsampling, reflection padding by 1 and the 3x3 convolution, as four 2x2 convolutions of the
    original grid (phase_kernels). Reflecting the upsampled image by 1 repeats its edge, which is the original's
    edge repeated: so the original is edge-padded by 1, each phase's 2x2 window starts at row p + r."""
    xp = xp_of(h)
    n, _, hh, ww = h.shape
    o = u.cout
    w = net.params[f"{u.name}.w"]
    k4 = phase_kernels(w)
    y, _ = net.k["conv"].forward(_edge_pad(h), k4, xp.zeros(4 * o, dtype=h.dtype), 1, 0)   # (N, 4 O, H + 1, W + 1)
    out = xp.empty((n, o, 2 * hh, 2 * ww), dtype=h.dtype)

    def place(a, b):                                                               # output channels a..b
        for k, (r, s) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            out[:, a:b, r::2, s::2] = y[:, k * o + a:k * o + b, r:r + hh, s:s + ww]
    _channels(net.engine, place, o)
    return out


def _unit(net, u, h, stats, collect):
    """Inference of one unit on h (1, C, H, W). stats: {unit: (mean, inv)} fixing its normalisation; collect, a
    unit name: return that unit's convolution output instead (the statistics pass)."""
    p, xp = net.params, xp_of(h)
    if u.up == 2 and u.k == 3 and u.stride == 1:
        h = _up_conv(net, u, h)
    else:
        if u.up > 1:
            h, _ = upsample.forward(h, u.up)
        h, _ = reflect.forward(h, u.k // 2)
        b = p[f"{u.name}.b"] if not u.norm else xp.zeros(u.cout, dtype=h.dtype)
        h, _ = net.k["conv"].forward(h, p[f"{u.name}.w"], b, u.stride, 0)
    if u.name == collect:
        return h
    scale = shift = None
    if u.norm:
        mean, inv = stats[u.name] if u.name in stats else _moments(h, net.engine)
        scale = inv * p[f"{u.name}.gamma"][:, None, None]                          # (1, C, 1, 1)
        shift = p[f"{u.name}.beta"][:, None, None] - mean * scale
    return _affine_relu(h, scale, shift, u.relu, net.engine)


def _channels(engine, fn, c):
    """fn(a, b) over channel ranges: split over the CPU engine's threads (NumPy's passes release the GIL), or at
    once on the GPU."""
    if engine is None:
        fn(0, c)
    else:
        engine.split(fn, c)


def _affine_relu(h, scale, shift, relu, engine):
    """h * scale + shift, then max(., 0), in place (h is the unit's own array), channel ranges in parallel."""
    xp = xp_of(h)

    def part(a, b):
        v = h[:, a:b]
        if scale is not None:
            v *= scale[:, a:b]
            v += shift[:, a:b]
        if relu:
            xp.maximum(v, 0, out=v)
    _channels(engine, part, h.shape[1])
    return h


def _moments(h, engine=None):
    """(mean, 1 / sqrt(var + eps)) per sample and channel, (N, C, 1, 1), as instnorm.moments computes them: the
    mean, then the variance of the centred values (no cancellation). On the GPU (no engine) instnorm.moments itself,
    all channels at once; on the CPU one channel at a time, so the only temporary is one channel's map."""
    if engine is None:
        mean, _, inv = instnorm.moments(h)                                         # the training pass's own
        return mean, inv
    xp = xp_of(h)
    n, c = h.shape[:2]
    flat = h.reshape(n, c, -1)
    mean, var = xp.empty((n, c), dtype=h.dtype), xp.empty((n, c), dtype=h.dtype)

    def part(a, b):
        for k in range(a, b):
            mean[:, k] = flat[:, k].mean(axis=1)
            d = flat[:, k] - mean[:, k, None]                                      # (N, H*W)
            var[:, k] = xp.einsum("np,np->n", d, d) / flat.shape[2]
    _channels(engine, part, c)
    return mean.reshape(n, c, 1, 1), (1 / xp.sqrt(var + h.dtype.type(instnorm.EPS))).reshape(n, c, 1, 1)


def forward(net, x, stats=None, collect=None):
    """The network on x (1, 3, H, W) (H, W multiples of 4) without caches: y (1, 3, H, W); with collect, the
    named unit's convolution output. Equal to net.forward(x)[0] (tests/test_fast.py)."""
    stats = stats or {}
    if net.engine is not None:
        net.engine.forget()                   # the weights may have changed in place since the last pass
    res_in = None
    for u in net.units:
        if u.name.endswith("_1"):
            res_in = x
        x = _unit(net, u, x, stats, collect)
        if u.name == collect:
            return x
        if u.name.endswith("_2"):
            x += res_in
    t = xp_of(x).tanh(x)
    return t * x.dtype.type(transformer.OUT_GAIN) + x.dtype.type(0.5)


def jumps(net):
    """{unit name: its output's stride in input pixels}."""
    out, j = {}, 1
    for u in net.units:
        j = j // u.up * u.stride
        out[u.name] = j
    return out


def tiles(h, w, core):
    """[(y0, y1, x0, x1)] cores (multiples of MULTIPLE, core x core or smaller at the ends) covering h x w."""
    return [(y, min(y + core, h), x, min(x + core, w)) for y in range(0, h, core) for x in range(0, w, core)]


def _window(core, h, w):
    """The tile's input window: its core with a halo of HALO, clipped to the image."""
    y0, y1, x0, x1 = core
    return max(0, y0 - HALO), min(h, y1 + HALO), max(0, x0 - HALO), min(w, x1 + HALO)


def tiled(net, x, core):
    """forward(net, x) tile by tile, exactly (this module's docstring); x (1, 3, H, W) with H, W multiples of 4,
    core a multiple of 4."""
    xp = xp_of(x)
    _, _, h, w = x.shape
    parts, stats, step = tiles(h, w, core), {}, jumps(net)
    for u in net.units:
        if not u.norm:
            continue
        j, total, total2, count = step[u.name], 0.0, 0.0, 0
        for c in parts:
            wy0, wy1, wx0, wx1 = _window(c, h, w)
            f = forward(net, x[:, :, wy0:wy1, wx0:wx1], stats, collect=u.name)
            f = f[:, :, (c[0] - wy0) // j:(c[1] - wy0) // j, (c[2] - wx0) // j:(c[3] - wx0) // j]
            f64 = f.astype(xp.float64)
            total = total + f64.sum(axis=(0, 2, 3))
            total2 = total2 + (f64 * f64).sum(axis=(0, 2, 3))
            count += f.shape[2] * f.shape[3]
        mean = total / count
        var = xp.maximum(total2 / count - mean * mean, 0)
        stats[u.name] = (mean.astype(x.dtype).reshape(1, -1, 1, 1),
                         (1 / xp.sqrt(var + instnorm.EPS)).astype(x.dtype).reshape(1, -1, 1, 1))
    out = xp.empty_like(x)
    for c in parts:
        wy0, wy1, wx0, wx1 = _window(c, h, w)
        y = forward(net, x[:, :, wy0:wy1, wx0:wx1], stats)
        out[:, :, c[0]:c[1], c[2]:c[3]] = y[:, :, c[0] - wy0:c[1] - wy0, c[2] - wx0:c[3] - wx0]
    return out


def stylize_array(net, img, tile=None):
    """img (H, W, 3) RGB in [0, 1] (NumPy) -> the painted (H, W, 3) float32 in [0, 1]. The image is padded by
    reflection to multiples of 4 for the network and cropped back; tile: core size in pixels (None: whole)."""
    h, w = img.shape[:2]
    if min(h, w) < 2 * transformer.MULTIPLE:
        raise ValueError(f"the image is {w}x{h}; a style network needs at least {2 * transformer.MULTIPLE} pixels "
                         f"on each side")
    m = transformer.MULTIPLE
    ph, pw = -h % m, -w % m
    xp = xp_of(net.params["conv1.w"])
    x = xp.ascontiguousarray(xp.asarray(img).transpose(2, 0, 1)[None], dtype=xp.float32)  # (1, 3, H, W), device
    if ph or pw:
        x = xp.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
    if tile and max(x.shape[2:]) > tile:
        y = tiled(net, x, max(m, tile // m * m))
    else:
        y = forward(net, x)
    y = xp.ascontiguousarray(xp.clip(y[0, :, :h, :w], 0, 1).transpose(1, 2, 0))  # (H, W, 3), still on the device
    return y if isinstance(y, np.ndarray) else y.get()
