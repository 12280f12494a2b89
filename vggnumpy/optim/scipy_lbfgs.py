"""scipy's L-BFGS-B as an iterator of steps: float64 only at scipy's boundary, restarts when it gives up early.

scipy drives its own loop and calls back, so minimize runs in a helper thread that only does scipy's own
bookkeeping: each evaluation it needs and each iteration it accepts is handed to the caller's thread, which
evaluates (the heavy NumPy work stays in the main thread, with its memory allocator and its signals) or yields
the step, and then answers. Exactly one side works at any time; closing the generator ends the helper.
"""
import queue
import threading

import numpy as np

from .step import Step, call, first_step


class _Abort(Exception):
    """Raised in the helper thread when the consumer has gone."""


class _Driver:
    """scipy's minimize with restarts, asking the consumer for every evaluation and reporting every iteration."""

    def __init__(self, x0, iterations, lower, upper, memory, step):
        self.iterations, self.memory, self.lower, self.upper, self.step = iterations, memory, lower, upper, step
        self.x = np.asarray(x0, dtype=np.float64).ravel().copy()
        self.out, self.back = queue.Queue(), queue.Queue()
        self.done, self.scale, self.unit = 0, 1.0, 1.0

    def ask(self, kind, value):
        """Hand (kind, value) to the consumer and wait for its answer; "stop" ends minimize."""
        self.out.put((kind, value))
        answer = self.back.get()
        if isinstance(answer, str) and answer == "stop":
            raise _Abort()
        return answer

    def callback(self, intermediate_result):
        self.done += 1
        self.ask("step", (self.done, intermediate_result.x / self.unit, float(intermediate_result.fun) / self.scale))

    def run(self):
        try:
            self.minimize()
        except _Abort:
            pass
        except BaseException as e:                                    # handed to the consumer's thread
            self.out.put(("error", e))
            return
        self.out.put(("end", None))

    def minimize(self):
        """scipy sees f / |f(x0)| (order 1 whatever the weights) with both tolerances 0, so only the budget stops
        it (a peer's run stopped after 2 iterations at f ~ 2.9e12); if it still gives up early (a line search
        that fails in float32 noise) it restarts from the current point with a fresh memory while that helps.

        It also sees the pixels scaled, z = k x. With every variable boxed, L-BFGS-B's first step (of a run, or of
        a restart) goes to the Cauchy point of the model with unit curvature: z - dz, the whole gradient in z,
        which moves x by g / k^2 (with f scaled as above); k^2 = rms(g) / step makes that `step` root-mean-square
        per value whatever the image's size and the loss's normalisation. Later steps are scaled by the curvature
        L-BFGS measures, which a uniform k does not change."""
        from scipy.optimize import Bounds, minimize
        f0, g0 = self.ask("eval", self.x)
        self.scale = 1.0 / abs(f0) if f0 != 0 and np.isfinite(f0) else 1.0
        rms = float(np.sqrt(np.mean(np.square(np.asarray(g0, dtype=np.float64))))) * self.scale
        k = self.unit = float(np.sqrt(rms / self.step)) if rms > 0 and np.isfinite(rms) else 1.0   # z = k x
        first = {"z": self.x * k, "fg": (f0, g0)}             # scipy asks for f(x0) again: answer from here

        def f64(z):
            fg = first.pop("fg") if first and np.array_equal(z, first["z"]) else None
            first.clear()
            f, g = fg if fg is not None else self.ask("eval", z / k)
            return float(f) * self.scale, np.asarray(g, dtype=np.float64).ravel() * (self.scale / k)

        bounds = Bounds(np.full_like(self.x, self.lower * k), np.full_like(self.x, self.upper * k))
        best = float(f0) * self.scale
        while self.done < self.iterations:
            left = self.iterations - self.done
            res = minimize(f64, self.x * k, jac=True, method="L-BFGS-B", bounds=bounds, callback=self.callback,
                           options=dict(maxiter=left, maxfun=max(20, 4 * left), maxcor=self.memory, ftol=0.0,
                                        gtol=0.0))
            self.x = res.x / k
            if not res.fun < best:
                break                                   # a restart that gained nothing
            best = res.fun


def _parts_of(recent, x, fun):
    """The terms of the evaluation at x among the last few (L-BFGS-B accepts the last point it evaluated)."""
    for z, parts in reversed(recent):
        if np.array_equal(z, x):
            return parts
    return call(fun, x.astype(np.float32))[2]


def steps(fun, x0, iterations, lower=0.0, upper=1.0, memory=20, step=None):
    """Yield Step(iteration, x float32, loss, parts) for each iteration scipy's L-BFGS-B accepts; the first step
    moves the values by `step` root-mean-square (None: step.FIRST_STEP)."""
    if iterations <= 0:
        return
    d = _Driver(x0, iterations, lower, upper, memory, first_step(step))
    helper = threading.Thread(target=d.run, name="vggnumpy-lbfgs", daemon=True)
    helper.start()
    recent = []
    try:
        while True:
            kind, value = d.out.get()
            if kind == "eval":
                f, g, parts = call(fun, value.astype(np.float32))
                recent = (recent + [(value.copy(), parts)])[-3:]
                d.back.put((f, g))
            elif kind == "step":
                it, x, loss = value
                yield Step(it, x.astype(np.float32), loss, _parts_of(recent, x, fun))
                d.back.put("go")
            elif kind == "error":
                raise value
            else:
                return
    finally:
        d.back.put("stop")
        helper.join(timeout=5.0)                   # it only waits on us, so it ends at once
