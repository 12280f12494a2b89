"""Colour control (Gatys et al. 2017, section 5): luminance-only transfer and colour histogram matching.

- Luminance-only: the content and the styles as their luminance Y = 0.299 R + 0.587 G + 0.114 B (grey images),
  each style's Y shifted and scaled to the content's mean and standard deviation; after the transfer the output's
  Y is joined to the content's chroma (YIQ's I and Q: images.original_colors).
- Histogram matching: each style image recoloured, x' = A (x - mu_s) + mu_t, so that its colours have the
  content's mean mu_t and covariance C_t. Each covariance gets + EPS I, so a style with no colour (a singular
  covariance) can be inverted; EPS = 1e-9, not the notebooks' 1e-5, which leaves an error of about 1e-5 in the
  matched covariance. A is one of
  chol: L_t L_s^-1 (Cholesky factors); pca: C_t^1/2 C_s^-1/2; sym: C_s^-1/2 (C_s^1/2 C_t C_s^1/2)^1/2 C_s^-1/2.
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


def _stats(img):
    """(H, W, 3) -> (mean (3,), covariance (3, 3) + EPS I), in float64."""
    x = img.reshape(-1, 3).astype(np.float64)
    mu = x.mean(axis=0)
    d = x - mu
    return mu, d.T @ d / len(d) + EPS * np.eye(3)


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
    mu_s, cs = _stats(src)
    mu_t, ct = _stats(target)
    a = transform(cs, ct, mode)
    x = src.reshape(-1, 3).astype(np.float64)
    return ((x - mu_s) @ a.T + mu_t).reshape(src.shape)


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
