"""Look inside a run: feature maps and Gram matrices as pictures, and the loss curve beside a frame (matplotlib)."""
import math
import os
import re

import numpy as np

from .plot import require

MAX_CHANNELS = 64            # feature maps shown per layer
_PANEL_ASPECT = 1.6          # loss panel width / height: the axes, and the legend on their right
_FLOOR = 1e-12               # smallest loss drawn on the log scale


def choose_channels(f, k=MAX_CHANNELS, pick="largest"):
    """Channels of f (1, C, h, w) or (C, h, w) to show: the first k, or the k with the largest mean, largest first.

    Returns an int array of at most k channel indices; ties keep the channel order (stable sort).
    """
    f = np.asarray(f)
    f = f[0] if f.ndim == 4 else f                                   # (C, h, w)
    c = f.shape[0]
    if pick == "first":
        return np.arange(min(k, c))
    if pick != "largest":
        raise ValueError(f"pick must be 'first' or 'largest', not {pick!r}")
    means = f.reshape(c, -1).astype(np.float64).mean(axis=1)         # (C,)
    return np.argsort(-means, kind="stable")[:k]


def feature_mosaic(f, channels, gap=1):
    """f (1, C, h, w), channel indices -> (rows*(h+gap)-gap, cols*(w+gap)-gap) float32 grid, NaN in the gaps.

    Each map is scaled to its own range [min, max] -> [0, 1]; a constant map is drawn as 0.
    """
    f = np.asarray(f)[0]                                              # (C, h, w)
    _, h, w = f.shape
    n = len(channels)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan, dtype=np.float32)
    for i, ch in enumerate(channels):
        a = f[ch].astype(np.float32)                                  # (h, w)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        r, c = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = a
    return out


def gram_matrix(f):
    """f (1, C, h, w) -> G (C, C) float32 = F F^T / (h w), through losses.gram_forward, on the host."""
    from ..nn.backend import to_numpy
    from ..style.losses import gram_forward
    g, _ = gram_forward(f)
    return to_numpy(g)[0].astype(np.float32)


def gram_distances(named_feats, layer):
    """[(label, {layer: (1, C, h, w)}), ...] -> [(label, ||G_i - G_1||^2 / ||G_1||^2)], the first's being 0.

    The relative squared distance of each image's Gram matrix to the first's: what the style loss measures.
    """
    grams = [(label, gram_matrix(feats[layer]).astype(np.float64)) for label, feats in named_feats]
    ref = grams[0][1]
    norm = float(np.sum(ref * ref))
    return [(label, float(np.sum((g - ref) ** 2)) / max(norm, 1e-300)) for label, g in grams]


def _safe(name):
    """A label or layer name as a file name part: anything but letters, digits, '.', '-' and '_' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name))


def _save(fig, path):
    from ..files.paths import atomic_write
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


def _feature_figure(label, layer, f, pick):
    """The Figure of one image's feature maps at one layer: a grid, each map in its own range, with statistics."""
    from matplotlib.figure import Figure
    f = np.asarray(f)                                                 # (1, C, h, w)
    chans = choose_channels(f, MAX_CHANNELS, pick)
    grid = feature_mosaic(f, chans)
    how = (f"the {len(chans)} with the largest mean activation, largest first" if pick == "largest"
           else f"the first {len(chans)}")
    if len(chans) == f.shape[1]:
        how = f"all {len(chans)}" + (", largest mean first" if pick == "largest" else "")
    fig_h = 8 * grid.shape[0] / grid.shape[1] + 0.6                   # inches: the grid 8 wide, the title above
    fig = Figure(figsize=(8.2, fig_h), dpi=100)
    ax = fig.add_axes((0.0125, 0.1 / fig_h, 0.975, (fig_h - 0.65) / fig_h))
    ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_facecolor("white")
    ax.set_axis_off()
    fig.suptitle(f"{label} at {layer}: shape {tuple(f.shape)}; min {f.min():.4g}, max {f.max():.4g}, "
                 f"mean {f.mean():.4g}\nchannels shown: {how}; each map scaled to its own range",
                 fontsize=9, y=0.995, va="top")
    return fig


