"""The one PyTorch build of our layer tables on our weights: the reference that benchmarks and tests compare against.

Used by jcjohnson.py (the peer recipe), common.torch_objective and bench_gpu.py, and by tests/test_torch.py
(tests/conftest.py puts this folder on the import path). torch is imported when a network is built, never by
vggnumpy itself.
"""
from vggnumpy.nn import arch as archmod


def trunk(weights, last, pooling="max"):
    """(names, modules) of weights' network from the input up to layer `last`, as torch.nn modules sharing copies
    of our float32 parameters, frozen (requires_grad False: only the input's gradient is ever wanted).

    pooling: "max" or "avg" for every pooling layer (AvgPool2d counts the padding, as ours does). Chain the
    modules with torch.nn.Sequential(*modules), or run them one by one to read named layers on the way.
    """
    import torch
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
    names, mods = [], []
    for name, kind, p in archmod.get_table(weights.arch):
        if kind == "conv":
            m = torch.nn.Conv2d(p["cin"], p["cout"], p["k"], p["stride"], p["pad"])
            w, b = weights.params[name]
            m.weight = torch.nn.Parameter(torch.from_numpy(w.copy()), requires_grad=False)
            m.bias = torch.nn.Parameter(torch.from_numpy(b.copy()), requires_grad=False)
        elif kind == "relu":
            m = torch.nn.ReLU()
        elif kind == "pool":
            cls = torch.nn.MaxPool2d if pooling == "max" else torch.nn.AvgPool2d
            m = cls(p["k"], p["stride"], p.get("pad", 0), ceil_mode=p["ceil"])
        else:
            raise ValueError(f"layer {name}: unknown type {kind}")
        names.append(name)
        mods.append(m)
        if name == last:
            return names, mods
    raise ValueError(f"{weights.arch} has no layer {last!r}")
