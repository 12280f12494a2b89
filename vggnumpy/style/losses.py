"""Gatys losses as forward/backward pairs: content (feature MSE), Gram statistics, style (Gram MSE), total variation.

The derivative maths lives here once; terms.py wraps it into loss terms. Each loss is divided by its target's
energy (sum of squares), so it starts near 1 whatever the layer, the network (trained or not) and the image
size; README.md ("Loss normalisation") relates this to the paper. `scale` = 1 / energy may be passed in, so a
target's energy is computed once per run, not at every evaluation.
"""
from ..nn.backend import xp_of

TINY = 1e-12


def energy_scale(target):
    """1 / sum(target^2), guarded against an all-zero target."""
    xp = xp_of(target)
    return 1.0 / max(float(xp.sum(target * target)), TINY)


def content_forward(f, p, scale=None):
    """f, p (N, C, h, w): sum((f - p)^2) / sum(p^2). The paper's equation (1), normalised."""
    xp = xp_of(f)
    scale = energy_scale(p) if scale is None else scale
    diff = f - p
    return float(xp.sum(diff * diff)) * scale, (diff, scale)


def content_backward(dloss, cache):
    """The paper's equation (2): dL/dF = 2 (F - P) / sum(P^2), times dloss."""
    diff, scale = cache
    return diff * diff.dtype.type(2.0 * scale * dloss)


def gram_stats(f, mask=None):
    """f (N, C, h, w) -> (S (N, C, C), n): S = sum over positions p of m_p^2 f_p f_p^T, n = sum of m_p^2.

    The paper's equation (3) before its normalisation: a sum over positions, so the sums of several tiles add
    up to the sum of the whole image. mask (h, w) weights the positions (None: every position weight 1).
    """
    n_, c, h, w = f.shape
    fm = f.reshape(n_, c, h * w)
    if mask is None:
        return fm @ fm.transpose(0, 2, 1), h * w
    xp = xp_of(f)
    m = mask.reshape(1, 1, h * w).astype(f.dtype)
    fw = fm * m
    return fw @ fw.transpose(0, 2, 1), float(xp.sum(m * m))


def gram_stats_backward(dg, n, f, mask=None):
    """dG (N, C, C) of G = S / n -> dF (N, C, h, w) for S = gram_stats(f, mask): dF_p = m_p^2 (dG + dG^T) f_p / n.

    n is the count of the whole image's statistics, so each tile of an image gets its own part of dF.
    """
    n_, c, h, w = f.shape
    fm = f.reshape(n_, c, h * w)
    # The 1/n scales the small (C, C) matrix, not the (C, h w) product: one pass over the features fewer.
    k = (dg + dg.transpose(0, 2, 1)) / dg.dtype.type(n)
    if mask is None:
        return (k @ fm).reshape(f.shape)
    m = mask.reshape(1, 1, h * w).astype(f.dtype)
    return ((k @ (fm * m)) * m).reshape(f.shape)


def gram_forward(f):
    """f (N, C, h, w) -> (G (N, C, C), n): G = F F^T / n, n = h w, the mean outer product of channel responses.

    gram_stats divided by its count: a style image's Gram matrix, its target. The gradient through G is
    gram_stats_backward's."""
    s, n = gram_stats(f)
    return s / f.dtype.type(n), n


def style_forward(s, n, target, scale=None):
    """Gram statistics (S, n) of gram_stats, G = S / n, against the target A (N or 1, C, C): sum((G - A)^2) / sum(A^2).

    The paper's equation (4), normalised; from the statistics, so that a tiled image's summed statistics give
    the same loss. Returns (loss, cache) for style_backward."""
    xp = xp_of(s)
    scale = energy_scale(target) if scale is None else scale
    diff = s / s.dtype.type(n) - target
    return float(xp.sum(diff * diff)) * scale, (diff, scale)


def style_backward(dloss, cache):
    """dL/dG = 2 (G - A) / sum(A^2), times dloss; gram_stats_backward takes it on to the features: the paper's
    equation (6), dF = (dG + dG^T) F / n."""
    diff, scale = cache
    return diff * diff.dtype.type(2.0 * scale * dloss)


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


def temporal_forward(x, target, c):
    """x, target (N, 3, H, W), c (H, W) in [0, 1]: sum(c (x - target)^2) / D, D = 3 H W.

    Ruder, Dosovitskiy and Brox 2016, equation (7): the output against the previous output warped by the flow,
    weighted per pixel by the consistency check (0 where the flow cannot be trusted). Pixels in [0, 1].
    """
    xp = xp_of(x)
    d = float(x.shape[-3] * x.shape[-2] * x.shape[-1])
    cd = (x - target) * c                        # (N, 3, H, W)
    return float(xp.sum(cd * (x - target))) / d, (cd, d)


def temporal_backward(dloss, cache):
    """dL/dx = 2 c (x - target) / D, times dloss."""
    cd, d = cache
    return cd * cd.dtype.type(2.0 * dloss / d)
