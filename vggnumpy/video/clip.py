"""Video: every frame styled in turn, each held to the last by optical flow (Ruder, Dosovitskiy and Brox 2016).

For frame i after the first:
- the flow between the *input* frames i and i-j (OpenCV DIS, both ways) and Ruder et al.'s consistency check give
  per-pixel weights c (0 where the flow cannot be trusted: disocclusions, motion boundaries, out of the frame);
- the output of frame i-j, warped by the flow, is the target of a temporal loss term, weight * sum(c (x - warped)^2)
  / D (terms.TemporalTerm), one per earlier frame j of --temporal-frames (long-term weights: flow.long_term);
- the optimisation starts from the previous output warped, plus the change between the input frames that the
  warp does not explain (pixels that come from outside the frame: the frame's own content), at the full size
  only, for --frame-iterations.
With --temporal-weight 0 each frame is styled on its own from --init, as the first one is (independent frames).

A frame i with no earlier frame at any distance of --temporal-frames (i < the smallest j) is styled as the first one
is, from --init with the whole schedule.

Frames are written one by one as numbered PNGs (into the output folder, or a work folder beside a video output,
which becomes the video at the end). Each PNG carries a hash of the settings and of the bytes of every input file
(the video or each frame file, the style images, the masks, the init image): a rerun of the same command skips the
frames already made, so an interrupted run loses at most the frame in progress, and remakes them all when an input
changed on disk. The outputs that warping reads are those PNGs, so a resumed run makes the same frames as an
uninterrupted one.

Every input is checked before the first frame, and the output folder is made only once all checks passed.
"""
import dataclasses
import hashlib
import json
import os
import sys
import time
from fractions import Fraction
from dataclasses import dataclass, field

import numpy as np

from ..run import pipeline as api
from .. import config
from . import flow, frames as videoio
from ..files import images
from ..style import terms
from ..files.log import stderr
from ..nn import backend as backends
from ..files.paths import check_writable, same_file
from ..weights.file import sha256_file


@dataclass
class FrameResult:
    """One frame of the output: where it is and what it cost (seconds 0 and skipped True when made earlier)."""
    index: int                          # 0-based
    path: str
    seconds: float = 0.0
    iterations: int = 0
    evaluations: int = 0
    loss: float = 0.0
    skipped: bool = False


@dataclass
class VideoResult:
    output: str
    frames: list = field(default_factory=list)       # FrameResult, in order
    interrupted: str = ""
    fps: object = None


@dataclass
class Frame:
    """What pipeline.run needs of a video frame: where to start, and the temporal terms (its start and
    extra_terms)."""
    start: np.ndarray                   # (H, W, 3)
    targets: list                       # [(name, warped (H, W, 3), c (H, W))]
    weight: float

    def terms(self, shape, xp):
        if tuple(shape) != self.start.shape[:2]:
            raise ValueError(f"a video frame runs at its full size {self.start.shape[:2]}, not {tuple(shape)}")
        chw = lambda a: xp.asarray(np.ascontiguousarray(a.transpose(2, 0, 1))[None], dtype=xp.float32)
        return [terms.TemporalTerm(self.weight, chw(w), xp.asarray(c, dtype=xp.float32), name=name)
                for name, w, c in self.targets]


def frame_size(width, height, size):
    """(w, h) of the output frames: the longest side `size`, each side rounded to even (yuv420p needs it)."""
    scale = size / max(width, height)
    return videoio.even_size(max(2, round(width * scale)), max(2, round(height * scale)))


def _digest(item):
    """The sha256 of an input: a file's bytes, or an array's shape, dtype and bytes."""
    if isinstance(item, np.ndarray):
        a = np.ascontiguousarray(item)
        return hashlib.sha256(f"{a.shape} {a.dtype}".encode() + a.tobytes()).hexdigest()
    return sha256_file(os.fspath(item))


