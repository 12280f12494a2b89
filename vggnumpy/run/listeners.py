"""Listeners on the optimiser's steps: progress bar, printed losses, frames, GIF, best iterate, trace, plot, output.

The pipeline calls, in order, start(run) once, scale(run) at each scale of the pyramid, step(run, step) after
each accepted iteration, and finish(run, result) once with the final image (also after an interrupt). `run`
(api.Run) says where the run is: run.scale, run.base (iterations done before this scale), run.shape, run.log.
Everything the program shows or writes while it works happens here, at the end of the data flow.
"""
import json
import sys
import time

import numpy as np

from ..files import images
from ..nn.backend import to_numpy
from ..files.paths import atomic_write, frame_path


class Listener:
    def start(self, run):
        pass

    def scale(self, run):
        pass

    def step(self, run, step):
        pass

    def finish(self, run, result):
        pass


def host_image(run, x):
    """A flat (3*h*w,) iterate on any device -> (h, w, 3) float32 on the host, clipped to [0, 1]."""
    return np.clip(to_numpy(x).reshape(run.shape).transpose(1, 2, 0), 0, 1).astype(np.float32)


class Best(Listener):
    """The iterate to keep at each scale: the one with the lowest loss (keep-best), or the last."""

    def __init__(self, keep_best=True):
        self.keep_best = keep_best
        self.scale(None)

    def scale(self, run):
        self.x, self.loss, self.parts, self.iteration = None, np.inf, {}, 0

    def step(self, run, step):
        if not self.keep_best or step.loss <= self.loss:
            self.x, self.loss, self.parts = step.x.copy(), step.loss, step.parts
            self.iteration = run.base + step.iteration


class Progress(Listener):
    """A tqdm bar over all iterations of all scales, with the loss, the size and the evaluations."""

    def __init__(self, total):
        self.total, self.bar = total, None

    def start(self, run):
        from tqdm import tqdm
        self.bar = tqdm(total=self.total, unit="it", desc="style", dynamic_ncols=True, file=sys.stderr)
        run.write = self.bar.write

    def step(self, run, step):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{step.loss:.4g}", size=f"{run.shape[2]}x{run.shape[1]}",
                             evals=run.evaluations())

    def finish(self, run, result):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        run.write = run.log


class PrintEvery(Listener):
    """Every n iterations: the loss and each term's loss at the accepted iterate."""

    def __init__(self, every):
        self.every = every

    def step(self, run, step):
        it = run.base + step.iteration
        if it % self.every == 0:
            terms = ", ".join(f"{k} {v:.4g}" for k, v in step.parts.items())
            run.write(f"iteration {it}: loss {step.loss:.6g} ({terms})")


class Frames(Listener):
    """Every n iterations: OUT_NNNN.ext written (when there is an output) and a 256 px frame kept for the GIF.

    With `trace` (a Trace listener placed before this one, so its rows already hold this iteration), each frame
    shows the loss curve so far beside the image (lookinside.beside_curve, x axis 0 .. run.total).
    """

    def __init__(self, every, output=None, keep=False, trace=None):
        self.every, self.output, self.keep, self.frames, self.trace = every, output, keep, [], trace

    def step(self, run, step):
        it = run.base + step.iteration
        if it % self.every:
            return
        img = run.finish_image(host_image(run, step.x))
        if self.keep:
            self.frames.append(self.picture(run, images.resize(img, 256)))
        if self.output is not None:
            images.save_image(frame_path(self.output, it), self.picture(run, img, min_height=256))

    def picture(self, run, img, min_height=1):
        """img (h, w, 3), with the loss curve of the trace so far on its right when there is one.

        The picture is img's height, or min_height when img is smaller (a coarse scale), so the curve stays legible.
        """
        if self.trace is None:
            return img
        from ..learn.lookinside import beside_curve
        return beside_curve(img, self.trace.rows, run.total, height=max(min_height, img.shape[0]))


class Gif(Listener):
    """An animated GIF of the frames (a Frames listener) and the final image, written at the end."""

    def __init__(self, path, frames):
        self.path, self.frames = path, frames

    def finish(self, run, result):
        last = self.frames.picture(run, images.resize(result.image, 256))
        frames = self.frames.frames
        if not frames or not np.array_equal(frames[-1], last):
            frames = frames + [last]
        images.save_gif(self.path, frames)


class Trace(Listener):
    """Per iteration: total loss, each term (so each style layer), seconds since the start and evaluations."""

    def __init__(self, path=None):
        self.path, self.rows, self.t0 = path, [], None

    def start(self, run):
        self.t0 = time.perf_counter()

    def step(self, run, step):
        self.rows.append(dict(iteration=run.base + step.iteration, scale=run.scale_index, size=list(run.shape[1:]),
                              loss=step.loss, terms=dict(step.parts), seconds=time.perf_counter() - self.t0,
                              evaluations=run.evaluations()))

    def finish(self, run, result):
        if self.path is None:
            return
        with atomic_write(self.path, suffix=".json") as tmp:
            with open(tmp, "w") as f:
                json.dump(dict(software="vggnumpy", interrupted=result.interrupted, iterations=self.rows),
                          f, indent=1)


class Plot(Listener):
    """A loss curve per term (log scale) against the iteration, drawn with matplotlib from a Trace."""

    def __init__(self, path, trace):
        self.path, self.trace = path, trace

    def finish(self, run, result):
        from ..learn.plot import loss_curves
        loss_curves(self.trace.rows, self.path)


class Callback(Listener):
    """on_step(iteration, loss, image (h, w, 3) at this scale) after each accepted iteration."""

    def __init__(self, fn):
        self.fn = fn

    def step(self, run, step):
        self.fn(run.base + step.iteration, step.loss, host_image(run, step.x))


class Output(Listener):
    """The final image, written with its metadata (what made it, and whether the run was interrupted)."""

    def __init__(self, path, metadata):
        self.path, self.metadata = path, metadata

    def finish(self, run, result):
        meta = dict(self.metadata, iterations=result.iterations, evaluations=result.evaluations,
                    loss=f"{result.loss:.6g}")
        if result.interrupted:
            meta["interrupted"] = f"at iteration {result.iterations} of {run.total} ({result.interrupted})"
        images.save_image(self.path, result.image, meta)
