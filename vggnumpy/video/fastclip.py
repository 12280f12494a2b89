"""Video with a style network (`vggnumpy video INPUT --model MODEL`): each frame painted in one forward pass, and,
against the flicker of independently painted frames, blended with the previous output warped by the optical flow
where Ruder et al.'s consistency check trusts the flow:

    out_t = (1 - a c) styled_t + a c warp(out_{t-1}, flow t -> t-1),   c in {0, 1} per pixel, a = --blend

The flow and the check are those of the optimisation path (flow.py), on the input frames. --blend 0: independent
frames. The frames are painted quickly, so nothing is resumed: the output is written once, at the end.
"""
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..feedforward import apply, fast as fastmod
from ..files import images
from ..files.log import stderr
from . import flow, frames as videoio


@dataclass
class FastVideoResult:
    output: str
    frames: int = 0
    seconds: float = 0.0                      # painting, flow and blending, reading and writing excluded
    interrupted: str = ""
    fps: Fraction = Fraction(24)
    per_frame: list = field(default_factory=list)


def blend(styled, prev_out, prev_in, cur_in, a, v):
    """Frame t's output: styled_t blended with out_{t-1} warped onto frame t where the flow is consistent."""
    back = flow.dis(cur_in, prev_in, v.flow)                             # frame t -> t-1
    fwd = flow.dis(prev_in, cur_in, v.flow)                              # frame t-1 -> t
    c = flow.consistency(back, fwd, v.occlusion, v.motion)               # (H, W)
    warped, _ = (flow.warp_cubic if v.warp == "bicubic" else flow.warp)(prev_out, back)
    k = (a * c)[..., None].astype(np.float32)
    return np.clip((1 - k) * styled + k * warped, 0, 1).astype(np.float32)


MARK = "vggnumpy video --model"      # the software tag of the frames this module writes


def check(source, output, model):
    """Refuse, before any work: an output that is neither a video nor a folder name, that would overwrite the input
    or the model, or a folder holding frames that this command did not write."""
    out = os.fspath(output)
    ext = os.path.splitext(out)[1].lower()
    if not videoio.is_video_path(out) and ext and not os.path.isdir(out):
        raise images.ImageError(f"{out}: vggnumpy video writes {', '.join(videoio.VIDEO_EXTS)} video files, or "
                                f"numbered PNG frames into a folder (a name without an extension)")
    from ..files.paths import check_outputs
    check_outputs([("output", out)], [("input", os.fspath(source)), ("model", model)])
    if os.path.isdir(out):
        from PIL import Image
        for name in sorted(os.listdir(out)):
            path = os.path.join(out, name)
            if name.startswith("frame_") and name.endswith(".png"):
                try:
                    with Image.open(path) as im:
                        ours = im.info.get("vggnumpy:software") == MARK
                except OSError:
                    ours = False
                if not ours:
                    raise images.ImageError(f"{path}: the folder holds frames not written by {MARK}; choose an "
                                            f"empty or new folder")


def stylize_video_fast(source, model, output="out.mp4", *, v, size=512, device="cpu", blend_weight=0.5,
                       original_colors=False, color_transfer=None, progress=True, log=None, stop=None):
    """Paint every frame of `source` with style network `model` (a name or a file); v: config.VideoOptions
    (flow preset, thresholds, warp, fps, frames). Writes `output` (a video, or numbered PNGs in a folder)."""
    log = log or stderr
    src = videoio.open_frames(os.fspath(source), fps=Fraction(v.fps).limit_denominator(100000))
    net, m = fastmod.load_network(model, device, log)
    check(source, output, m.path)
    total = min(src.count, v.frames or src.count)
    wh = videoio.even_size(*_fit(src.size, size))
    bar = _bar(total) if progress else None
    res, outs, prev = FastVideoResult(os.fspath(output), fps=src.fps), [], None
    try:
        for i, raw in enumerate(src):
            if i >= total:
                break
            t0 = time.perf_counter()
            cur = images.resize_to(raw.astype(np.float32) / 255.0, wh[1], wh[0])
            styled = fastmod.colours(apply.stylize_array(net, cur), cur, original_colors, color_transfer)
            if prev is not None and blend_weight > 0:
                styled = blend(styled, outs[-1], prev, cur, blend_weight, v)
            prev = cur
            outs.append(styled)
            res.per_frame.append(time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
            res.interrupted = stop() if stop is not None else ""
            if res.interrupted:
                break
    finally:
        if bar is not None:
            bar.close()
    res.frames, res.seconds = len(outs), float(sum(res.per_frame))
    if res.interrupted:
        log(f"vggnumpy video: stopped ({res.interrupted}) after {len(outs)} of {total} frames; nothing written")
        return res
    _write(output, outs, src.fps, m, res.per_frame)
    log(f"vggnumpy video: painted {len(outs)} frames ({wh[0]}x{wh[1]}) with {m.info.get('style', model)} in "
        f"{res.seconds:.1f} s (blend {blend_weight:g}); wrote {output}")
    return res


def _fit(size_wh, size):
    w, h = size_wh
    s = size / max(w, h)
    return max(8, round(w * s)), max(8, round(h * s))


def _write(output, outs, fps, m, seconds):
    meta = {"comment": f"vggnumpy video --model {m.info.get('style', '')}"}
    if videoio.is_video_path(output):
        videoio.write_video(output, (images.to_uint8(o) for o in outs), fps, meta)
        return
    os.makedirs(output, exist_ok=True)
    for i, o in enumerate(outs):
        images.save_image(videoio.frame_name(output, i + 1), o, dict(software=MARK, frame=i + 1, iterations=0,
                                                                     seconds=f"{seconds[i]:.4f}"))


def _bar(total):
    import sys
    from tqdm import tqdm
    return tqdm(total=total, unit="frame", desc="video", dynamic_ncols=True, file=sys.stderr)
