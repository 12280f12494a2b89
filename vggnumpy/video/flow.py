"""Optical flow for video: warping, Ruder et al.'s consistency check, long-term weights, DIS flow, the warping error.

A flow is (H, W, 2) float32: flow[..., 0] = dx (columns), flow[..., 1] = dy (rows). The flow from image a to
image b says, for each pixel p of a, where it is in b: a(p) ~ b(p + flow(p)). So warp(b, flow(a -> b)) ~ a:
warping brings b onto a's grid.
"""
import numpy as np

from ..files.images import LUMA


def warp(img, flow):
    """img (H, W, C), flow (H, W, 2) -> (out (H, W, C) float32, inside (H, W) bool): out(p) = img(p + flow(p)),
    bilinear. Sample points outside the image take the nearest edge's value and are not `inside`."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)                     # (H, W) each
    x, y = xs + flow[..., 0], ys + flow[..., 1]
    eps = 1e-3
    inside = (x >= -eps) & (x <= w - 1 + eps) & (y >= -eps) & (y <= h - 1 + eps)
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.minimum(np.floor(x).astype(np.int64), w - 1), np.minimum(np.floor(y).astype(np.int64), h - 1)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]                   # (H, W, 1) weights of the far neighbours
    img = np.asarray(img, dtype=np.float32)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32), inside    # integer points: exactly the pixel


def _keys(t, a=-0.5):
    """Keys' cubic convolution kernel at distances t (>= 0): 1 at 0, 0 at 1 and 2, so whole pixels stay exact."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0)).astype(np.float32)


def warp_cubic(img, flow):
    """warp with Keys' bicubic interpolation (16 neighbours, a = -0.5), clipped to [0, 1]: a sub-pixel shift blurs
    much less than bilinear, so a styled frame warped from frame to frame keeps its brush strokes."""
    h, w = img.shape[:2]
    _, inside = warp(img[:, :, :1], flow)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x = np.clip(xs + flow[..., 0], 0, w - 1)
    y = np.clip(ys + flow[..., 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    img = np.asarray(img, dtype=np.float32)
    out = np.zeros(img.shape, np.float32)
    for dy in (-1, 0, 1, 2):
        yi, wy = np.clip(y0 + dy, 0, h - 1), _keys(y - (y0 + dy))[..., None]
        for dx in (-1, 0, 1, 2):
            xi, wx = np.clip(x0 + dx, 0, w - 1), _keys(x - (x0 + dx))[..., None]
            out += wy * wx * img[yi, xi]
    return np.clip(out, 0, 1), inside


def warp_reference(img, flow):
    """The loop version of warp (tests only): each output pixel from its four neighbours, one at a time."""
    h, w, c = img.shape
    out = np.zeros((h, w, c), np.float32)
    inside = np.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            x, y = j + float(flow[i, j, 0]), i + float(flow[i, j, 1])
            inside[i, j] = -1e-3 <= x <= w - 1 + 1e-3 and -1e-3 <= y <= h - 1 + 1e-3
            x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
            ax, ay = x - x0, y - y0
            out[i, j] = ((1 - ay) * ((1 - ax) * img[y0, x0] + ax * img[y0, x1])
                         + ay * ((1 - ax) * img[y1, x0] + ax * img[y1, x1]))
    return out, inside


def consistency(flow_back, flow_fwd, occlusion=(0.01, 0.5), motion=(0.01, 0.002)):
    """Per-pixel weights c (H, W) float32 in {0, 1} for frame i: 1 where the flow can be trusted.

    flow_back (H, W, 2): frame i -> frame i-1; flow_fwd: frame i-1 -> frame i. With w = flow_back(p) and w' =
    flow_fwd(p + w), as in Ruder, Dosovitskiy and Brox 2016 (their consistencyChecker), c = 0 where
    - |w + w'|^2 >= occlusion[0] (|w|^2 + |w'|^2) + occlusion[1]: disoccluded (the two flows disagree);
    - |grad u|^2 + |grad v|^2 > motion[0] |w|^2 + motion[1]: a motion boundary (u, v: the components of w,
      differentiated by central differences, one-sided at the borders);
    - p + w is outside the frame.
    """
    fwd_at, inside = warp(flow_fwd, flow_back)                          # (H, W, 2): w' sampled at p + w
    s = flow_back + fwd_at
    ww = np.sum(flow_back ** 2, axis=2)
    disoccluded = np.sum(s ** 2, axis=2) >= occlusion[0] * (ww + np.sum(fwd_at ** 2, axis=2)) + occlusion[1]
    grads = sum(g ** 2 for k in range(2) for g in np.gradient(flow_back[..., k]))
    boundary = grads > motion[0] * ww + motion[1]
    return (inside & ~disoccluded & ~boundary).astype(np.float32)


def long_term(cs):
    """Ruder et al.'s long-term weights: cs (H, W) for the earlier frames j1 < j2 < ... -> each pixel held only by
    its nearest reliable earlier frame: c_long_j = max(c_j - sum of c_k over k < j, 0)."""
    out, seen = [], np.zeros_like(cs[0])
    for c in cs:
        out.append(np.maximum(c - seen, 0).astype(np.float32))
        seen = seen + c
    return out


def grey(img):
    """(H, W, 3) in [0, 1] -> (H, W) uint8 luminance (ITU-R BT.601)."""
    y = img[..., 0] * LUMA[0] + img[..., 1] * LUMA[1] + img[..., 2] * LUMA[2]
    return (np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)


PRESETS = ("ultrafast", "fast", "medium")


def dis(a, b, preset="medium"):
    """Optical flow (H, W, 2) float32 from image a to image b (H, W, 3) in [0, 1], by OpenCV's DIS on 8-bit
    luminance: a(p) ~ b(p + flow(p)), so warp(b, dis(a, b)) ~ a."""
    try:
        import cv2
    except ImportError:
        raise ImportError("optical flow needs OpenCV: pip install 'vggnumpy[video]'") from None
    if preset not in PRESETS:
        raise ValueError(f"flow preset must be one of {', '.join(PRESETS)}, not {preset!r}")
    code = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}")
    return cv2.DISOpticalFlow_create(code).calc(grey(a), grey(b), None).astype(np.float32)


def warping_error(prev_out, out, flow, mask):
    """Lai et al. 2018's warping error of one pair of frames: sum_p M(p) |prev_out(p) - warp(out)(p)|^2 / sum_p M(p).

    flow (H, W, 2): input frame t-1 -> input frame t, so warping out (frame t) by it brings it onto frame t-1's
    grid; mask M (H, W): where that flow is reliable; images (H, W, 3) in [0, 1]. A benchmark averages it over t.
    """
    m = np.asarray(mask, dtype=np.float64)
    if m.sum() <= 0:
        raise ValueError("warping error: the mask is empty (no pixel with a reliable flow)")
    d = np.asarray(prev_out, np.float64) - warp(out, flow)[0]
    return float(np.sum(m * np.sum(d * d, axis=2)) / m.sum())