def settings_hash(source, styles, o, v, weights, wh, frame_files=None):
    """A hash of everything that decides the frames' pixels (not --frames, --fps or the progress options): the
    options, the inputs' names and the bytes of every input file (the video, or each frame file of a folder:
    frame_files, else the folder's numbered images; the style images, masks, style masks and init image)."""
    source = os.fspath(source)
    if frame_files is None:
        frame_files = videoio._numbered(source) if os.path.isdir(source) else [source]
    opts = {k: val for k, val in dataclasses.asdict(o).items() if k not in ("progress", "print_every")}
    vid = {k: val for k, val in dataclasses.asdict(v).items() if k not in ("frames", "fps")}
    name = lambda s: "array" if isinstance(s, np.ndarray) else os.path.abspath(s)
    contents = dict(input=[(os.path.basename(f), _digest(f)) for f in frame_files],
                    styles=[_digest(s) for s in styles], masks=[_digest(m) for m in o.masks or ()],
                    style_masks=[_digest(m) for m in o.style_masks or ()],
                    init_image=_digest(o.init_image) if o.init_image is not None else None)
    text = json.dumps(dict(input=os.path.abspath(source), styles=[name(s) for s in styles], options=opts,
                           video=vid, weights=weights.description or weights.source, size=list(wh),
                           contents=contents), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def frame_hash(path):
    """The settings hash a frame PNG was made with, or None (not a PNG of ours)."""
    return images.settings_of(path)


NOT_FOR_VIDEO = ("gif", "save_every", "trace", "plot")


def frames_folder(output):
    """Where the numbered PNG frames go: the output itself when it is a folder, else OUT_frames beside the video."""
    return os.path.splitext(output)[0] + "_frames" if videoio.is_video_path(output) else output


def check_video(source, styles, output, o):
    """Refuse, before any work, outputs that cannot be written or would overwrite an input or a file not ours, and
    input files that are missing or not regular files (api.check_job: style images, masks, init image)."""
    for name in NOT_FOR_VIDEO:
        if getattr(o, name):
            raise config.OptionError(f"--{name.replace('_', '-')}: not available for video (every frame is written "
                                     f"as it completes; the output folder's PNGs are the frames)")
    api.check_job(config.Job(None, styles, None, o))     # counts; named pipes and missing files, before any open()
    ext = os.path.splitext(output)[1].lower()
    if ext in images.WRITABLE or ext == ".gif":
        raise config.OptionError(f"{output}: a video output is a video file (.mp4, .mov, .mkv, .avi) or a "
                                 f"folder for numbered PNG frames, not one image")
    if ext and ext not in videoio.VIDEO_EXTS and not os.path.isdir(output):
        raise config.OptionError(f"{output}: vggnumpy video writes {', '.join(videoio.VIDEO_EXTS)} video files, not "
                                 f"'{ext}'; end the output name in one of them, or give a folder name without an "
                                 f"extension (or an existing folder) for numbered PNG frames")
    folder = frames_folder(output)
    for what, path in (("output", output), ("frames folder", folder)):
        if os.path.exists(path) and same_file(path, source):
            raise config.OptionError(f"{path}: the {what} is the input {source}; choose another output")
    if videoio.is_video_path(output):
        check_writable("output video", output)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise config.OptionError(f"{folder}: the frames folder is a file; remove it or choose another output")
    check_writable("frames folder", os.path.join(folder, "x") if os.path.isdir(folder) else folder)
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not (name.startswith("frame_") and name.endswith(".png")):
                continue
            if not os.path.isfile(path):                 # a named pipe would block the read of its settings
                raise config.OptionError(f"{path}: not a regular file, where vggnumpy video writes a frame; remove "
                                         f"it or choose an empty or new folder")
            if frame_hash(path) is None:
                raise config.OptionError(f"{path}: the frames folder holds frames not made by vggnumpy video; "
                                         f"choose an empty or new folder")
    return folder


def check_inputs(src, styles, o, v, weights, wh):
    """Read, before the output folder is made, what the first frame's run reads, through the loaders it uses: the
    style images (api.read_inputs), the init image, the masks and style masks (api.read_control: proportions,
    not empty), at the frames' size, with the first frame as the content. Raises ImageError or OptionError."""
    fo = _frame_options(o, v, True, max(wh))
    content = images.resize_to(src.first.astype(np.float32) / 255.0, wh[1], wh[0])
    job = config.Job(content, styles, None, fo)
    api.check_job(job)
    min_side = api.network(weights, fo, backends.cpu(), threads=1).min_side
    content, style_images, _ = api.read_inputs(job, fo, min_side)
    api.read_control(fo, content, style_images)


STALE = ".vggnumpy-"                    # paths.atomic_write's temporary files


def _remove_stale(folder):
    """Remove our own temporary files (paths.atomic_write's .vggnumpy-*) left in the frames folder by a run that
    was killed while writing a frame; returns their names."""
    gone = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(STALE) and (os.path.islink(path) or os.path.isfile(path)):
            os.remove(path)
            gone.append(name)
    return gone


def _split_options(options):
    """keywords -> (checked Options, checked VideoOptions, loaded Weights or None)."""
    names = {f.name for f in config.fields(config.VideoOptions)}
    v = config.make_video(**{k: options.pop(k) for k in list(options) if k in names})
    weights = options.pop("weights", None)
    loaded = weights if hasattr(weights, "params") else None
    return config.make(weights=None if loaded else weights, **options), v, loaded


def _frame_options(o, v, first, size):
    """The still-image options of one frame: the first (or, without the temporal term, every) frame runs the whole
    schedule; the others one scale, from the warped previous output, for --frame-iterations."""
    o = dataclasses.replace(o, size=size, progress=False)
    if first or not v.temporal_weight:
        return o
    n = sum(o.scale_iterations) if o.scale_iterations is not None else o.iterations
    its = v.frame_iterations if v.frame_iterations is not None else max(1, n // 2)
    return dataclasses.replace(o, scales=1, scale_iterations=None, iterations=its)


def temporal_frame(i, inputs, output_of, v):
    """The Frame of frame i > 0: for each earlier frame j of --temporal-frames, the flow between the input frames
    i and i - j (both ways), the consistency weights (long-term: each pixel held by its nearest reliable frame), and
    output i - j warped; the start is the nearest earlier output warped plus the change of the input frames that the
    warp does not explain (input i less input i - j warped: new detail, light, what the interpolation blurred), the
    frame's content where the warp comes from outside the frame. inputs {index: (H, W, 3)}; output_of(index) ->
    (H, W, 3)."""
    cur = inputs[i]                                                     # (H, W, 3)
    targets, cs, start = [], [], None
    back_to = [j for j in sorted(set(v.temporal_frames)) if j <= i]
    if not back_to:
        raise ValueError(f"frame {i + 1} has no earlier frame at --temporal-frames "
                         f"{','.join(map(str, v.temporal_frames))}; it is styled as the first one")
    for j in back_to:
        back = flow.dis(cur, inputs[i - j], v.flow)                     # (H, W, 2): frame i -> frame i - j
        fwd = flow.dis(inputs[i - j], cur, v.flow)
        cs.append(flow.consistency(back, fwd, v.occlusion, v.motion))  # (H, W)
        warp = flow.warp_cubic if v.warp == "bicubic" else flow.warp
        warped, inside = warp(output_of(i - j), back)                   # (H, W, 3), (H, W)
        targets.append((f"temporal {-j}", warped))
        if start is None:                       # plus what changed in the input beyond the flow's motion
            moved = warped + cur - warp(inputs[i - j], back)[0]
            start = np.clip(np.where(inside[:, :, None], moved, cur), 0, 1).astype(np.float32)
    cs = flow.long_term(cs) if len(cs) > 1 else cs
    return Frame(start, [(name, w, c) for (name, w), c in zip(targets, cs)], v.temporal_weight)


def _already_made(output, key, total):
    """True when the output video exists and was made by these settings with `total` frames."""
    if not (videoio.is_video_path(output) and os.path.isfile(output)):
        return False
    try:
        return videoio.read_metadata(output).get("comment") == f"vggnumpy video settings={key} frames={total}"
    except (images.ImageError, OSError, ValueError):
        return False


class VideoProgress:
    """A tqdm bar over the frames, with an ETA from the frames styled in this run (those made earlier count at
    once), and the last frame's loss and seconds."""

    def __init__(self, total, done):
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=done, unit="frame", desc="video", dynamic_ncols=True, file=sys.stderr)

    def frame(self, res):
        if not res.skipped:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{res.loss:.4g}", s=f"{res.seconds:.1f}", its=res.iterations)

    def close(self):
        self.bar.close()


@dataclass
class _Clip:
    """A video run's fixed parts, for the frame loop."""
    source: object                      # videoio.FrameSource
    styles: tuple
    o: config.Options                   # resolved for the weights
    v: config.VideoOptions
    weights: object
    wh: tuple                           # (w, h) of the output frames
    key: str                            # the settings hash
    folder: str
    total: int


def stylize_video(source, styles, output="out.mp4", *, log=None, stop=None, on_frame=None, **options):
    """Paint every frame of `source` (a video file or a folder of numbered images) in the style of `styles`.

    Every option of a still image (config.Options, as for api.stylize) and of config.VideoOptions is a keyword.
    Frames are written as they complete; a rerun of the same call skips those already made. output: a video file
    (.mp4, ...) or a folder for numbered PNGs. on_frame(FrameResult) after each frame; stop() -> a reason ends the
    run after the frame in progress, which is not written. Returns a VideoResult.
    """
    log = log or stderr
    styles = tuple(styles) if isinstance(styles, (list, tuple)) else (styles,)
    if options.get("model") is not None:
        return _with_model(source, styles, output, log, stop, options)
    o, v, loaded = _split_options(dict(options))
    if not styles:
        raise config.OptionError("give at least one style image, or a style network with --model")
    src = videoio.open_frames(os.fspath(source), fps=Fraction(v.fps).limit_denominator(100000))  # every frame checked
    folder = check_video(os.fspath(source), styles, os.fspath(output), o)
    backends.select(o.device, log=lambda m: None)          # a missing GPU is refused before the weights are read
    w = loaded if loaded is not None else api.resolve_weights(o.weights, o.arch, log)
    o = o.resolved(w.trained)
    wh = frame_size(*src.size, o.size)
    total = min(src.count, v.frames or src.count)
    check_inputs(src, styles, o, v, w, wh)              # styles, masks, init: read as the first frame reads them
    clip = _Clip(src, styles, o, v, w, wh, settings_hash(source, styles, o, v, w, wh, src.files), folder, total)
    if _already_made(output, clip.key, total):
        log(f"vggnumpy: {output} was already made by these settings; nothing to do")
        return VideoResult(os.fspath(output), [], "", src.fps)
    os.makedirs(folder, exist_ok=True)                  # only now: every check passed
    stale = _remove_stale(folder)
    if stale:
        log(f"vggnumpy: removed {len(stale)} temporary file(s) an interrupted run left in {folder}")
    log(f"vggnumpy video: {source}: {total} of {src.count} frames at {src.fps} fps -> {wh[0]}x{wh[1]}; temporal "
        f"weight {v.temporal_weight:g} over frames {','.join(map(str, v.temporal_frames))} back; frames in {folder}"
        + (f"; frames 1 to {min(min(v.temporal_frames), total)} have no earlier frame that far back and are styled as "
           f"the first one" if v.temporal_weight and min(v.temporal_frames) > 1 else ""))
    result = VideoResult(os.fspath(output), fps=src.fps)
    result.interrupted = _frames(clip, result, log, stop, on_frame)
    if result.interrupted:
        made = len(result.frames)
        log(f"vggnumpy: stopped ({result.interrupted}) after {made} of {total} frames; they are in {folder}; run the "
            f"same command again to go on")
    elif videoio.is_video_path(output):
        meta = {"comment": f"vggnumpy video settings={clip.key} frames={total}"}
        videoio.write_video(output, (images.to_uint8(images.load_image(f.path)) for f in result.frames), src.fps,
                            meta)
        _remove_frames(result.frames, folder)
        log(f"vggnumpy: wrote {output} ({total} frames at {src.fps} fps)")
    return result


MODEL_OPTIONS = ("size", "device", "original_colors", "color_transfer", "progress")   # what --model frames use


def _with_model(source, styles, output, log, stop, options):
    """stylize_video with --model: fastclip's forward passes; the optimisation's options are refused."""
    from .fastclip import stylize_video_fast
    names = {f.name for f in config.fields(config.VideoOptions)}
    v = config.make_video(**{k: options.pop(k) for k in list(options) if k in names})
    if styles:
        raise config.OptionError(f"--model {v.model} paints in its own style; give no STYLE images with it "
                                 f"(got {', '.join(map(str, styles))})")
    unused = sorted(k for k in options if k not in MODEL_OPTIONS)
    if unused:
        flags = ", ".join(config.flag(f) for f in config.fields() if f.name in unused) or ", ".join(unused)
        raise config.OptionError(f"{flags}: optimisation option(s) that do not apply to --model; leave them out")
    o = config.make(**options)
    return stylize_video_fast(source, v.model, output, v=v, size=o.size, device=o.device, blend_weight=v.blend,
                              original_colors=o.original_colors, color_transfer=o.color_transfer,
                              progress=o.progress, log=log, stop=stop)


def _remove_frames(frames, folder):
    """The work folder's PNGs, once they are in the video; the folder too when nothing else is in it."""
    for f in frames:
        os.remove(f.path)
    if not os.listdir(folder):
        os.rmdir(folder)


def _frames(clip, result, log, stop, on_frame):
    """Style the frames in order, skipping those already made; returns the stop reason, or ""."""
    paths = [videoio.frame_name(clip.folder, i + 1) for i in range(clip.total)]
    made = [os.path.exists(p) and frame_hash(p) == clip.key for p in paths]
    if any(os.path.exists(p) and not m for p, m in zip(paths, made)):
        log(f"vggnumpy: frames in {clip.folder} made with other settings are made again")
    progress = VideoProgress(clip.total, sum(made)) if clip.o.progress else None
    keep = max(clip.v.temporal_frames)
    inputs, first = {}, True
    output_of = lambda k: images.load_image(paths[k])
    try:
        for i, raw in enumerate(clip.source):
            if i >= clip.total:
                break
            inputs[i] = images.resize_to(raw.astype(np.float32) / 255.0, clip.wh[1], clip.wh[0])
            inputs.pop(i - keep - 1, None)
            if made[i]:
                res = FrameResult(i, paths[i], skipped=True)
            else:
                say = (progress.bar.write if progress else log) if first else (lambda m: None)
                res = _style_frame(clip, i, inputs, output_of, paths[i], say, stop)
                first = False
                if res is None:
                    return stop()
            result.frames.append(res)
            for listener in ([progress] if progress else []):
                listener.frame(res)
            if on_frame is not None:
                on_frame(res)
    finally:
        if progress:
            progress.close()
    return ""


def _style_frame(clip, i, inputs, output_of, path, log, stop):
    """Style frame i and write it; None when the run was stopped before it finished (nothing is written)."""
    t0 = time.perf_counter()
    temporal = i >= min(clip.v.temporal_frames) and clip.v.temporal_weight > 0     # an earlier frame to hold to
    o = _frame_options(clip.o, clip.v, not temporal, max(clip.wh))
    frame = temporal_frame(i, inputs, output_of, clip.v) if temporal else None
    job = config.Job(inputs[i], clip.styles, None, o)
    extra = dict(extra_terms=frame.terms, start=frame.start) if frame is not None else {}
    res = api.run(job, weights=clip.weights, log=log, stop=stop, **extra)
    if res.interrupted:
        return None
    seconds = time.perf_counter() - t0
    meta = dict(settings=clip.key, frame=i + 1, software="vggnumpy video", iterations=res.iterations,
                evaluations=res.evaluations, loss=f"{res.loss:.6g}", seconds=f"{seconds:.2f}")
    images.save_image(path, res.image, meta)
    return FrameResult(i, path, seconds, res.iterations, res.evaluations, res.loss)
