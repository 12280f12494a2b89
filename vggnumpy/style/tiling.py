"""Exact tiled evaluation: the objective and its gradient computed tile by tile, equal to the untiled ones.

A unit of layer l with cumulative stride J_l reads the input pixels [J_l u + s_l, J_l u + s_l + R_l - 1]
(receptive()). Each tile owns a core of pixels; a layer's unit belongs to the tile whose core holds its anchor
J_l u, so every layer's grid is split between the tiles with nothing left out or counted twice. A tile is run on
its core plus a halo wide enough that every core unit reads only pixels inside the crop; tile origins sit on
multiples of the deepest layer's stride, so each crop's grids line up with the whole image's. The terms are
used through their protocol only (terms.py), dispatched on `additive`:

- pass A: for each tile, forward, and add the core units' statistics of each additive term (sums over
  positions, such as the Gram term's) to the total;
- the additive terms' losses and their gradients with respect to the statistics come from the summed ones;
- pass B: for each tile, forward again, give the core units their gradient (additive: from the whole image's
  gradient of the statistics; other terms, such as content: the loss and gradient of the term cropped to the
  core, whose losses add up over the tiles), zero to the halo's, backward, and add the crop's input gradient.

Terms on the pixels (total variation, temporal) are evaluated on the whole image. Pass A is skipped without
additive terms.
Pass B runs the tiles in reverse, starting with the tile pass A ran last, whose forward it reuses. One tile's
forward is held at a time, and its features are freed before its backward: a tile costs the memory an untiled
evaluation of its crop costs.
"""
from dataclasses import dataclass

from ..nn import arch as archmod
from ..nn.arch import receptive
from . import terms
from ..nn.backend import xp_of
from ..nn.preprocess import preprocess_backward, preprocess_forward



