"""Optimisers over the pixels as iterators of steps: scipy's L-BFGS-B, our device L-BFGS, and projected Adam.

Each `steps` generator takes fun(x) -> (loss, grad[, parts]) on a flat float32 vector of NumPy or CuPy arrays
and yields one Step per iteration: the accepted x, its loss and its terms. They keep the pixels in
[lower, upper] and write nothing: the caller's listeners (listeners.py) do. Closing the generator stops it.
lbfgs, device_lbfgs and adam run one to the end: (x, info), with on_iter(iteration, x, loss) -> True to stop.
"""
from .step import Step, call

__all__ = ["Step", "call", "steps", "run", "lbfgs", "device_lbfgs", "adam"]


def steps(name, fun, x0, iterations, lower=0.0, upper=1.0, memory=20, learning_rate=0.02):
    """The step generator of optimiser `name`: lbfgs, lbfgs-device or adam."""
    if name == "lbfgs":
        from .scipy_lbfgs import steps as gen
        return gen(fun, x0, iterations, lower, upper, memory)
    if name == "lbfgs-device":
        from .device import steps as gen
        return gen(fun, x0, iterations, lower, upper, memory)
    if name == "adam":
        from .projected_adam import steps as gen
        return gen(fun, x0, iterations, learning_rate, lower, upper)
    raise ValueError(f"optimizer must be lbfgs, lbfgs-device or adam, not {name!r}")


def run(gen, x0, on_iter=None):
    """Drive a step generator to its end (or until on_iter returns True); returns (x, info)."""
    x, done = x0, 0
    try:
        for step in gen:
            x, done = step.x, step.iteration
            if on_iter is not None and on_iter(step.iteration, step.x, step.loss):
                break
    finally:
        gen.close()
    return x, dict(iterations=done)


def lbfgs(fun, x0, iterations, lower=0.0, upper=1.0, memory=20, on_iter=None):
    """scipy's L-BFGS-B for `iterations` iterations: (x float32, info)."""
    return run(steps("lbfgs", fun, x0, iterations, lower, upper, memory), x0, on_iter)


def device_lbfgs(fun, x0, iterations, lower=0.0, upper=1.0, memory=20, on_iter=None):
    """Our projected L-BFGS on x0's device (NumPy or CuPy): (x on that device, info)."""
    return run(steps("lbfgs-device", fun, x0, iterations, lower, upper, memory), x0, on_iter)


def adam(fun, x0, iterations, lr=0.02, lower=0.0, upper=1.0, on_iter=None):
    """Projected Adam: (x float32, info)."""
    return run(steps("adam", fun, x0, iterations, lower, upper, learning_rate=lr), x0, on_iter)
