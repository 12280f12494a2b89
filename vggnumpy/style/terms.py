"""Loss terms: the one protocol every term follows (Term), and the terms of the paper, spatial control and video.

A term is used through these members and nothing else (objective.py evaluates terms with them, tiling.py tiles
them with them):

- `layer`: the network layer it reads, or PIXELS for the image itself; `name`: its key in a loss's parts.
- `stats(f) -> s`: what its loss needs of the features f (1, C, h, w) of `layer`.
- `loss(s) -> (value, ds)`: the weighted loss and its gradient with respect to s.
- `feature_grad(ds, f) -> df`: that gradient taken on to the features, a new array shaped as f (tiling
  zeroes its halo in place).
- `crop(index) -> term`: the same term for the features f[index] of part of its grid, index (:, :, ys, xs) on
  the grid the term is on (a target's or a mask's slice); normalisations stay those of the whole image.
- `additive`: True when s is a tuple of sums over positions, so the statistics of disjoint parts of the grid
  add up, item by item, to the whole's (the Gram term). Tiling then sums the tiles' statistics and calls loss
  once, and feature_grad of a tile gets the whole image's ds. False: the loss itself is a sum over positions
  (the content term); tiling adds up the losses of crop(...) on each tile's part.

A term on PIXELS is evaluated on the whole image, tiled or not, and needs neither crop nor additive. So a new
term is one class with these members (Term's defaults: stats the identity, additive False), in the list of
terms an objective evaluates (objective.build_terms returns it; video adds its temporal terms to it). Targets
and their energies are computed once, when a term is made. The maths is in losses.py; the paper's equations
are named there.
"""
from dataclasses import dataclass

from . import losses

PIXELS = "pixels"          # the `layer` of a term that reads the image itself


class Term:
    """The term protocol (this module's docstring): subclasses set `layer` and `name` and define loss and
    feature_grad; a term on a network layer also defines crop. These defaults: the features are the statistics,
    and they do not add over tiles."""
    additive = False

    def stats(self, f):
        return f

    def loss(self, stats):
        raise NotImplementedError

    def feature_grad(self, dstats, f):
        raise NotImplementedError

    def crop(self, index):
        raise NotImplementedError(f"{type(self).__name__} cannot be cropped to a tile")


@dataclass(eq=False)
class ContentTerm(Term):
    """weight * sum((F - P)^2) / sum(P^2) at one layer; P is the content's features (the paper's equation 1)."""
    layer: str
    weight: float
    target: object                      # (1, C, h, w) features of the content image
    name: str = ""

    def __post_init__(self):
        self.name = self.name or f"content {self.layer}"
        self.scale = losses.energy_scale(self.target)

    def loss(self, f):
        value, cache = losses.content_forward(f, self.target, self.scale)
        return self.weight * value, losses.content_backward(self.weight, cache)

    def feature_grad(self, dstats, f):
        return dstats

    def crop(self, index):
        """The same term on part of the grid (a tile's core units): the target's slice, the whole target's energy."""
        part = ContentTerm.__new__(ContentTerm)
        part.layer, part.weight, part.target, part.name, part.scale = (self.layer, self.weight, self.target[index],
                                                                       self.name, self.scale)
        return part


@dataclass(eq=False)
class GramTerm(Term):
    """weight * sum((G - A)^2) / sum(A^2) at one layer, G = S / n from gram_stats (the paper's equations 3-5).

    target A (1, C, C) is the (blended) Gram matrix of the style images; mask (h, w) or None weights positions:
    with a region's guide at this layer it is the guided Gram of Gatys et al. 2017 (masks.py), whose
    normalisation by sqrt(mean(T^2)) is the division by n = sum(m^2). Its statistics (S, n) add over tiles.
    """
    additive = True
    layer: str
    weight: float
    target: object
    mask: object = None
    name: str = ""

    def __post_init__(self):
        self.name = self.name or f"style {self.layer}"
        self.scale = losses.energy_scale(self.target)

    def stats(self, f):
        return losses.gram_stats(f, self.mask)

    def loss(self, stats):
        """(value, (dL/dG, n)): the gradient with respect to G and the count it was divided by."""
        s, n = stats
        value, cache = losses.style_forward(s, n, self.target, self.scale)
        return self.weight * value, (losses.style_backward(self.weight, cache), n)

    def feature_grad(self, dstats, f):
        dg, n = dstats
        return losses.gram_stats_backward(dg, n, f, self.mask)

    def crop(self, index):
        """The same term on part of the grid, index (:, :, ys, xs) as ContentTerm.crop: the mask's slice (a tile's
        statistics then add up to the whole image's); the target and its energy are shared."""
        if self.mask is None:
            return self
        part = GramTerm.__new__(GramTerm)
        part.__dict__.update(self.__dict__)
        part.mask = self.mask[index[2:]]
        return part


@dataclass(eq=False)
class TVTerm(Term):
    """weight * mean over pixels of squared differences to the right and below neighbours, on the image."""
    weight: float
    layer: str = PIXELS
    name: str = "tv"

    def stats(self, x):
        return losses.tv_forward(x)

    def loss(self, stats):
        value, cache = stats
        return self.weight * value, cache

    def feature_grad(self, cache, x):
        return losses.tv_backward(self.weight, cache)


@dataclass(eq=False)
class TemporalTerm(Term):
    """weight * sum(c (x - warped)^2) / D on the image: stay where the previous output, warped by the optical flow,
    says the pixel was (Ruder et al. 2016). warped (1, 3, H, W) in [0, 1]; c (H, W) the consistency weights."""
    weight: float
    target: object
    c: object
    name: str = "temporal"
    layer: str = PIXELS

    def loss(self, x):
        value, cache = losses.temporal_forward(x, self.target, self.c)
        return self.weight * value, cache

    def feature_grad(self, cache, x):
        return losses.temporal_backward(self.weight, cache)


def style_targets(grams, blend):
    """Blend several styles' Gram matrices {layer: (1, C, C)}, one dict per style, by weights normalised to 1.

    jcjohnson's -style_blend_weights: the mixed target is sum_i b_i G_i / sum_i b_i.
    """
    total = float(sum(blend))
    out = {}
    for g_of, b in zip(grams, blend):
        for name, g in g_of.items():
            g = g * g.dtype.type(b / total)
            out[name] = g if name not in out else out[name] + g
    return out
