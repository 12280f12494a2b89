"""A VGG-style network run layer by layer: forward to the deepest named layer, backward from named layers to pixels."""
from functools import partial
from types import SimpleNamespace

import numpy as np

from . import arch as archmod
from .kernels import conv as np_conv, convgrad as np_convgrad, pool as np_pool, relu as np_relu
from .kernels.engine import Engine


FUSED = "fused into the conv before"       # the cache of a ReLU that ran inside its conv


class Network:
    """Holds the weights of one architecture and runs its layer table.

    forward(x, layers) -> (features, cache): x (N, 3, H, W) preprocessed input; features maps each asked
    layer name to its activation. backward(dfeatures, cache) -> dx: gradients at any set of named layers
    (dict name -> array shaped like the feature) give the gradient at the input.

    kernels: the per-backend kernel modules, dict(conv=, pool=, relu=) (the GPU backend passes its own; the
    maths around them is shared); None runs the NumPy kernels with this network's own engine.Engine, built from
    threads (None: $VGGNUMPY_THREADS or the usable cores, read once here) and way (None, or a stride-1
    convolution routine forced on every layer: tests and benchmarks).
    """

    def __init__(self, weights, pooling="max", kernels=None, threads=None, way=None):
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.weights = weights
        self.arch = weights.arch
        self.table = archmod.get_table(weights.arch)
        self.pooling = pooling
        if kernels:
            if threads is not None or way is not None:
                raise ValueError("threads and way set the NumPy kernels' engine; they do not apply to kernels=")
            self.engine, self.k = None, kernels
        else:
            self.engine = Engine(threads, way)
            self.k = cpu_kernels(self.engine)
        self._params = {}          # dtype -> {name: (w, b)} cast once

    def params(self, dtype, xp=np):
        key = (np.dtype(dtype).str, xp.__name__)
        if key not in self._params:
            self._params[key] = {n: (xp.asarray(w, dtype=dtype), xp.asarray(b, dtype=dtype))
                                 for n, (w, b) in self.weights.params.items()}
        return self._params[key]

    def _deepest(self, layers):
        names = archmod.layer_names(self.arch)
        unknown = [name for name in layers if name not in names]
        if unknown:
            raise ValueError(f"unknown layer(s) {', '.join(unknown)} for {self.arch}; "
                             f"layers are {', '.join(names)}")
        return max(names.index(name) for name in layers)

    def forward(self, x, layers):
        """x (N, 3, H, W) -> ({name: (N, C, h, w)}, cache)."""
        layers = list(layers)
        last = self._deepest(layers)
        wanted = set(layers)
        params = self.params(x.dtype, _xp(x))
        # A conv followed by its ReLU runs as one fused kernel when the backend has one and the conv's own
        # output is not asked for: the ReLU's slot then holds FUSED, and the conv's cache holds the mask.
        fused_fwd = getattr(self.k["conv"], "forward_relu", None)
        feats, caches, h, fused = {}, [], x, set()
        for idx, (name, kind, p) in enumerate(self.table[:last + 1]):
            if idx in fused:
                cache = FUSED                     # this ReLU already ran inside the conv before it
            elif kind == "conv":
                w, b = params[name]
                if (fused_fwd is not None and name not in wanted and idx + 1 <= last
                        and self.table[idx + 1][1] == "relu"):
                    h, cache = fused_fwd(h, w, b, p["stride"], p["pad"])
                    fused.add(idx + 1)
                else:
                    h, cache = self.k["conv"].forward(h, w, b, p["stride"], p["pad"])
            elif kind == "relu":
                # In place unless the conv output itself was asked for: backward needs only the ReLU output.
                prev = self.table[idx - 1][0] if idx else None
                h, cache = self.k["relu"].forward(h, inplace=prev not in wanted)
            elif kind == "pool":
                h, cache = self.k["pool"].forward(h, p["k"], p["stride"], p.get("pad", 0), p["ceil"],
                                                  mode=self.pooling)
            else:
                raise ValueError(f"layer {name}: unknown type {kind}")
            caches.append(cache)
            if name in wanted:
                # No copy needed: an asked-for conv output is followed by an out-of-place ReLU (above), and no
                # kernel writes into its input otherwise.
                feats[name] = h
        return feats, (caches, last)

    def backward(self, dfeats, cache):
        """{name: (N, C, h, w)} -> dx (N, 3, H, W)."""
        caches, last = cache
        names = [n for n, _, _ in self.table]
        start = max(names.index(n) for n in dfeats)
        dh, owned = None, False       # owned: dh is a kernel's fresh output, not one of the caller's arrays
        for idx in range(start, -1, -1):
            name, kind, _ = self.table[idx]
            if name in dfeats:
                if idx + 1 < len(caches) and caches[idx + 1] is FUSED:
                    raise ValueError(f"{name} was not asked for in forward, so its gradient cannot be taken")
                d = dfeats[name]
                if dh is None:
                    dh, owned = d, False
                elif owned and dh.shape == d.shape and dh.dtype == np.result_type(dh.dtype, d.dtype):
                    dh += d                          # into the kernel's own output: no new layer-sized array
                else:
                    dh, owned = dh + d, True
            if dh is None or caches[idx] is FUSED:   # a fused ReLU's backward happens in its conv's backward
                continue
            dh, owned = self.k[kind].backward(dh, caches[idx]), True
        return dh


def cpu_kernels(engine):
    """The NumPy kernels with `engine` bound, in the interface gpu.kernels.build gives the GPU's."""
    return dict(conv=SimpleNamespace(forward=partial(np_conv.forward, engine=engine),
                                     forward_relu=partial(np_conv.forward_relu, engine=engine),
                                     backward=partial(np_conv.backward, engine=engine),
                                     weights=np_convgrad.weights),
                pool=SimpleNamespace(forward=partial(np_pool.forward, engine=engine),
                                     backward=partial(np_pool.backward, engine=engine)),
                relu=np_relu)


def _xp(a):
    from .backend import xp_of
    return xp_of(a)
