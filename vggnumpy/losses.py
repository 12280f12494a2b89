"""Gatys losses as forward/backward pairs: content (feature MSE), Gram matrix, style (Gram MSE), total variation.

Each term is divided by its target's energy (sum of squares), so it starts near 1 whatever the layer, the
network (trained or not) and the image size. README.md ("Loss normalisation") relates this to the paper.
"""
from .backend import xp_of

TINY = 1e-12


def content_forward(f, p):
    """f, p (N, C, h, w): sum((f - p)^2) / sum(p^2)."""
    xp = xp_of(f)
    scale = 1.0 / max(float(xp.sum(p * p)), TINY)
    diff = f - p
    return float(xp.sum(diff * diff)) * scale, (diff, scale)


def content_backward(dloss, cache):
    diff, scale = cache
    return diff * diff.dtype.type(2.0 * scale * dloss)


def gram_forward(f):
    """f (N, C, h, w) -> G (N, C, C) = F F^T / (h w): the mean outer product of channel responses."""
    n, c, h, w = f.shape
    fm = f.reshape(n, c, h * w)
    return fm @ fm.transpose(0, 2, 1) / f.dtype.type(h * w), (fm, f.shape)


def gram_backward(dg, cache):
    """dG (N, C, C) -> dF (N, C, h, w); dF = (dG + dG^T) F / (h w)."""
    fm, shape = cache
    # The 1/(h w) scales the small (C, C) matrix, not the (C, h w) product: one pass over the features fewer.
    k = (dg + dg.transpose(0, 2, 1)) / dg.dtype.type(shape[2] * shape[3])
    return (k @ fm).reshape(shape)


def style_forward(f, target):
    """f (N, C, h, w), target Gram (N or 1, C, C): sum((G - A)^2) / sum(A^2)."""
    xp = xp_of(f)
    g, gcache = gram_forward(f)
    scale = 1.0 / max(float(xp.sum(target * target)), TINY)
    diff = g - target
    return float(xp.sum(diff * diff)) * scale, (diff, scale, gcache)


def style_backward(dloss, cache):
    diff, scale, gcache = cache
    return gram_backward(diff * diff.dtype.type(2.0 * scale * dloss), gcache)


def tv_forward(x):
    """x (N, C, H, W) pixels: mean over pixels of squared differences to the right and below neighbours."""
    xp = xp_of(x)
    dh = x[:, :, 1:, :] - x[:, :, :-1, :]
    dw = x[:, :, :, 1:] - x[:, :, :, :-1]
    scale = 1.0 / x.size
    return (float(xp.sum(dh * dh)) + float(xp.sum(dw * dw))) * scale, (dh, dw, scale, x.shape)


def tv_backward(dloss, cache):
    dh, dw, scale, shape = cache
    xp = xp_of(dh)
    k = dh.dtype.type(2.0 * scale * dloss)
    dx = xp.zeros(shape, dtype=dh.dtype)
    dx[:, :, 1:, :] += dh * k
    dx[:, :, :-1, :] -= dh * k
    dx[:, :, :, 1:] += dw * k
    dx[:, :, :, :-1] -= dw * k
    return dx
