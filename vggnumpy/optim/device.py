"""Device-resident projected L-BFGS: the pixels, gradient and memory never leave the GPU (an option to scipy).

steps(fun, x0, iterations, lower, upper, memory) yields Steps like the other optimisers, with x on x0's device:
fun(x (n,) float32) -> (loss float, grad (n,) float32[, parts]) on arrays of x0's array module. It also runs on
NumPy arrays, which is how it is tested without a GPU. The box [lower, upper] is kept by projection: bound
variables whose gradient points outwards are frozen for the step, the two-loop recursion runs on the free
ones, and a backtracking Armijo search walks the projected path P(x + t d). Dot products accumulate in
float64 (a CuPy ReductionKernel on the GPU); their results stay on the device, so one iteration synchronises
only where the loss is compared in the line search.
"""
import numpy as np

from ..nn.backend import dot64, xp_of
from .step import Step, call, first_step


def _f32(s):
    return s.astype(np.float32)


class _Memory:
    """The last `size` curvature pairs (s, y, 1 / s.y) and the initial Hessian scale gamma = s.y / y.y."""

    def __init__(self, size, dot):
        self.size, self.dot, self.pairs, self.gamma = size, dot, [], None

    def add(self, s, y):
        sy, yy = self.dot(s, y), self.dot(y, y)
        if float(sy) > 1e-10 * float(yy):                                      # keep only curvature pairs
            self.pairs = (self.pairs + [(s, y, 1.0 / sy)])[-self.size:]
            self.gamma = sy / yy

    def direction(self, q):
        """The two-loop recursion: -H q for the projected gradient q (n,)."""
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * self.dot(s, q)
            alphas.append(a)
            q = q - _f32(a) * y
        q = q * _f32(self.gamma)
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            q = q + _f32(a - rho * self.dot(y, q)) * s
        return -q


def _search(fun, x, f, g, d, t, lower, upper, dot, c1, max_backtracks):
    """Backtracking Armijo search on the projected path P(x + t d): (x, f, g, parts) accepted, or None."""
    xp = xp_of(x)
    for _ in range(max_backtracks):
        xn = xp.clip(x + xp.float32(t) * d, lower, upper)
        fn, gn, parts = call(fun, xn)
        if fn <= f + c1 * float(dot(g, xn - x)):
            return xn, fn, gn, parts
        t *= 0.5
    return None


def steps(fun, x0, iterations, lower=0.0, upper=1.0, memory=20, c1=1e-4, max_backtracks=20, step=None):
    """Yield Step(iteration, x on x0's device, loss, parts) for up to `iterations` accepted iterations; the first
    step (and the first after a restart) moves the values by `step` root-mean-square (None: step.FIRST_STEP)."""
    xp = xp_of(x0)
    dot = dot64(xp)
    x = xp.clip(xp.asarray(x0, dtype=xp.float32).ravel(), lower, upper)
    f, g, _ = call(fun, x)
    mem, done, length = _Memory(memory, dot), 0, first_step(step) * float(np.sqrt(x.size))
    while done < iterations:
        free = ~(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0)))
        q = xp.where(free, g, xp.float32(0))                                  # projected gradient (n,)
        if mem.pairs:
            d, t = xp.where(free, mem.direction(q), xp.float32(0)), 1.0
        else:
            gn = float(xp.sqrt(dot(q, q)))
            d, t = -q, (length / gn if gn > 0 else 1.0)                        # first step: |step| = length
        found = _search(fun, x, f, g, d, t, lower, upper, dot, c1, max_backtracks) if float(dot(g, d)) < 0 else None
        if found is None:                                                      # no descent, or the search failed
            if not mem.pairs:
                return
            mem = _Memory(memory, dot)                                         # retry with a fresh memory
            continue
        xn, fn, gn, parts = found
        mem.add(xn - x, gn - g)
        x, f, g = xn, fn, gn
        done += 1
        yield Step(done, x, float(f), parts)                                   # x stays on the device
