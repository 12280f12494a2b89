"""scipy's L-BFGS-B as an iterator of steps: float64 only at scipy's boundary, restarts when it gives up early.

scipy drives its own loop and reports through a callback, so minimize runs in a worker thread that hands each
accepted iterate over and waits: exactly one side computes at any time, the caller's listeners run in the
caller's thread (where signals arrive), and closing the generator ends the worker at its next callback or
evaluation.
"""
import queue
import threading

import numpy as np

from . import Step, call


class _Abort(Exception):
    """Raised inside the worker's evaluation when the consumer has gone."""


class _Worker:
    """Runs the restart loop of scipy's minimize in a thread, handing steps to the consumer one at a time."""

    def __init__(self, fun, x0, iterations, lower, upper, memory):
        self.fun, self.iterations, self.memory = fun, iterations, memory
        self.lower, self.upper = lower, upper
        self.x = np.asarray(x0, dtype=np.float64).ravel().copy()
        self.out, self.go, self.stop = queue.Queue(), queue.Queue(), threading.Event()
        self.done, self.recent = 0, []

    def evaluate(self, z):
        """fun at float64 z, remembered with its terms so a step reports the terms of its own x."""
        if self.stop.is_set():
            raise _Abort()
        f, g, parts = call(self.fun, z.astype(np.float32))
        self.recent = (self.recent + [(z.copy(), float(f), parts)])[-3:]
        return f, g

    def parts_of(self, x):
        for z, _, parts in reversed(self.recent):
            if np.array_equal(z, x):
                return parts
        return call(self.fun, x.astype(np.float32))[2]         # not seen (never, in scipy 1.11-1.17)

    def callback(self, intermediate_result):
        self.done += 1
        x = intermediate_result.x
        self.out.put(("step", Step(self.done, x.astype(np.float32), float(intermediate_result.fun) / self.scale,
                                   self.parts_of(x))))
        if self.go.get() == "stop":
            raise StopIteration

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
        that fails in float32 noise) it restarts from the current point with a fresh memory while that helps."""
        from scipy.optimize import Bounds, minimize
        f0, g0 = self.evaluate(self.x)
        self.scale = 1.0 / abs(f0) if f0 != 0 and np.isfinite(f0) else 1.0
        first = {"x": self.x.copy(), "fg": (f0, g0)}             # scipy asks for f(x0) again: answer from here

        def f64(z):
            fg = first.pop("fg") if first and np.array_equal(z, first["x"]) else None
            first.clear()
            f, g = fg if fg is not None else self.evaluate(z)
            return float(f) * self.scale, np.asarray(g, dtype=np.float64).ravel() * self.scale

        bounds = Bounds(np.full_like(self.x, self.lower), np.full_like(self.x, self.upper))
        best = float(f0) * self.scale
        while self.done < self.iterations:
            left = self.iterations - self.done
            res = minimize(f64, self.x, jac=True, method="L-BFGS-B", bounds=bounds, callback=self.callback,
                           options=dict(maxiter=left, maxfun=max(20, 4 * left), maxcor=self.memory, ftol=0.0,
                                        gtol=0.0))
            self.x = res.x
            if res.status == 99 or "callback" in str(res.message).lower() or not res.fun < best:
                break                                   # stopped by the consumer, or a restart gained nothing
            best = res.fun


def steps(fun, x0, iterations, lower=0.0, upper=1.0, memory=20):
    """Yield Step(iteration, x float32, loss, parts) for each iteration scipy's L-BFGS-B accepts."""
    if iterations <= 0:
        return
    w = _Worker(fun, x0, iterations, lower, upper, memory)
    thread = threading.Thread(target=w.run, name="vggnumpy-lbfgs", daemon=True)
    thread.start()
    ended = False
    try:
        while True:
            kind, value = w.out.get()
            if kind == "end":
                ended = True
                return
            if kind == "error":
                raise value
            yield value
            w.go.put("go")
    finally:
        w.stop.set()
        w.go.put("stop")
        thread.join(timeout=None if ended else 1.0)   # an aborted worker ends at its next evaluation
