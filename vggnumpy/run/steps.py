"""The run as a stream of steps: stream() optimises each scale of the pyramid in turn and yields what happens.

It yields a ScaleStarted when a scale begins, the optimiser's Step after each accepted iteration, and Finished
once at the end. It keeps its own state in a RunState that listeners read but never write: where the run is,
the best iterate of the scale (the next scale starts from it, and the result is it), and the trace of every
iteration. What stays fixed through a run (options, backend, network, images, masks, tile) is a Setup.
"""
from dataclasses import dataclass, field

import numpy as np

from .. import config, optim
from ..files import images
from ..nn.backend import to_numpy


@dataclass
class Setup:
    """What a run holds fixed from its first scale to its last: built once by pipeline.run, read by each scale."""
    options: object                 # config.Options, resolved for the weights
    backend: object                 # nn.backend.Backend
    net: object                     # nn.network.Network
    content_layers: dict            # content layer -> its share of the content loss
    style_layers: dict              # style layer -> its share of the style loss
    min_side: int                   # the smallest input side the network takes for these layers
    photo: np.ndarray = None        # (H, W, 3) the content image as read (whose colours --original-colors keeps)
    content: np.ndarray = None      # (H, W, 3) the image the content loss reads (after --color-transfer)
    styles: list = None             # [(h, w, 3)] the images the style loss reads
    init: np.ndarray = None         # (h, w, 3) --init-image, the palette start (at the content's size), or None
    control: object = None          # style.masks.Control, or None
    tile: object = None             # the memory plan's tile side, or None: the whole image
    extra_terms: object = None      # ((h, w), xp) -> more loss terms at a scale (a video frame's temporal terms)
    start: np.ndarray = None        # (H, W, 3): where the first scale starts instead of --init (a video frame)


@dataclass
class Best:
    """The iterate to keep at a scale: the one with the lowest loss (keep-best), or the last."""
    keep_best: bool = True
    x: object = None                # flat (3*h*w,) on the optimiser's device
    loss: float = np.inf
    parts: dict = field(default_factory=dict)

    def fold(self, step):
        if not self.keep_best or step.loss <= self.loss:
            self.x, self.loss, self.parts = step.x.copy(), step.loss, step.parts


@dataclass
class RunState:
    """Where a run is. stream() alone writes it; listeners read it (run.base + step.iteration is the iteration)."""
    total: int                      # iterations over all scales
    content: np.ndarray             # (H, W, 3) the content at the output's size
    original_colors: bool
    clock: object                   # () -> seconds since the run started
    scale_index: int = 0
    base: int = 0                   # iterations of the scales before this one
    shape: tuple = (3, 1, 1)        # (3, h, w) of the iterate at this scale
    finished_evaluations: int = 0   # evaluations of the scales before this one
    objective: object = None        # this scale's style.objective.Objective
    best: Best = field(default_factory=Best)
    trace: list = field(default_factory=list)    # per iteration: loss, terms, seconds, evaluations

    def evaluations(self):
        """Objective evaluations so far, over all scales."""
        return self.finished_evaluations + (self.objective.evaluations if self.objective is not None else 0)

    def host_image(self, x):
        """A flat (3*h*w,) iterate on any device -> (h, w, 3) float32 on the host, clipped to [0, 1]."""
        return np.clip(to_numpy(x).reshape(self.shape).transpose(1, 2, 0), 0, 1).astype(np.float32)

    def finish_image(self, img):
        """(h, w, 3) iterate -> the image to show: clipped, with the content's colours when asked."""
        img = np.clip(img, 0, 1).astype(np.float32)
        return images.original_colors(img, self.content) if self.original_colors else img

    def record(self, step):
        """Fold an accepted step into the state: the best iterate, and a row of the trace."""
        self.best.fold(step)
        self.trace.append(dict(iteration=self.base + step.iteration, scale=self.scale_index,
                               size=list(self.shape[1:]), loss=step.loss, terms=dict(step.parts),
                               seconds=self.clock(), evaluations=self.evaluations()))


@dataclass
class ScaleStarted:
    index: int                      # the scale's place in the pyramid
    shape: tuple                    # (3, h, w)


@dataclass
class Finished:
    image: np.ndarray               # (H, W, 3) the kept iterate, at the output's size
    loss: float
    parts: dict
    interrupted: str                # why the run stopped early ("SIGINT", "SIGTERM"), else ""


