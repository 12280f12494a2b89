"""Adam on a network's weights (Kingma and Ba 2015): a dict of parameter arrays updated in place, with its state
(moments and step count) kept as arrays, so a training run can be checkpointed and resumed exactly."""
from ..nn.backend import xp_of


class Adam:
    """step(params, grads) updates every params[name] in place from grads[name] (float32 arrays of one backend).

    state() -> {"t": int, "m/NAME": array, "v/NAME": array}; Adam.from_state(state, ...) continues from it.
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t, self.m, self.v = 0, {}, {}

    def step(self, params, grads):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # The bias corrections folded into the step size, as in the paper's section 2 (its last paragraph).
        lr_t = self.lr * (1 - b2 ** self.t) ** 0.5 / (1 - b1 ** self.t)
        for name, g in grads.items():
            p = params[name]
            xp = xp_of(p)
            m = self.m.setdefault(name, xp.zeros_like(p))
            v = self.v.setdefault(name, xp.zeros_like(p))
            m *= p.dtype.type(b1)
            m += p.dtype.type(1 - b1) * g
            v *= p.dtype.type(b2)
            v += p.dtype.type(1 - b2) * g * g
            p -= p.dtype.type(lr_t) * m / (xp.sqrt(v) + p.dtype.type(self.eps * (1 - b2 ** self.t) ** 0.5))

    def state(self):
        out = {"t": self.t}
        out.update({f"m/{k}": a for k, a in self.m.items()})
        out.update({f"v/{k}": a for k, a in self.v.items()})
        return out

    @classmethod
    def from_state(cls, state, lr=1e-3, **kw):
        a = cls(lr, **kw)
        a.t = int(state["t"])
        for key, arr in state.items():
            if key != "t":
                kind, name = key.split("/", 1)
                (a.m if kind == "m" else a.v)[name] = arr
        return a
