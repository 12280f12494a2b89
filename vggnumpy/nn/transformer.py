"""The feed-forward style network of Johnson et al. 2016 (the "transformer"): its layout, parameters, and its
forward and backward passes with the gradients of every weight.

Layout (Johnson's c9s1-32, d64, d128, R128 x5, u64, u32, c9s1-3, times a width multiplier):
    conv1  9x9 stride 1, 3 -> C1          } each: reflection padding, convolution,
    down1  3x3 stride 2, C1 -> C2         }       instance norm with learned scale and shift, ReLU
    down2  3x3 stride 2, C2 -> C3         }
    res1..res5: x + (resN_1: 3x3 C3 -> C3, norm, ReLU; resN_2: 3x3 C3 -> C3, norm)
    up1, up2: nearest x2 upsampling, then 3x3 stride 1 to C2, then C1, norm, ReLU (Odena et al. 2016)
    out    9x9 stride 1, C1 -> 3, with a bias; then y = 0.5 + OUT_GAIN * tanh(z): a bounded output
Every convolution is padded by reflection (K // 2 on each side), so the output has the input's size when H and W
are multiples of 4 (the two stride-2 steps). A convolution followed by instance norm has no bias: the norm
subtracts the channel's mean, so a bias there would have a gradient of exactly zero.

Input and output are RGB in [0, 1] (the output within [0.5 - OUT_GAIN, 0.5 + OUT_GAIN], clipped when saved).
Parameters are a flat dict {"conv1.w": (O, C, K, K), "conv1.gamma": (O,), "conv1.beta": (O,), "out.b": (3,), ...}.
"""
from dataclasses import dataclass

import numpy as np

from .kernels import instnorm, reflect, upsample

CHANNELS = (32, 64, 128)          # width 1, as Johnson's
RES_BLOCKS = 5
OUT_GAIN = 0.6                    # output range [-0.1, 1.1]: room to reach black and white without saturating tanh
MULTIPLE = 4                      # H and W must be multiples of this (two stride-2 steps)


@dataclass(frozen=True)
class Unit:
    """One convolution unit: optional upsampling, reflection padding, the convolution, optional norm and ReLU."""
    name: str
    cin: int
    cout: int
    k: int
    stride: int = 1
    up: int = 1
    norm: bool = True
    relu: bool = True


def channels(width):
    """(C1, C2, C3) for a width multiplier: 1 -> 32, 64, 128; 0.5 -> 16, 32, 64."""
    if not 0 < width <= 4:
        raise ValueError(f"width must be in (0, 4], not {width!r}")
    return tuple(max(1, int(round(c * width))) for c in CHANNELS)


def layout(width):
    """The units in order; the residual blocks are the pairs resN_1, resN_2."""
    c1, c2, c3 = channels(width)
    units = [Unit("conv1", 3, c1, 9), Unit("down1", c1, c2, 3, 2), Unit("down2", c2, c3, 3, 2)]
    for r in range(1, RES_BLOCKS + 1):
        units += [Unit(f"res{r}_1", c3, c3, 3), Unit(f"res{r}_2", c3, c3, 3, relu=False)]
    units += [Unit("up1", c3, c2, 3, up=2), Unit("up2", c2, c1, 3, up=2),
              Unit("out", c1, 3, 9, norm=False, relu=False)]
    return units


def param_shapes(width):
    """{parameter name: shape} of the network of this width, in layout order."""
    out = {}
    for u in layout(width):
        out[f"{u.name}.w"] = (u.cout, u.cin, u.k, u.k)
        if u.norm:
            out[f"{u.name}.gamma"], out[f"{u.name}.beta"] = (u.cout,), (u.cout,)
        else:
            out[f"{u.name}.b"] = (u.cout,)
    return out


