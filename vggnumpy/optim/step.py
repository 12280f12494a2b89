"""What every optimiser hands out: one Step per accepted iteration; call() reads fun(x) with or without parts."""
from dataclasses import dataclass, field


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
