"""Device-resident projected L-BFGS: the pixels, gradient and memory never leave the GPU (an option to scipy).

lbfgs(fun, x0, iterations, lower, upper, memory, on_iter) has vggnumpy.optim.lbfgs's shape, but fun takes and
returns arrays of x0's array module: fun(x (n,) float32) -> (loss float, grad (n,) float32). It also runs on
NumPy arrays, which is how it is tested without a GPU. The box [lower, upper] is kept by projection: bound
variables whose gradient points outwards are frozen for the step, the two-loop recursion runs on the free
ones, and a backtracking Armijo search walks the projected path P(x + t d). Dot products accumulate in
float64 (a CuPy ReductionKernel on the GPU); their results stay on the device, so one iteration synchronises
only where the loss is compared in the line search.
"""
import numpy as np

from ..backend import to_numpy, xp_of

_DOT64 = {}


def _dot(a, b):
    """sum(a * b) accumulated in float64, as a 0-d array (or NumPy scalar) on a's device."""
    xp = xp_of(a)
    if xp is np:
        return np.dot(a.astype(np.float64), b.astype(np.float64))
    if "k" not in _DOT64:
        _DOT64["k"] = xp.ReductionKernel("float32 a, float32 b", "float64 out", "double(a) * double(b)",
                                         "a + b", "out = a", "0", "vggnumpy_dot64")
    return _DOT64["k"](a, b)


def _f32(s):
    return s.astype(np.float32)


def lbfgs(fun, x0, iterations, lower=0.0, upper=1.0, memory=20, on_iter=None, c1=1e-4, max_backtracks=20):
    """Run up to `iterations` iterations from x0; returns (x on x0's device, info dict)."""
    xp = xp_of(x0)
    x = xp.clip(xp.asarray(x0, dtype=xp.float32).ravel(), lower, upper)
    f, g = fun(x)
    evaluations, restarts, messages = 1, 0, []
    s_hist, y_hist, rho_hist = [], [], []
    gamma = None
    done = 0
    while done < iterations:
        free = ~(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0)))
        q = xp.where(free, g, xp.float32(0))                                  # projected gradient (n,)
        if s_hist:
            alphas = []
            for s, y, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist)):
                a = rho * _dot(s, q)
                alphas.append(a)
                q = q - _f32(a) * y
            q = q * _f32(gamma)
            for (s, y, rho), a in zip(zip(s_hist, y_hist, rho_hist), reversed(alphas)):
                bcoef = rho * _dot(y, q)
                q = q + _f32(a - bcoef) * s
            d = xp.where(free, -q, xp.float32(0))
            t = 1.0
        else:
            d = -q
            gn = float(xp.sqrt(_dot(q, q)))
            t = 1.0 / gn if gn > 0 else 1.0                                    # first step: |step| = 1
        gd = float(_dot(g, d))
        if not gd < 0:                                                         # not a descent direction
            if not s_hist:
                messages.append("zero projected gradient")
                break
            s_hist, y_hist, rho_hist, restarts = [], [], [], restarts + 1
            continue
        accepted = False
        for _ in range(max_backtracks):
            xn = xp.clip(x + xp.float32(t) * d, lower, upper)
            fn, gnew = fun(xn)
            evaluations += 1
            if fn <= f + c1 * float(_dot(g, xn - x)):
                accepted = True
                break
            t *= 0.5
        if not accepted:
            if not s_hist:
                messages.append("line search failed")
                break
            s_hist, y_hist, rho_hist, restarts = [], [], [], restarts + 1      # retry with a fresh memory
            continue
        s, y = xn - x, gnew - g
        sy, yy = _dot(s, y), _dot(y, y)
        if float(sy) > 1e-10 * float(yy):                                      # keep only curvature pairs
            s_hist.append(s)
            y_hist.append(y)
            rho_hist.append(1.0 / sy)
            gamma = sy / yy
            if len(s_hist) > memory:
                s_hist.pop(0), y_hist.pop(0), rho_hist.pop(0)
        x, f, g = xn, fn, gnew
        done += 1
        if on_iter is not None and on_iter(done, to_numpy(x), float(f)):
            messages.append("stopped by callback")
            break
    if done >= iterations:
        messages.append("iterations done")
    return x, dict(iterations=done, restarts=restarts, messages=messages, evaluations=evaluations)