def init_params(width, seed=0):
    """He-normal kernels (std sqrt(2 / fan_in)), norm scale 1 and shift 0, the output's kernel 10x smaller so a
    new network starts near grey; float32."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in param_shapes(width).items():
        kind = name.split(".")[1]
        if kind == "w":
            std = np.sqrt(2.0 / np.prod(shape[1:])) * (0.1 if name.startswith("out.") else 1.0)
            out[name] = (rng.standard_normal(shape) * std).astype(np.float32)
        else:
            out[name] = (np.ones if kind == "gamma" else np.zeros)(shape, dtype=np.float32)
    return out


def receptive_radius(width=1):
    """How far (input pixels) an output pixel sees: the halo exact tiling needs. Walks the layout: a KxK unit at
    stride-product J adds (K // 2) * J; an upsampling by s divides J by s (and may shift by one coarse pixel)."""
    r, jump = 0, 1
    for u in layout(width):
        if u.up > 1:
            r += jump                                   # the nearest pick: up to one coarse pixel either way
            jump //= u.up
        r += (u.k // 2) * jump
        jump *= u.stride
    return r


class Transformer:
    """The network with its parameters on one backend: forward(x) -> (y, cache); backward(dy, cache) -> (grads, dx).

    params: the flat dict (arrays of the backend: NumPy, or CuPy through kernels=backend.kernels); width is read
    from their shapes. kernels: the GPU backend's dict (conv forward, backward and weights, relu); None: the
    NumPy kernels with this network's own engine.Engine (threads as Network's). Reflection padding, instance
    norm, upsampling and the output's tanh are the same code on both (array-module generic).
    """

    def __init__(self, params, kernels=None, threads=None):
        from .network import cpu_kernels
        from .kernels.engine import Engine
        self.width = params["conv1.w"].shape[0] / CHANNELS[0]
        self.units = layout(self.width)
        expected = param_shapes(self.width)
        wrong = [n for n, s in expected.items() if n not in params or tuple(params[n].shape) != s]
        if wrong or len(params) != len(expected):
            raise ValueError(f"transformer parameters do not match the layout of width {self.width:g}: "
                             f"{', '.join(wrong) or 'unexpected extra parameters'}")
        self.params = params
        self.engine = None if kernels else Engine(threads)
        self.k = kernels if kernels else cpu_kernels(self.engine)

    def _unit_forward(self, u, h):
        """h (N, Cin, H, W) -> (N, Cout, H', W'), and what _unit_backward needs."""
        p, xp = self.params, _xp(h)
        c = {}
        if u.up > 1:
            h, c["up"] = upsample.forward(h, u.up)
        h, c["pad"] = reflect.forward(h, u.k // 2)
        c["x"] = h                                                  # the convolution's input, for dW
        b = p[f"{u.name}.b"] if not u.norm else xp.zeros(u.cout, dtype=h.dtype)
        h, c["conv"] = self.k["conv"].forward(h, p[f"{u.name}.w"], b, u.stride, 0)
        if u.norm:
            h, c["norm"] = instnorm.forward(h, p[f"{u.name}.gamma"], p[f"{u.name}.beta"])
        if u.relu:
            h, c["relu"] = self.k["relu"].forward(h, inplace=True)
        return h, c

    def _unit_backward(self, u, d, c, grads, need_dx=True):
        """d (N, Cout, H', W') -> d (N, Cin, H, W); adds the unit's parameter gradients to grads."""
        if u.relu:
            d = d * c["relu"]                                       # the ReLU's backward: its mask (out > 0)
        if u.norm:
            d, grads[f"{u.name}.gamma"], grads[f"{u.name}.beta"] = instnorm.backward(d, c["norm"])
        w = self.params[f"{u.name}.w"]
        grads[f"{u.name}.w"], db = self.k["conv"].weights(d, c["x"], w.shape, u.stride, 0)
        if not u.norm:
            grads[f"{u.name}.b"] = db
        if not need_dx:
            return None
        d = self.k["conv"].backward(d, c["conv"])
        d = reflect.backward(d, c["pad"])
        if u.up > 1:
            d = upsample.backward(d, c["up"])
        return d

    def forward(self, x):
        """x (N, 3, H, W) RGB in [0, 1], H and W multiples of MULTIPLE -> y (N, 3, H, W), cache."""
        n, c, h, w = x.shape
        if c != 3 or h % MULTIPLE or w % MULTIPLE or min(h, w) < 2 * MULTIPLE:
            raise ValueError(f"transformer: input {tuple(x.shape)} must be (N, 3, H, W) with H and W multiples "
                             f"of {MULTIPLE}, at least {2 * MULTIPLE}")
        if self.engine is not None:
            self.engine.forget()              # the weights may have changed in place (Adam) since the last pass
        caches, res_in = [], None
        for u in self.units:
            if u.name.endswith("_1"):
                res_in = x
            x, cache = self._unit_forward(u, x)
            if u.name.endswith("_2"):
                x = x + res_in                                      # the residual connection
            caches.append(cache)
        t = _xp(x).tanh(x)
        y = t * x.dtype.type(OUT_GAIN) + x.dtype.type(0.5)
        return y, (caches, t)

    def backward(self, dy, cache, input_grad=False):
        """dy (N, 3, H, W) -> (grads {parameter name: array shaped like it}, dx (N, 3, H, W) or None)."""
        caches, t = cache
        d = dy * (dy.dtype.type(OUT_GAIN) * (1 - t * t))           # through y = 0.5 + OUT_GAIN tanh(z)
        grads, d_skip = {}, None
        for idx in range(len(self.units) - 1, -1, -1):
            u = self.units[idx]
            if u.name.endswith("_2"):
                d_skip = d                                          # the skip path's gradient, added at _1's input
            d = self._unit_backward(u, d, caches[idx], grads, need_dx=idx > 0 or input_grad)
            if u.name.endswith("_1"):
                d = d + d_skip
        return grads, d


def _xp(a):
    from .backend import xp_of
    return xp_of(a)
