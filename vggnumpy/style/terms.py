"""Loss terms as statistics: each term is stats(features) -> loss(stats) -> (value, dstats) -> feature_grad.

A term reads one layer of the network (or the pixels, for total variation). Its statistics are what its loss
needs of the features: for the Gram term a sum over positions, so statistics of several tiles add up; for the
content and TV terms the per-position values themselves. Targets and their energies are computed once, when
the term is made. A new term (temporal, masked, ...) is one more class with these three methods and `layer`.
The maths is in losses.py; the paper's equations are named there.
"""
from dataclasses import dataclass

from . import losses

PIXELS = "pixels"          # the `layer` of a term that reads the image itself


@dataclass(eq=False)
class ContentTerm:
    """weight * sum((F - P)^2) / sum(P^2) at one layer; P is the content's features (the paper's equation 1)."""
    layer: str
    weight: float
    target: object                      # (1, C, h, w) features of the content image
    name: str = ""

    def __post_init__(self):
        self.name = self.name or f"content {self.layer}"
        self.scale = losses.energy_scale(self.target)

    def stats(self, f):
        return f

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
class GramTerm:
    """weight * sum((G - A)^2) / sum(A^2) at one layer, G = S / n from gram_stats (the paper's equations 3-5).

    target A (1, C, C) is the (blended) Gram matrix of the style images; mask (h, w) or None weights positions:
    with a region's guide at this layer it is the guided Gram of Gatys et al. 2017 (masks.py), whose
    normalisation by sqrt(mean(T^2)) is the division by n = sum(m^2).
    """
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
        value, dg = losses.style_stats_loss(s, n, self.target, self.scale, self.weight)
        return value, (dg, n)

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
class TVTerm:
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
class TemporalTerm:
    """weight * sum(c (x - warped)^2) / D on the image: stay where the previous output, warped by the optical flow,
    says the pixel was (Ruder et al. 2016). warped (1, 3, H, W) in [0, 1]; c (H, W) the consistency weights."""
    weight: float
    target: object
    c: object
    name: str = "temporal"
    layer: str = PIXELS

    def stats(self, x):
        return x

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
