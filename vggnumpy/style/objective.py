"""The style-transfer objective: preprocessing, network, losses and their gradient with respect to the pixels."""
from . import losses, terms
from ..nn.backend import xp_of
from ..nn.preprocess import preprocess_backward, preprocess_forward



def features(net, img, layers, tile=None):
    """Features of one image (3, H, W) at the given layers: {name: (1, C, h, w)}; tile by tile with `tile`."""
    if tile and max(img.shape[1:]) > tile:
        from .tiling import features as tiled
        return tiled(net, img, layers, tile)
    x, _ = preprocess_forward(img, net.weights)
    feats, _ = net.forward(x, layers)
    return {name: feats[name] for name in layers}


def gram_targets(net, img, layers, tile=None, mask=None, rule="simple"):
    """Gram matrices of one image at the given layers: {name: (1, C, C)}; tile by tile with `tile`.

    mask (h, w) on the image's pixels: the guided Gram of that region (Gatys et al. 2017), its guides brought
    to each layer by `rule` (masks.layer_guides)."""
    if mask is not None:
        from .masks import layer_guides
        guides = layer_guides(mask, net.arch, layers, rule)
        feats = features(net, img, layers, tile)
        xp = xp_of(img)
        out = {}
        for name, f in feats.items():
            s, n = losses.gram_stats(f, xp.asarray(guides[name]))
            if n <= 0:
                raise EmptyRegion(None, name)
            out[name] = s / s.dtype.type(n)
        return out
    if tile and max(img.shape[1:]) > tile:
        from .tiling import grams
        return grams(net, img, layers, tile)
    return {name: losses.gram_forward(f)[0] for name, f in features(net, img, layers).items()}


class EmptyRegion(ValueError):
    """A region with no unit at a layer (its guide is 0 there): region is the style's index (None: a style image's
    mask), layer the layer's name. The caller names the mask file."""

    def __init__(self, region, layer):
        super().__init__(f"region {region} is empty at {layer}")
        self.region, self.layer, self.style = region, layer, None


def region_terms(net, targets, blend, style_layers, style_weight, regions, rule):
    """One guided Gram term per style and layer: style i paints where regions[i] (H, W) says, against its own
    Gram target targets[i]; the regions' weights are the blend, normalised to 1 (the paper's 1 / #regions)."""
    total = float(sum(blend))
    out = []
    for i, (region, target, b) in enumerate(zip(regions, targets, blend)):
        guides = layer_guides_xp(region, net.arch, list(style_layers), rule, target)
        for name, w in style_layers.items():
            if float(guides[name].sum()) <= 0:
                raise EmptyRegion(i, name)
            out.append(terms.GramTerm(name, style_weight * w * b / total, target[name], mask=guides[name],
                                      name=f"style {name} region {i + 1}"))
    return out


def layer_guides_xp(region, arch, layers, rule, like):
    """masks.layer_guides on the array module of the dict of arrays `like`."""
    from .masks import layer_guides
    xp = xp_of(next(iter(like.values())))
    return {n: xp.asarray(g) for n, g in layer_guides(region, arch, layers, rule).items()}


def build_terms(net, content_img, style_imgs, blend, content_layers, style_layers, content_weight=1.0,
                style_weight=1.0, tv_weight=0.0, tile=None, regions=None, style_masks=None, rule="simple"):
    """The loss terms of Gatys et al. with their targets computed once (the paper's equation 7, term by term).

    content_img (3, H, W); style_imgs a list of (3, h, w) mixed by `blend`; layer weights are dicts name -> weight.
    A term whose weight is 0 is left out, with its target never computed. With `tile` (pixels), images larger
    than it are run tile by tile (tiling.py), so the targets of an image larger than memory can be made.
    Spatial control (masks.py): regions, one (H, W) mask per style image, gives each style its own region of the
    output instead of a blend; style_masks, one (h, w) mask or None per style image, where to take it from.
    """
    content_layers, style_layers = dict(content_layers), dict(style_layers)
    out = []
    if content_layers and content_weight:
        feats = features(net, content_img, list(content_layers), tile)
        out += [terms.ContentTerm(n, content_weight * w, feats[n]) for n, w in content_layers.items()]
    if style_layers and style_weight:
        style_masks = style_masks or [None] * len(style_imgs)
        grams = []
        for i, (img, m) in enumerate(zip(style_imgs, style_masks)):
            try:
                grams.append(gram_targets(net, img, list(style_layers), tile, m, rule))
            except EmptyRegion as e:
                e.style = i
                raise
        if regions is not None:
            out += region_terms(net, grams, blend, style_layers, style_weight, regions, rule)
        else:
            targets = terms.style_targets(grams, blend)
            out += [terms.GramTerm(n, style_weight * w, targets[n]) for n, w in style_layers.items()]
    if tv_weight:
        out.append(terms.TVTerm(tv_weight))
    return out


class Objective:
    """loss(img) and its gradient for img (3, H, W) RGB in [0, 1]: the sum of its loss terms (terms.py).

    Objective(net, content_img, style_imgs, blend, content_layers, style_layers, content_weight, style_weight,
    tv_weight) builds Gatys et al.'s terms (build_terms) into `terms`, followed by extra_terms, any terms.Term
    (video's temporal terms), so that the tiles are planned for them too. Call evaluate(img) -> (loss, grad, parts).
    """

    def __init__(self, net, content_img, style_imgs, blend, content_layers, style_layers,
                 content_weight=1.0, style_weight=1.0, tv_weight=0.0, tile=None, regions=None, style_masks=None,
                 rule="simple", extra_terms=()):
        self.net = net
        self.terms = build_terms(net, content_img, style_imgs, blend, content_layers, style_layers,
                                 content_weight, style_weight, tv_weight, tile, regions, style_masks,
                                 rule) + list(extra_terms)
        if tile and max(content_img.shape[1:]) > tile:
            from .tiling import plan
            self.tiles = plan(content_img.shape[1], content_img.shape[2], tile, net.arch,
                              [t.layer for t in self.terms if t.layer != terms.PIXELS])
        self.evaluations = 0

    tiles = None                  # a list of tiling.Tile: evaluate tile by tile (tiling.py), exactly

    def evaluate(self, img, with_grad=True):
        """img (3, H, W) -> (loss, dimg (3, H, W) or None, parts {term name: weighted loss})."""
        if self.tiles:
            from .tiling import evaluate
            return evaluate(self, img, self.tiles, with_grad)
        self.evaluations += 1
        layers = list(dict.fromkeys(t.layer for t in self.terms if t.layer != terms.PIXELS))
        feats, ncache, pcache = {}, None, None
        if layers:
            x, pcache = preprocess_forward(img, self.net.weights)
            feats, ncache = self.net.forward(x, layers)
        feats[terms.PIXELS] = img[None]
        parts, grads = {}, {}
        for t in self.terms:
            f = feats[t.layer]
            value, dstats = t.loss(t.stats(f))
            parts[t.name] = value
            if with_grad:
                _add(grads, t.layer, t.feature_grad(dstats, f))
        feats = None                                   # the backward needs only the caches
        total = sum(parts.values())
        if not with_grad:
            return total, None, parts
        dpix = grads.pop(terms.PIXELS, None)
        dimg = preprocess_backward(self.net.backward(grads, ncache), pcache) if grads else xp_of(img).zeros_like(img)
        if dpix is not None:
            dimg = dimg + dpix[0]
        return total, dimg, parts


def _add(d, name, g):
    d[name] = g if name not in d else d[name] + g
