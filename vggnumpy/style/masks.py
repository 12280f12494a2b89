"""Spatial control (Gatys et al. 2017): region masks read from files and brought down to each layer's grid as guides.

A mask is an (H, W) float32 image in [0, 1] (white = the region). A guided Gram matrix weights each position of
a layer by the region's guide at that layer (losses.gram_stats with a mask). Three rules bring a mask to a layer:

- simple: the mask resized to the layer's grid by area averaging (Pillow's box filter): complementary masks stay
  complementary at every layer, and no region that has a pixel is ever empty;
- inside: a unit's guide is the smallest mask value in its receptive field (the image's padding left out), so
  only units that see nothing but the region belong to it (leongatys/NeuralImageSynthesis, get_fm_guides);
- all: the largest value instead: every unit that sees any of the region belongs to it.
"""
import os

import numpy as np

from ..nn import arch as archmod
from ..files.images import LUMA, ImageError

RULES = ("simple", "inside", "all")


def load_mask(path, shape, what="mask"):
    """A mask file -> (h, w) float32 in [0, 1] at `shape` (h, w): the image's luminance (white = 1, black = 0,
    grey between), or, for an image with transparent pixels, its opacity (what is painted is the region).

    Refuses a mask whose aspect ratio differs from the image it masks by more than 2%, and an empty one."""
    from ..files.images import load_image
    rgb = load_image(os.fspath(path), None, 1, what)                   # (H, W, 3); checks the file
    mh, mw = rgb.shape[:2]
    h, w = shape
    if abs(mw / mh - w / h) > 0.02 * (w / h):
        raise ImageError(f"{path}: {what} is {mw}x{mh}, but the image it masks is {w}x{h} (another aspect ratio); "
                         f"draw the mask over that image at its size or proportions")
    alpha = _opacity(os.fspath(path))
    grey = alpha if alpha is not None else rgb @ np.array(LUMA, dtype=np.float32)   # (H, W)
    m = resize_mask(grey, h, w)
    if float(m.max()) <= 1e-3:
        raise ImageError(f"{path}: {what} is empty (no pixel is lighter than black), so its region is empty; "
                         f"paint the region white")
    return m


def _opacity(path):
    """(H, W) float32 opacity in [0, 1] of an image with some transparent pixels, else None."""
    from PIL import Image, ImageOps
    with Image.open(path) as im:
        if "A" not in im.getbands() and "transparency" not in im.info:
            return None
        a = np.asarray(ImageOps.exif_transpose(im).convert("RGBA"), dtype=np.float32)[:, :, 3] / 255.0
    return a if a.min() < 1 else None


def resize_mask(m, h, w):
    """(H, W) -> (h, w) by area averaging (box filter): every region that has a pixel keeps some weight."""
    from PIL import Image
    if m.shape == (h, w):
        return m.astype(np.float32)
    out = np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize((w, h), Image.BOX), dtype=np.float32)
    return np.clip(out, 0, 1)


def _window(a, k, stride, pad, ceil, reduce):
    """2-D min or max over k x k windows (a conv's or a pool's), the padding left out of every window."""
    h, w = a.shape
    ho = archmod.output_size(h, k, stride, pad, ceil)
    wo = archmod.output_size(w, k, stride, pad, ceil)
    if ho <= 0 or wo <= 0:                                             # the layer has no unit at this size
        return np.zeros((max(ho, 0), max(wo, 0)), dtype=np.float32)
    fill = np.inf if reduce is np.min else -np.inf
    span_h, span_w = (ho - 1) * stride + k, (wo - 1) * stride + k     # ceil mode may reach past the padding
    p = np.full((max(span_h, h + 2 * pad), max(span_w, w + 2 * pad)), fill, dtype=np.float32)
    p[pad:pad + h, pad:pad + w] = a
    win = np.lib.stride_tricks.sliding_window_view(p, (k, k))[::stride, ::stride][:ho, :wo]   # (ho, wo, k, k)
    return reduce(win, axis=(2, 3)).astype(np.float32)


def layer_guides(mask, arch, layers, rule="simple"):
    """mask (H, W) -> {layer: (h, w) guide on that layer's grid} for an input of H x W (the rule: module doc)."""
    if rule not in RULES:
        raise ValueError(f"mask rule must be one of {', '.join(RULES)}, not {rule!r}")
    shapes = archmod.feature_shapes(arch, *mask.shape)
    if rule == "simple":
        return {layer: resize_mask(mask, *shapes[layer][1:]) for layer in layers}
    reduce = np.min if rule == "inside" else np.max
    out, g, want = {}, mask.astype(np.float32), set(layers)
    for name, kind, p in archmod.get_table(arch):
        if kind in ("conv", "pool"):
            g = _window(g, p["k"], p["stride"], p.get("pad", 0), kind == "pool" and p["ceil"], reduce)
        if name in want:
            out[name] = g
        if len(out) == len(want):
            break
    return out


def guide_reference(mask, arch, layer, rule):
    """The guide of `layer` by its definition, unit by unit: the min (inside) or max (all) of the mask over the
    pixels of the unit's receptive field inside the image. A slow loop for the tests."""
    from ..nn.arch import receptive
    j, s, r = receptive(arch, layer)
    _, h, w = archmod.feature_shapes(arch, *mask.shape)[layer]
    reduce = min if rule == "inside" else max
    out = np.zeros((h, w), dtype=np.float32)
    for u in range(h):
        for v in range(w):
            y0, x0 = max(0, s + j * u), max(0, s + j * v)
            y1, x1 = min(mask.shape[0], s + j * u + r), min(mask.shape[1], s + j * v + r)
            out[u, v] = reduce(mask[y0:y1, x0:x1].ravel())
    return out


class Control:
    """The masks of one run at the output's size: regions (one (H, W) per style image, or None), style_masks (one
    (h, w) or None per style image, or None), the rule, and the files they came from (for error messages)."""

    def __init__(self, regions, style_masks, rule, region_files=(), style_files=()):
        self.regions, self.style_masks, self.rule = regions, style_masks, rule
        self.region_files, self.style_files = tuple(region_files), tuple(style_files or ())

    @classmethod
    def read(cls, files, style_files, rule, shape, style_shapes):
        """Read --mask files at the output's shape and --style-image-mask files at each style's shape."""
        regions = [load_mask(f, shape, "mask") for f in files] if files else None
        style_masks = ([load_mask(f, s, "style image mask") for f, s in zip(style_files, style_shapes)]
                       if style_files else None)
        return cls(regions, style_masks, rule, files or (), style_files or ())

    def at(self, shape, style_shapes):
        """(regions, style_masks) resized to a scale's content shape (h, w) and its styles' shapes."""
        regions = [resize_mask(m, *shape) for m in self.regions] if self.regions else None
        style = ([resize_mask(m, *s) for m, s in zip(self.style_masks, style_shapes)] if self.style_masks
                 else None)
        return regions, style

    def empty_message(self, region, style_index, layer, side):
        """The error for a region with no unit at `layer` (objective.EmptyRegion), naming its file."""
        path = self.region_files[region] if region is not None else self.style_files[style_index]
        what = "--mask" if region is not None else "--style-image-mask"
        return (f"{path}: {what}: the region has no unit of {layer} at {side} px under --mask-rule {self.rule} "
                f"(it is too small for that layer's receptive field); use --mask-rule simple or all, or a larger "
                f"region")
