"""What every optimiser hands out: one Step per accepted iteration; call() reads fun(x) with or without parts."""
from dataclasses import dataclass, field

# How far the first step of an L-BFGS run (and of each restart) moves the pixels: its root-mean-square change per
# value, on the 0..1 scale. Left to itself, scipy's L-BFGS-B (every pixel boxed in [0, 1]) first steps by the whole
# gradient of f / |f(x0)|, as large or small as the losses' normalisation makes it at that size; our device
# L-BFGS stepped by unit Euclidean length, 1/sqrt(n) per value. At 512 px the first 14 iterations of the default
# run then lowered the loss by 6% (benchmarks/README.md, "The stall at the start").
FIRST_STEP = 0.01


@dataclass
class Step:
    """One accepted iteration: x (n,) float32 on the optimiser's device, its loss and its terms' losses."""
    iteration: int
    x: object
    loss: float
    parts: dict = field(default_factory=dict)


def call(fun, x):
    """fun(x) as (loss, grad, parts), whether fun returns two values or three."""
    out = fun(x)
    return (out[0], out[1], out[2]) if len(out) == 3 else (out[0], out[1], {})


def first_step(value=None):
    """The first step's RMS change per value: value, or FIRST_STEP."""
    return FIRST_STEP if value is None else value