def _gram_figure(layer, named_feats):
    """The Figure of every image's Gram matrix at one layer side by side, one colour scale, channels in order."""
    from matplotlib.colors import Normalize, PowerNorm
    from matplotlib.figure import Figure
    grams = [(label, gram_matrix(feats[layer])) for label, feats in named_feats]
    dists = gram_distances(named_feats, layer) if len(grams) > 1 else None
    lo = min(float(g.min()) for _, g in grams)
    hi = max(float(g.max()) for _, g in grams)
    n = len(grams)
    fig = Figure(figsize=(3.4 * n + 0.9, 4.0), dpi=100, layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    # one scale for all; a square-root scale when G >= 0 (after a ReLU), so more than the diagonal shows
    norm = PowerNorm(0.5, lo, hi) if lo >= 0 and hi > lo else Normalize(lo, hi if hi > lo else lo + 1)
    for i, (ax, (label, g)) in enumerate(zip(axes, grams)):
        im = ax.imshow(g, cmap="magma", norm=norm, interpolation="nearest")
        sub = label if dists is None else (f"{label}\n|G-G_{grams[0][0]}|²/|G_{grams[0][0]}|² = "
                                           f"{dists[i][1]:.4g}")
        ax.set_title(sub, fontsize=8)
        ax.tick_params(labelsize=6)
    c = grams[0][1].shape[0]
    fig.suptitle(f"Gram matrices G = F Fᵀ / (h w) at {layer}: ({c}, {c}) each, one colour scale"
                 + (" (square root)" if isinstance(norm, PowerNorm) else ""), fontsize=9)
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    return fig


def write_features(net, named_images, layers, outdir, log=print, pick="largest"):
    """Feature-map grids of each image at each layer and, per layer, their Gram matrices side by side, as PNGs.

    named_images: [(label, (H, W, 3) float32 RGB in [0, 1]), ...]; layers: names such as relu1_1; outdir: an
    existing or new folder, written into (files of the same names are replaced). pick: which channels a grid
    shows when there are more than 64: "largest" (largest mean activation) or "first".
    Writes outdir/features_{label}_{layer}.png and outdir/gram_{layer}.png; returns the paths written.
    """
    require()
    from ..nn.backend import to_numpy
    from ..style.objective import features
    labels = [label for label, _ in named_images]
    if len(set(map(_safe, labels))) != len(labels):
        raise ValueError(f"image labels must be distinct file names: {labels}")
    if not named_images or not layers:
        raise ValueError("give at least one image and one layer")
    os.makedirs(outdir, exist_ok=True)
    named_feats = []
    for label, img in named_images:
        chw = np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1))   # (3, H, W)
        feats = features(net, chw, list(layers))
        named_feats.append((label, {k: to_numpy(v) for k, v in feats.items()}))          # {name: (1, C, h, w)}
    written = []
    for label, feats in named_feats:
        for layer in layers:
            path = os.path.join(outdir, f"features_{_safe(label)}_{_safe(layer)}.png")
            _save(_feature_figure(label, layer, feats[layer], pick), path)
            written.append(path)
    for layer in layers:
        path = os.path.join(outdir, f"gram_{_safe(layer)}.png")
        _save(_gram_figure(layer, named_feats), path)
        written.append(path)
    log(f"vggnumpy: wrote {len(written)} pictures of features and Gram matrices to {outdir}")
    return written


def _curve_axes(ax, rows, total_iterations, fontsize):
    """Draw the total and each term (log scale) of `rows` on ax, x fixed to [0, total_iterations], a dot at the end."""
    from matplotlib.ticker import NullLocator
    its = [r["iteration"] for r in rows]
    names = list(dict.fromkeys(k for r in rows for k in r["terms"]))
    for name in names:
        ax.plot(its, [max(r["terms"].get(name, float("nan")), _FLOOR) for r in rows], lw=0.9, label=name)
    total = [max(r["loss"], _FLOOR) for r in rows]
    ax.plot(its, total, color="black", lw=1.6, label="total")
    if rows:
        ax.plot([its[-1]], [total[-1]], "o", color="red", ms=4, zorder=5, clip_on=False)
        ax.set_title(f"iteration {its[-1]}: loss {rows[-1]['loss']:.4g}", fontsize=fontsize, y=1.0)
        ax.legend(fontsize=fontsize - 2, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                  frameon=False, handlelength=1.2, labelspacing=0.3)
    for a, b in zip(rows, rows[1:]):
        if a["scale"] != b["scale"]:
            ax.axvline(b["iteration"] - 0.5, color="grey", ls=":", lw=0.8)
    ax.set_xlim(0, max(1, total_iterations))
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())                          # minor log ticks cost half the time
    ax.tick_params(labelsize=fontsize - 2)
    ax.set_xlabel("iteration", fontsize=fontsize - 1)


def curve_panel(rows, total_iterations, height=256, width=None):
    """The loss curve of trace rows as an (height, width, 3) float32 picture in [0, 1] (Agg, no pyplot)."""
    require()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    width = width or round(_PANEL_ASPECT * height)
    dpi = 100.0 * height / 256                                         # the same layout at any height
    fig = Figure(figsize=((width + 0.5) / dpi, (height + 0.5) / dpi), dpi=dpi, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.13, 0.16, 0.52, 0.74))                         # the legend goes on the right
    _curve_axes(ax, rows, total_iterations, fontsize=8)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())                            # (h', w', 4) uint8
    panel = np.ones((height, width, 3), dtype=np.float32)             # white where Agg's size rounded down
    h, w = min(height, rgba.shape[0]), min(width, rgba.shape[1])
    panel[:h, :w] = rgba[:h, :w, :3].astype(np.float32) / np.float32(255.0)
    return panel


def beside_curve(img, rows, total_iterations, height=256):
    """img (H, W, 3) in [0, 1] resized to `height` tall, with the loss curve of `rows` on its right.

    rows: the trace (steps.RunState.trace) up to the current iteration (the last one gets the dot); the x axis is always
    [0, total_iterations], so the frames of a GIF line up. Returns (height, w + panel width, 3) float32.
    """
    require()
    from ..files.images import resize_to
    img = np.asarray(img, dtype=np.float32)
    h, w = img.shape[:2]
    nw = max(1, round(w * height / h))
    left = img if (h, w) == (height, nw) else resize_to(img, height, nw)   # (height, nw, 3)
    return np.concatenate([left, curve_panel(rows, total_iterations, height)], axis=1)
