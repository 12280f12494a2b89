"""Keras VGG16/VGG19 weights (.h5, both `_W_1:0` and `kernel:0` naming) -> OIHW kernels; BGR 0-255 minus mean."""
import re

import numpy as np

from ..weights import WeightsError
from .common import build

LAYER = re.compile(r"block(\d)_conv(\d)$")
KERNEL = re.compile(r"(^|/|_)(kernel:0|W(_\d+)?:0)$")
BIAS = re.compile(r"(^|/|_)(bias:0|b(_\d+)?:0)$")


def _s(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def is_keras(f):
    """True when an open h5py.File looks like a Keras weights file."""
    return "layer_names" in f.attrs or ("model_weights" in f and "layer_names" in f["model_weights"].attrs)


def read(path, arch=None, conv="caffe"):
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path}: cannot read this HDF5 file ({e}); it is damaged or truncated, download it again") from None
    params = {}
    with f:
        g = f if "layer_names" in f.attrs else f["model_weights"]
        for lname in (_s(n) for n in g.attrs["layer_names"]):
            m = LAYER.match(lname)
            if not m:
                continue
            if lname not in g:
                raise WeightsError(f"{path}: Keras layer {lname} is listed but its group is missing; the file is damaged")
            lg = g[lname]
            wnames = [_s(n) for n in lg.attrs.get("weight_names", [])]
            kn = [n for n in wnames if KERNEL.search(n)]
            bn = [n for n in wnames if BIAS.search(n)]
            if len(kn) != 1 or len(bn) != 1:
                raise WeightsError(f"{path}: Keras layer {lname} has weights {wnames}; expected one kernel and one bias")
            try:
                k, b = lg[kn[0]][()], lg[bn[0]][()]          # k (KH, KW, I, O)
            except (KeyError, OSError) as e:
                raise WeightsError(f"{path}: Keras layer {lname}: cannot read its weights ({e}); the file is damaged") from None
            if k.ndim != 4:
                raise WeightsError(f"{path}: Keras layer {lname} kernel has shape {k.shape}, expected (KH, KW, I, O)")
            if k.shape[2:] == (3, 3) and k.shape[:2] != (3, 3):
                raise WeightsError(f"{path}: Keras layer {lname} kernel {k.shape} is in Theano order (th_kernels); "
                                   f"use the tf_dim_ordering_tf_kernels file")
            name = f"conv{m.group(1)}_{m.group(2)}"
            params[name] = (np.transpose(k, (3, 2, 0, 1)), b)  # (O, I, KH, KW)
    return build(path, params, conv, "Keras", arch)
