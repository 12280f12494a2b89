"""Colour control (Gatys et al. 2017, section 5): luminance-only transfer, colour histogram matching, the palette start.

- Luminance-only: the content and the styles as their luminance Y = 0.299 R + 0.587 G + 0.114 B (grey images),
  each style's Y shifted and scaled to the content's mean and standard deviation; after the transfer the output's
  Y is joined to the content's chroma (YIQ's I and Q: images.original_colors).
- Histogram matching: each style image recoloured, x' = A (x - mu_s) + mu_t, so that its colours have the
  content's mean mu_t and covariance C_t. Each covariance gets + EPS I, so a style with no colour (a singular
  covariance) can be inverted; EPS = 1e-9, not the notebooks' 1e-5, which leaves an error of about 1e-5 in the
  matched covariance. A is one of
  chol: L_t L_s^-1 (Cholesky factors); pca: C_t^1/2 C_s^-1/2; sym: C_s^-1/2 (C_s^1/2 C_t C_s^1/2)^1/2 C_s^-1/2.
- The palette start (--init palette): the same matching the other way round, the content recoloured to the
  paintings' colour mean and covariance (pca). The optimiser then starts with the painting's colours and spends its
  evaluations on strokes: a global colour shift is the lowest spatial frequency there is, the one that pixel
  gradients move slowest (benchmarks/README.md, "The default run in half the time").
"""
import numpy as np

from ..files.images import LUMA

MODES = ("chol", "pca", "sym")
EPS = 1e-9
_LUMA = np.array(LUMA)


def luminance(img):
    """(H, W, 3) RGB -> (H, W) BT.601 luminance, in the image's dtype."""
    return img @ _LUMA.astype(img.dtype)


def match_luminance(style, content):
    """(h, w, 3) style -> (h, w, 3) grey image: the style's luminance with the content's mean and spread, clipped."""
    ys, yc = luminance(style), luminance(content)
    y = (ys - ys.mean()) * (yc.std() / max(float(ys.std()), 1e-6)) + yc.mean()
    return np.repeat(np.clip(y, 0, 1)[:, :, None], 3, axis=2).astype(style.dtype)


def grey(img):
    """(H, W, 3) -> (H, W, 3) with every channel the luminance."""
    return np.repeat(luminance(img)[:, :, None], 3, axis=2).astype(img.dtype)


def _sqrtm(c):
    """Square root of a symmetric positive-definite matrix, by its eigenvectors."""
    e, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.maximum(e, 0))) @ v.T


def _stats(img, weight=None):
    """(H, W, 3) -> (mean (3,), covariance (3, 3) + EPS I), in float64; weight (H, W) >= 0 weighs the pixels."""
    x = img.reshape(-1, 3).astype(np.float64)
    if weight is None:
        mu = x.mean(axis=0)
        d = x - mu
        return mu, d.T @ d / len(d) + EPS * np.eye(3)
    p = weight.reshape(-1).astype(np.float64) / weight.sum()
    mu = p @ x
    d = x - mu
    return mu, (d * p[:, None]).T @ d + EPS * np.eye(3)


def _recolour(src, mu_s, cs, mu_t, ct, mode, dtype=np.float64):
    """src (h, w, 3) with colour statistics (mu_s, cs) mapped to (mu_t, ct), in dtype, not clipped."""
    x = src.reshape(-1, 3).astype(dtype, copy=False)
    a = transform(cs, ct, mode).T.astype(dtype)
    return ((x - mu_s.astype(dtype)) @ a + mu_t.astype(dtype)).reshape(src.shape)


def transform(cs, ct, mode="pca"):
    """The 3x3 A with A C_s A^T = C_t, by `mode` (module doc)."""
    if mode == "chol":
        return np.linalg.cholesky(ct) @ np.linalg.inv(np.linalg.cholesky(cs))
    if mode == "pca":
        return _sqrtm(ct) @ np.linalg.inv(_sqrtm(cs))
    if mode == "sym":
        rs = _sqrtm(cs)
        irs = np.linalg.inv(rs)
        return irs @ _sqrtm(rs @ ct @ rs) @ irs
    raise ValueError(f"colour matching mode must be one of {', '.join(MODES)}, not {mode!r}")


def match_histogram(src, target, mode="pca"):
    """src (h, w, 3) recoloured to target's (H, W, 3) colour mean and covariance (before the EPS): float64, not
    clipped, so the match is exact; the caller clips."""
    return _recolour(src, *_stats(src), *_stats(target), mode)


def mixture(stats, weights):
    """The mean and covariance of a blend of colour distributions [(mu, C), ...] in proportions `weights`."""
    p = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    mu = sum(pk * m for pk, (m, _) in zip(p, stats))
    second = sum(pk * (c + np.outer(m, m)) for pk, (m, c) in zip(p, stats))
    return mu, second - np.outer(mu, mu)


def palette(content, styles, blend=None, regions=None, style_masks=None):
    """The palette start: content (H, W, 3) recoloured to the styles' colours, float32 in [0, 1].

    blend: the style blend weights (None: equal); style_masks: (h, w) per style or None, where in each painting
    to read its colours; regions: (H, W) per style or None (--mask). Without regions the content takes the blend's
    mixture of colours; with them each pixel blends the content recoloured to each style, by the regions."""
    blend = blend or [1.0] * len(styles)
    stats = [_stats(s, None if style_masks is None or style_masks[k].sum() <= 0 else style_masks[k])
             for k, s in enumerate(styles)]
    own, f32 = _stats(content), np.float32      # the image's arrays stay float32; the 3x3 statistics are float64
    out = _recolour(content, *own, *mixture(stats, blend), "pca", f32)
    if regions is not None:
        weight = [f32(w) * np.asarray(r, dtype=f32)[..., None] for w, r in zip(blend, regions)]
        total = sum(weight)
        each = sum(wk * _recolour(content, *own, *st, "pca", f32) for wk, st in zip(weight, stats))
        out = np.where(total > 0, each / np.maximum(total, f32(1e-12)), out)
    return np.clip(out, 0, 1, out=out).astype(f32, copy=False)


def prepare(mode, content, styles):
    """The images a run with --color-transfer `mode` optimises: (content, styles), each (H, W, 3) float32.

    luminance: grey content and luminance-matched grey styles (the run then joins the output's Y to the
    content's chroma); histogram[:m]: the content, and the styles recoloured to it; None: unchanged."""
    if mode is None:
        return content, styles
    if mode == "luminance":
        return grey(content), [match_luminance(s, content) for s in styles]
    kind = mode.split(":")[1] if ":" in mode else "pca"
    return content, [np.clip(match_histogram(s, content, kind), 0, 1).astype(np.float32) for s in styles]