def halo(arch, layers):
    """(halo, align): pixels each crop reaches beyond its core, and the multiple tile origins sit on."""
    fields = [receptive(arch, layer) for layer in layers]
    align = max(j for j, _, _ in fields)
    need = max(max(-s, s + r - j) for j, s, r in fields)
    return -(-need // align) * align, align


@dataclass(frozen=True)
class Tile:
    core: tuple        # (y0, y1, x0, x1) pixels this tile owns
    crop: tuple        # (y0, y1, x0, x1) pixels it runs on: the core and its halo, inside the image


def _cuts(size, step):
    return [(a, min(a + step, size)) for a in range(0, size, step)]


def plan(height, width, tile, arch, layers):
    """Tiles of at most `tile` x `tile` core pixels (rounded down to the alignment) covering the image."""
    h, align = halo(arch, layers)
    step = max(align, tile // align * align)
    return [Tile((y0, y1, x0, x1), (max(0, y0 - h), min(height, y1 + h), max(0, x0 - h), min(width, x1 + h)))
            for y0, y1 in _cuts(height, step) for x0, x1 in _cuts(width, step)]


def _units(tile, j, shape):
    """Slices of a layer's crop grid (C, h, w) that hold the tile's core units (anchors J u in the core)."""
    (y0, y1, x0, x1), (cy, _, cx, _) = tile.core, tile.crop
    up = lambda v: -(-v // j)
    return (slice(up(y0) - cy // j, min(up(y1) - cy // j, shape[-2])),
            slice(up(x0) - cx // j, min(up(x1) - cx // j, shape[-1])))


def _global_units(tile, j, shape):
    """The same units in the whole image's grid (for slicing a content target)."""
    y, x = _units(tile, j, shape)
    cy, cx = tile.crop[0] // j, tile.crop[2] // j
    return slice(y.start + cy, y.stop + cy), slice(x.start + cx, x.stop + cx)


def _on_crop(term, tile, j, shape):
    """A term restricted to a tile's crop grid (C, h, w) of a layer of stride j (term.crop: a mask's slice...)."""
    cy, cx = tile.crop[0] // j, tile.crop[2] // j
    return term.crop((slice(None), slice(None), slice(cy, cy + shape[-2]), slice(cx, cx + shape[-1])))


def _forward(obj, img, tile, layers):
    """The network on one tile's crop: (features, network cache, preprocessing cache)."""
    y0, y1, x0, x1 = tile.crop
    x, pcache = preprocess_forward(img[:, y0:y1, x0:x1], obj.net.weights)
    feats, ncache = obj.net.forward(x, layers)
    return feats, ncache, pcache


def _add(a, b):
    """Statistics of an additive term, a tuple of sums, added item by item."""
    return tuple(x + y for x, y in zip(a, b))


def _tile_stats(obj, img, tile, summed, strides, layers, keep):
    """One tile of pass A: {term index: statistics} of its core units, and its forward when `keep` (else None)."""
    fwd = _forward(obj, img, tile, layers)
    out = {}
    for i in summed:
        t = obj.terms[i]
        f = fwd[0][t.layer]
        out[i] = _core_stats(_on_crop(t, tile, strides[t.layer], f.shape), f,
                             *_units(tile, strides[t.layer], f.shape))
    return out, (fwd if keep else None)


ROWS_ELEMS = 1 << 20          # the core is read in bands of rows of about this many elements


def _core_stats(term, f, ys, xs):
    """term.stats of the core units f[:, :, ys, xs], a band of rows at a time: the term is additive (its
    statistics are sums over positions), and the core of a crop is not contiguous, so this never copies a whole
    layer. term is on the crop's grid (_on_crop), so a masked term's mask is sliced with the band."""
    c, width = f.shape[1], xs.stop - xs.start
    step = max(1, ROWS_ELEMS // max(1, c * width))
    total, every = None, slice(None)
    for y in range(ys.start, ys.stop, step):
        band = (every, every, slice(y, min(y + step, ys.stop)), xs)
        s = term.crop(band).stats(f[band])
        total = s if total is None else _add(total, s)
    core = (every, every, ys, xs)
    return total if total is not None else term.crop(core).stats(f[core])     # no core unit at this layer


def _pass_a(obj, img, tiles, summed, strides, layers):
    """Sum of each additive term's statistics over the tiles' cores: ({term index: statistics}, the last tile's
    forward).

    The last tile's forward (its features and caches) is handed to pass B, which starts with that tile."""
    total, last = {}, None
    for k, tile in enumerate(tiles):
        stats, last = _tile_stats(obj, img, tile, summed, strides, layers, keep=k == len(tiles) - 1)
        for i, s in stats.items():
            total[i] = s if i not in total else _add(total[i], s)
    return total, last


def _tile_grad(obj, img, tile, kept, layers, net_terms, summed, strides, dstats, parts, with_grad):
    """One tile of pass B: adds its other terms' values to `parts`; its crop's input gradient (3, h, w).

    kept: a list holding pass A's forward of this tile, or empty; it is emptied, so that the features (which the
    backward does not need: a fused conv + ReLU caches only its mask) are freed before the backward, as the
    untiled objective frees them."""
    feats, ncache, pcache = kept.pop() if kept else _forward(obj, img, tile, layers)
    xp = xp_of(img)
    grads = {}
    for i in net_terms:
        t, f = obj.terms[i], feats[obj.terms[i].layer]
        ys, xs = _units(tile, strides[t.layer], f.shape)
        core = f[:, :, ys, xs]
        if i in summed:                 # from the whole image's dstats: on the whole crop, the halo then zeroed
            tc = _on_crop(t, tile, strides[t.layer], f.shape)
            g = _zero_outside(tc.feature_grad(dstats[i], f), ys, xs) if with_grad else None
        else:                           # the term on the core units alone: this tile's share of the loss
            gy, gx = _global_units(tile, strides[t.layer], f.shape)
            tc = t.crop((slice(None), slice(None), gy, gx))
            value, d = tc.loss(tc.stats(core))
            parts[i] = parts.get(i, 0.0) + value
            if with_grad:
                g = xp.zeros_like(f)
                g[:, :, ys, xs] = tc.feature_grad(d, core)
        if with_grad:
            grads[t.layer] = g if t.layer not in grads else grads[t.layer] + g
    del feats, f, core
    return preprocess_backward(obj.net.backward(grads, ncache), pcache) if with_grad else None


def _zero_outside(g, ys, xs):
    """g (N, C, h, w) with every unit outside the core slices set to 0, in place."""
    g[:, :, :ys.start] = 0
    g[:, :, ys.stop:] = 0
    g[:, :, :, :xs.start] = 0
    g[:, :, :, xs.stop:] = 0
    return g


def evaluate(obj, img, tiles, with_grad=True):
    """objective.Objective.evaluate, tile by tile: (loss, dimg (3, H, W) or None, parts).

    Each tile's forward lives only inside _tile_stats or _tile_grad, so at most one tile's caches are held."""
    xp = xp_of(img)
    arch = obj.net.arch
    net_terms = [i for i, t in enumerate(obj.terms) if t.layer != terms.PIXELS]
    summed = [i for i in net_terms if obj.terms[i].additive]
    strides = {obj.terms[i].layer: receptive(arch, obj.terms[i].layer)[0] for i in net_terms}
    layers = list(dict.fromkeys(obj.terms[i].layer for i in net_terms))
    obj.evaluations += 1
    parts, dstats, last = {}, {}, None
    if summed:
        stats, last = _pass_a(obj, img, tiles, summed, strides, layers)
        for i, s in stats.items():
            parts[i], dstats[i] = obj.terms[i].loss(s)
    dimg = xp.zeros_like(img) if with_grad else None
    kept = [last] if last is not None else []
    del last
    for tile in reversed(tiles) if net_terms else ():
        d = _tile_grad(obj, img, tile, kept, layers, net_terms, summed, strides, dstats, parts, with_grad)
        if with_grad:
            y0, y1, x0, x1 = tile.crop
            dimg[:, y0:y1, x0:x1] += d
    return _finish(obj, img, parts, dimg, with_grad)


def _finish(obj, img, parts, dimg, with_grad):
    """Add the pixel terms (on the whole image) and order the parts as the untiled objective does."""
    out = {}
    for i, t in enumerate(obj.terms):
        if t.layer == terms.PIXELS:
            value, d = t.loss(t.stats(img[None]))
            out[t.name] = value
            if with_grad:
                dimg = dimg + t.feature_grad(d, img[None])[0]
        else:
            out[t.name] = parts.get(i, 0.0)
    return sum(out.values()), dimg, out


def features(net, img, layers, tile):
    """{layer: (1, C, h, w)} of the whole image, computed tile by tile (for targets larger than memory)."""
    xp = xp_of(img)
    tiles = plan(img.shape[1], img.shape[2], tile, net.arch, layers)
    shapes = archmod.feature_shapes(net.arch, img.shape[1], img.shape[2])
    out = {layer: xp.zeros((1,) + shapes[layer], dtype=img.dtype) for layer in layers}
    for t in tiles:
        feats = _forward_net(net, img, t, layers)
        for layer in layers:
            j = receptive(net.arch, layer)[0]
            ys, xs = _units(t, j, feats[layer].shape)
            gy, gx = _global_units(t, j, feats[layer].shape)
            out[layer][:, :, gy, gx] = feats[layer][:, :, ys, xs]
    return out


def grams(net, img, layers, tile):
    """{layer: G (1, C, C)} of the whole image, from Gram statistics summed over tiles."""
    from . import losses
    total = {}
    for t in plan(img.shape[1], img.shape[2], tile, net.arch, layers):
        feats = _forward_net(net, img, t, layers)
        for layer in layers:
            ys, xs = _units(t, receptive(net.arch, layer)[0], feats[layer].shape)
            s, n = losses.gram_stats(feats[layer][:, :, ys, xs])
            total[layer] = (s, n) if layer not in total else (total[layer][0] + s, total[layer][1] + n)
    return {layer: s / s.dtype.type(n) for layer, (s, n) in total.items()}


def _forward_net(net, img, tile, layers):
    y0, y1, x0, x1 = tile.crop
    x, _ = preprocess_forward(img[:, y0:y1, x0:x1], net.weights)
    return net.forward(x, layers)[0]
