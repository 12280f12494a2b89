"""Temporal consistency of `vggnumpy video`: warping error, style match, content SSIM and seconds per frame, against
independent frames (--temporal-weight 0) on the same clip.

    pip install -e ".[bench,video]"
    python benchmarks/video.py                                 # the 24-frame pan over tubingen.jpg at 256 px
    python benchmarks/video.py --frames 8 -- --temporal-weight 3e4     # options after -- go to both runs
    python benchmarks/video.py --model starry_night           # a style network: --blend 0.5 against --blend 0

Warping error (Lai et al. 2018, "Learning Blind Video Temporal Consistency"): E_warp = mean over t of
sum_p M(p) |O_{t-1}(p) - warp(O_t)(p)|^2 / sum_p M(p), with the flow from input frame t-1 to input frame t (OpenCV
DIS, medium) and M Ruder et al.'s consistency check of that flow, both on the *input* frames; pixels in [0, 1].
Style match and content SSIM come from benchmarks/quality.py's judge, per frame, against that frame's input.
Seconds per frame come from each frame's PNG (the time to style it, flow included).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import clips                                                  # noqa: E402
from vggnumpy.video import flow, frames as videoio
from vggnumpy.files import images                    # noqa: E402

STYLE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "images", "style", "starry_night.jpg")


def style_clip(clip, style, out, extra):
    """`vggnumpy video` in a fresh process, as a user runs it (no style image with --model); returns wall
    seconds."""
    cmd = [sys.executable, "-m", "vggnumpy", "video", clip, *([] if "--model" in extra else [style]), "-o", out,
           "--no-progress", *extra]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def warping_errors(inputs, outputs, preset="medium"):
    """E_warp of each consecutive pair (t-1, t): inputs and outputs lists of (H, W, 3) float in [0, 1]."""
    errs = []
    for t in range(1, len(inputs)):
        fwd = flow.dis(inputs[t - 1], inputs[t], preset)               # frame t-1 -> frame t
        bwd = flow.dis(inputs[t], inputs[t - 1], preset)
        mask = flow.consistency(fwd, bwd)                               # on frame t-1's grid
        errs.append(flow.warping_error(outputs[t - 1], outputs[t], fwd, mask))
    return errs


def frame_seconds(path):
    with Image.open(path) as im:
        return float(im.text["vggnumpy:seconds"]), int(im.text["vggnumpy:iterations"])


def measure(name, folder, inputs, input_paths, style, judge):
    """One row: E_warp, style match, SSIM, seconds of the first frame and of the others."""
    paths = [videoio.frame_name(folder, i + 1) for i in range(len(inputs))]
    outputs = [images.load_image(p) for p in paths]
    scores = [judge.score(p, c, style) for p, c in zip(paths, input_paths)]
    secs = [frame_seconds(p) for p in paths]
    return dict(name=name, ewarp=float(np.mean(warping_errors(inputs, outputs))),
                style=float(np.mean([s for s, _ in scores])), ssim=float(np.mean([q for _, q in scores])),
                first=secs[0][0], rest=float(np.mean([s for s, _ in secs[1:]])),
                its=f"{secs[0][1]} / {secs[1][1] if len(secs) > 1 else '-'}")


def table(rows):
    base = rows[-1]
    out = ["| run | E_warp | E_warp / independent | style match | style / independent | content SSIM | s first frame "
           "| s per later frame | later / first | iterations first / later |", "|---" * 10 + "|"]
    for r in rows:
        out.append(f"| {r['name']} | {r['ewarp']:.5f} | {r['ewarp'] / base['ewarp']:.2f} | {r['style']:.3f} | "
                   f"{r['style'] / base['style']:.2f} | {r['ssim']:.3f} | {r['first']:.1f} | {r['rest']:.1f} | "
                   f"{r['rest'] / r['first']:.2f} | {r['its']} |")
    return "\n".join(out)


def model_style(model):
    """The painting a style network was trained on (its recorded file name, in ../shared/images/style/), so that
    its frames are judged against their own painting; SystemExit naming --style when it is not there."""
    from vggnumpy.feedforward import model as modelfile
    from vggnumpy.weights.hdf5 import WeightsError
    try:
        name = modelfile.load(modelfile.resolve(model)).info["style"]
    except (WeightsError, OSError) as e:
        raise SystemExit(f"--model: {e}") from None
    path = os.path.join(os.path.dirname(STYLE), name)
    if not os.path.exists(path):
        raise SystemExit(f"--model {model}: it was trained on {name}, which is not in {os.path.dirname(STYLE)}; "
                         f"give that painting with --style")
    return path


def painting(style, model):
    """The painting to style with and judge against: --style, else the network's own, else Starry Night."""
    return style or (model_style(model) if model else STYLE)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--style", help="the painting to style with and judge against (default: starry_night.jpg; with "
                   "--model, the painting the network was trained on, from ../shared/images/style/)")
    p.add_argument("--image", default=clips.TUBINGEN)
    p.add_argument("--out", help="keep the clip and the styled frames here (default: a temporary folder)")
    p.add_argument("--model", help="a style network (vggnumpy video --model): compare its flow-guided blend with "
                   "its independent frames (--blend 0)")
    p.add_argument("extra", nargs="*", help="options for both runs, after --")
    a = p.parse_args(argv)
    a.style = painting(a.style, a.model)
    from quality import Judge
    work = a.out or tempfile.mkdtemp(prefix="vggnumpy-video-")
    os.makedirs(work, exist_ok=True)
    frames = clips.pan_zoom(a.image, a.frames, a.size)
    clip = os.path.join(work, "pan.mp4")
    clips.write_clip(clip, frames)
    decoded = list(videoio.open_frames(clip))                      # what the runs read (H.264, crf 18)
    input_dir = os.path.join(work, "input")
    clips.write_clip(input_dir, decoded)
    inputs = [f.astype(np.float32) / 255 for f in decoded]
    input_paths = [videoio.frame_name(input_dir, i + 1) for i in range(len(decoded))]
    runs = [("ours (temporal)", a.extra), ("independent frames", a.extra + ["--temporal-weight", "0"])]
    if a.model:
        net = ["--model", a.model, *a.extra]
        runs = [("network, flow-guided blend", net), ("network, independent frames", net + ["--blend", "0"])]
    judge, rows = Judge(), []
    for k, (name, extra) in enumerate(runs):
        folder = os.path.join(work, "ours" if k == 0 else "independent")
        wall = style_clip(clip, a.style, folder, ["-s", str(a.size), *extra])
        rows.append(measure(name, folder, inputs, input_paths, a.style, judge))
        print(f"{name}: {wall:.1f} s in all (the whole command)", flush=True)
    print(f"clip: {a.frames} frames of a pan and zoom over {os.path.basename(a.image)} at {a.size} px; style "
          f"{os.path.basename(a.style)}; options {' '.join(a.extra) or '(defaults)'}; frames in {work}")
    print(table(rows))


if __name__ == "__main__":
    main()
