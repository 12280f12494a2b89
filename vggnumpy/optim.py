"""Optimisers over the pixels: scipy's L-BFGS-B (float64 only at its boundary) and projected Adam.

Both take fun(x) -> (loss, grad) on a flat float32 vector and call on_iter(iteration, x, loss) after each
iteration; on_iter returning True stops early. Pixels are kept in [lower, upper] (L-BFGS-B by its bounds,
Adam by projection).
"""
import numpy as np


class Stop(Exception):
    pass


def lbfgs(fun, x0, iterations, lower=0.0, upper=1.0, memory=20, on_iter=None):
    """Run L-BFGS-B for `iterations` iterations. Returns (x float32, info).

    scipy stops on its own when the relative decrease of f falls under ftol or the projected gradient under
    gtol, and its tests and first step assume f of order 1; a loss of large or small scale then ends the run
    after a couple of iterations (a known bug in a peer: REL_REDUCTION_OF_F after 2 iterations at f ~ 2.9e12).
    So scipy sees f / |f(x0)| (order 1 whatever the weights), both tolerances are 0 so only the iteration budget
    stops it, and if it still gives up early (a line search that fails in float32 noise) we restart from the
    current point with a fresh memory, as long as the restart lowers the loss.
    """
    from scipy.optimize import Bounds, minimize

    x = np.asarray(x0, dtype=np.float64).ravel().copy()
    f0, g0 = fun(x.astype(np.float32))
    scale = 1.0 / abs(f0) if f0 != 0 and np.isfinite(f0) else 1.0
    first = {"x": x.copy(), "fg": (f0, g0)}          # scipy asks for f(x0) again: answer it from here

    def f64(z):
        if first and np.array_equal(z, first["x"]):
            f, g = first.pop("fg")
            first.clear()
        else:
            first.clear()
            f, g = fun(z.astype(np.float32))
        return float(f) * scale, np.asarray(g, dtype=np.float64).ravel() * scale

    state = {"done": 0, "best": float(f0) * scale}
    restarts, messages = 0, []

    def callback(intermediate_result):
        state["done"] += 1
        state["best"] = min(state["best"], float(intermediate_result.fun))
        if on_iter is not None and on_iter(state["done"], intermediate_result.x.astype(np.float32),
                                           float(intermediate_result.fun) / scale):
            raise StopIteration

    bounds = Bounds(np.full_like(x, lower), np.full_like(x, upper))
    while state["done"] < iterations:
        before = state["best"]
        left = iterations - state["done"]
        res = minimize(f64, x, jac=True, method="L-BFGS-B", bounds=bounds, callback=callback,
                       options=dict(maxiter=left, maxfun=max(20, 4 * left), maxcor=memory, ftol=0.0, gtol=0.0))
        x = res.x
        messages.append(str(res.message))
        if res.status == 99 or "callback" in str(res.message).lower():     # stopped by on_iter
            break
        if state["done"] < iterations:
            if not state["best"] < before:                                   # a restart that gained nothing
                break
            restarts += 1
    return x.astype(np.float32), dict(iterations=state["done"], restarts=restarts, messages=messages)


def adam(fun, x0, iterations, lr=0.02, lower=0.0, upper=1.0, beta1=0.9, beta2=0.999, eps=1e-8, on_iter=None):
    """Projected Adam, one evaluation per iteration. Returns (x float32, info)."""
    x = np.asarray(x0, dtype=np.float32).ravel().copy()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    for t in range(1, iterations + 1):
        f, g = fun(x)
        g = np.asarray(g, dtype=np.float32).ravel()
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        mhat = m / (1 - beta1 ** t)
        vhat = v / (1 - beta2 ** t)
        x = np.clip(x - lr * mhat / (np.sqrt(vhat) + eps), lower, upper).astype(np.float32)
        if on_iter is not None and on_iter(t, x, float(f)):
            return x, dict(iterations=t, restarts=0, messages=["stopped"])
    return x, dict(iterations=iterations, restarts=0, messages=["iterations done"])