class Stopped(Exception):
    """Raised by an evaluation asked for after stop() gave a reason; ends the scale's optimiser."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def stream(setup, state, levels, stop=None):
    """Optimise every level of the pyramid (schedule.Level) in turn, yielding ScaleStarted, each Step and Finished.

    stop() -> a reason ("SIGINT") ends the run before the next evaluation, keeping the best iterate so far."""
    stop = stop or (lambda: "")
    rng = np.random.default_rng(setup.options.seed)
    prev, loss, parts, reason = None, 0.0, {}, ""
    for k, level in enumerate(levels):
        obj, content = objective(setup, level)
        x0 = start(level, content, prev, setup, rng)
        if k == 0 and setup.start is not None:
            x0 = setup.start if setup.start.shape[:2] == content.shape[:2] else images.resize_to(setup.start,
                                                                                                 *content.shape[:2])
        state.scale_index, state.shape, state.objective = k, (3,) + content.shape[:2], obj
        state.best = Best(setup.options.keep_best)
        yield ScaleStarted(k, state.shape)
        reason = stop()
        if not reason:
            reason = yield from _optimise(setup, state, level, obj, x0, stop)
        if state.best.x is not None:
            prev, loss, parts = state.host_image(state.best.x), state.best.loss, state.best.parts
        else:                                            # no iteration at this scale: its start, evaluated
            prev = x0
            loss, _, parts = obj.evaluate(setup.backend.asarray(np.ascontiguousarray(x0.transpose(2, 0, 1))),
                                          with_grad=False)
        state.base += level.iterations if not reason else 0
        state.finished_evaluations += obj.evaluations
        state.objective = None
        if reason:
            break
    if prev.shape[:2] != setup.content.shape[:2]:        # interrupted at a coarser scale: bring it to full size
        prev = images.resize_to(prev, *setup.content.shape[:2])
    yield Finished(prev, float(loss), parts, reason)


def _optimise(setup, state, level, obj, x0, stop):
    """Optimise one level from x0 (h, w, 3), folding and yielding each Step; returns the stop reason, or ""."""
    o, backend, shape = setup.options, setup.backend, state.shape
    on_host = o.optimizer == "lbfgs"                     # scipy takes host arrays; the others stay on the device

    def fun(flat):
        reason = stop()
        if reason:                                       # a line search may take several evaluations: stop sooner
            raise Stopped(reason)
        loss, g, parts = obj.evaluate(backend.xp.asarray(flat).reshape(shape))
        return loss, (to_numpy(g) if on_host else g).ravel(), parts

    flat = np.ascontiguousarray(x0.transpose(2, 0, 1)).ravel()
    gen = optim.steps(o.optimizer, fun, flat if on_host else backend.xp.asarray(flat), level.iterations,
                      memory=o.lbfgs_memory, learning_rate=o.learning_rate)
    try:
        for step in gen:
            state.record(step)
            yield step
            reason = stop()
            if reason:
                return reason
    except Stopped as e:
        return e.reason
    finally:
        gen.close()
    return ""


def start(level, content, prev, setup, rng):
    """The iterate a level starts from, (h, w, 3): the content, noise, the init image or palette start, or the last
    level's result."""
    h, w = content.shape[:2]
    if prev is not None:
        x0 = images.resize_to(prev, h, w)
        if level.start == "upsampled" and setup.options.init in ("content", "palette"):
            # Upsampling blurs: add back the content's detail finer than the last scale could hold,
            # so the finer scale starts sharp and its few iterations go to style, not to deblurring.
            ph, pw = prev.shape[:2]
            x0 = np.clip(x0 + content - images.resize_to(images.resize_to(content, ph, pw), h, w), 0, 1)
        return x0
    if level.start == "content":
        return content
    if level.start in ("image", "palette"):
        return images.resize_to(setup.init, h, w)
    return np.clip(0.5 + 0.2 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


def objective(setup, level):
    """The loss at one level, and the content at its size (h, w, 3): content and styles (and masks) resized to
    it, targets computed once, and the extra terms (a video frame's) added."""
    from ..style.objective import EmptyRegion, Objective
    o, xp = setup.options, setup.backend.xp
    content = images.resize(setup.content, level.side)
    # each style at the level's share of its size, its shorter side at least the network's smallest input
    styles = [images.resize(s, max(-(-setup.min_side * max(s.shape[:2]) // min(s.shape[:2])),
                                   round(max(s.shape[:2]) * level.side / o.size))) for s in setup.styles]
    chw = lambda a: setup.backend.asarray(np.ascontiguousarray(a.transpose(2, 0, 1)))
    blend = o.style_blend_weights or [1.0] * len(styles)
    regions, style_masks = (setup.control.at(content.shape[:2], [s.shape[:2] for s in styles])
                            if setup.control else (None, None))
    extra = setup.extra_terms(content.shape[:2], xp) if setup.extra_terms is not None else ()
    try:
        obj = Objective(setup.net, chw(content), [chw(s) for s in styles], blend, setup.content_layers,
                        setup.style_layers, o.content_weight, o.style_weight, o.tv_weight, setup.tile, regions,
                        style_masks, o.mask_rule, extra)
    except EmptyRegion as e:
        raise config.OptionError(setup.control.empty_message(e.region, e.style, e.layer,
                                                             max(content.shape[:2]))) from None
    return obj, content
