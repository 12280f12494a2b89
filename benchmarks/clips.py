"""Test clips made by the code: a texture translated by known steps, and a camera pan and zoom over a photo.

    python benchmarks/clips.py pan OUT.mp4 [--image PATH] [--frames 24] [--size 256]
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
TUBINGEN = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "images", "content", "tubingen.jpg")


def _smooth(a, passes=3):
    """A few 3x3 box filters (with wrap-around), so that optical flow has gradients to follow."""
    for _ in range(passes):
        a = sum(np.roll(np.roll(a, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    return a


def shifted_texture(h, w, steps, seed=0):
    """Frames (h, w, 3) uint8 of a random texture moving by known integer steps [(dx, dy), ...] between frames:
    the content moves right by dx and down by dy, frame_k(y, x) = frame_{k-1}(y - dy, x - dx), new content entering
    at the edges (the frames are windows of a larger texture)."""
    pos = np.cumsum([(0, 0)] + list(steps), axis=0)                    # (frames, 2) cumulative (dx, dy)
    pad = int(np.abs(pos).max()) + 1
    big = _smooth(np.random.default_rng(seed).random((h + 2 * pad, w + 2 * pad, 3)))
    big = (255 * (big - big.min()) / (big.max() - big.min())).round().astype(np.uint8)
    return [big[pad - dy:pad - dy + h, pad - dx:pad - dx + w].copy() for dx, dy in pos]


def pan_zoom(image_path, frames=24, size=256, pan=0.25, zoom=1.15):
    """Frames (h, w, 3) uint8 of a camera panning right by `pan` of the photo's width while zooming in by `zoom`
    over the clip; each window is resampled (bicubic, sub-pixel) to longest side `size`, both sides even."""
    with Image.open(image_path) as im:
        photo = im.convert("RGB")
    W, H = photo.size
    win_w0, win_h0 = W * (1 - pan), H * (1 - pan)                      # the first window, at the photo's aspect
    scale = size / max(win_w0, win_h0)
    out_w, out_h = int(round(win_w0 * scale)) // 2 * 2, int(round(win_h0 * scale)) // 2 * 2
    clip = []
    for k in range(frames):
        t = k / max(1, frames - 1)
        z = zoom ** t
        ww, wh = win_w0 / z, win_h0 / z
        cx, cy = win_w0 / 2 + t * pan * W, H / 2
        box = (cx - ww / 2, cy - wh / 2, cx + ww / 2, cy + wh / 2)
        clip.append(np.asarray(photo.transform((out_w, out_h), Image.EXTENT, box, Image.BICUBIC)))
    return clip


def write_clip(path, frames, fps=24):
    """A video file (by extension) or a folder of numbered PNGs."""
    from vggnumpy.video import frames as videoio
    if videoio.is_video_path(path):
        videoio.write_video(path, frames, fps)
        return
    os.makedirs(path, exist_ok=True)
    for k, f in enumerate(frames):
        Image.fromarray(f).save(videoio.frame_name(path, k + 1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["pan"])
    p.add_argument("output")
    p.add_argument("--image", default=TUBINGEN)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=256)
    a = p.parse_args(argv)
    write_clip(a.output, pan_zoom(a.image, a.frames, a.size))
    print(f"wrote {a.output}: {a.frames} frames of a pan and zoom over {a.image}")


if __name__ == "__main__":
    main()
