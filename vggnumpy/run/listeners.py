"""Listeners on the run's stream of steps: progress bar, printed losses, frames, GIF, trace file, plot, output.

pipeline.run hands each event of steps.stream to every listener in turn: start(run) once, scale(run) when a
scale of the pyramid begins, step(run, step) after each accepted iteration, finish(run, result) once with the
final image (also after an interrupt), or abort(run) when the run raised. `run` (steps.RunState) says where the
run is: run.scale_index, run.base (iterations done before this scale), run.shape, run.trace; listeners read it
and never write it. Everything the program shows or writes while it works happens here, at the end of the flow.
"""
import json
import sys

import numpy as np

from ..files import images
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

    def abort(self, run):
        pass


class Progress(Listener):
    """A tqdm bar over all iterations of all scales, with the loss, the size and the evaluations.

    write(msg) prints a line above the bar while it runs (through log() before and after)."""

    def __init__(self, total, log):
        self.total, self.log, self.bar = total, log, None

    def write(self, msg):
        (self.bar.write if self.bar is not None else self.log)(msg)

    def start(self, run):
        from tqdm import tqdm
        self.bar = tqdm(total=self.total, unit="it", desc="style", dynamic_ncols=True, file=sys.stderr)

    def step(self, run, step):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{step.loss:.4g}", size=f"{run.shape[2]}x{run.shape[1]}",
                             evals=run.evaluations())

    def finish(self, run, result):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def abort(self, run):
        self.finish(run, None)


class PrintEvery(Listener):
    """Every n iterations: the loss and each term's loss at the accepted iterate, through write(line)."""

    def __init__(self, every, write):
        self.every, self.write = every, write

    def step(self, run, step):
        it = run.base + step.iteration
        if it % self.every == 0:
            terms = ", ".join(f"{k} {v:.4g}" for k, v in step.parts.items())
            self.write(f"iteration {it}: loss {step.loss:.6g} ({terms})")


class Frames(Listener):
    """Every n iterations: OUT_NNNN.ext written (when there is an output) and a 256 px frame kept for the GIF.

    With loss_curve, each frame shows the loss curve so far (run.trace, which holds this iteration already) beside
    the image (lookinside.beside_curve, x axis 0 .. run.total).
    """

    def __init__(self, every, output=None, keep=False, loss_curve=False):
        self.every, self.output, self.keep, self.frames, self.loss_curve = every, output, keep, [], loss_curve

    def step(self, run, step):
        it = run.base + step.iteration
        if it % self.every:
            return
        img = run.finish_image(run.host_image(step.x))
        if self.keep:
            self.frames.append(self.picture(run, images.resize(img, 256)))
        if self.output is not None:
            images.save_image(frame_path(self.output, it), self.picture(run, img, min_height=256))

    def picture(self, run, img, min_height=1):
        """img (h, w, 3), with the loss curve of the trace so far on its right when there is one.

        The picture is img's height, or min_height when img is smaller (a coarse scale), so the curve stays legible.
        """
        if not self.loss_curve:
            return img
        from ..learn.lookinside import beside_curve
        return beside_curve(img, run.trace, run.total, height=max(min_height, img.shape[0]))


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


class TraceFile(Listener):
    """The trace (per iteration: total loss, each term, seconds since the start, evaluations) as JSON at the end."""

    def __init__(self, path):
        self.path = path

    def finish(self, run, result):
        with atomic_write(self.path, suffix=".json") as tmp:
            with open(tmp, "w") as f:
                json.dump(dict(software="vggnumpy", interrupted=result.interrupted, iterations=result.trace),
                          f, indent=1)


class Plot(Listener):
    """A loss curve per term (log scale) against the iteration, drawn with matplotlib from the result's trace."""

    def __init__(self, path):
        self.path = path

    def finish(self, run, result):
        from ..learn.plot import loss_curves
        loss_curves(result.trace, self.path)


class Callback(Listener):
    """on_step(iteration, loss, image (h, w, 3) at this scale) after each accepted iteration."""

    def __init__(self, fn):
        self.fn = fn

    def step(self, run, step):
        self.fn(run.base + step.iteration, step.loss, run.host_image(step.x))


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
