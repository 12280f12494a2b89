"""Projected Adam over the pixels: one evaluation per iteration, each step reporting the loss of its own x."""
from ..nn.backend import xp_of
from .step import Step, call


def steps(fun, x0, iterations, lr=0.02, lower=0.0, upper=1.0, beta1=0.9, beta2=0.999, eps=1e-8):
    """Yield Step(t, x_t, f(x_t), parts) for t = 1..iterations, x_t after t updates (iterations + 1 evaluations).

    The loss reported with x_t is f at x_t itself, evaluated before the next update uses its gradient, so
    keep-best keeps the iterate whose loss it saw.
    """
    xp = xp_of(x0)
    x = xp.asarray(x0, dtype=xp.float32).ravel().copy()
    m = xp.zeros_like(x)
    v = xp.zeros_like(x)
    f, g, parts = call(fun, x)
    for t in range(1, iterations + 1):
        g = xp.asarray(g, dtype=xp.float32).ravel()
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        mhat = m / (1 - beta1 ** t)
        vhat = v / (1 - beta2 ** t)
        x = xp.clip(x - lr * mhat / (xp.sqrt(vhat) + eps), lower, upper).astype(xp.float32)
        f, g, parts = call(fun, x)
        yield Step(t, x, float(f), parts)
