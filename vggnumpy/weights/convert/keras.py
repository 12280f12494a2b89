"""Keras VGG16/VGG19 weights (.h5, both `_W_1:0` and `kernel:0` naming) -> OIHW kernels; BGR 0-255 minus mean."""
import re

import numpy as np

from ...nn import arch as archmod
from ..hdf5 import WeightsError
from .common import build
from ..hdf5 import h5_dataset, h5_get, h5_values

LAYER = re.compile(r"block(\d)_conv(\d)$")
KERNEL = re.compile(r"(^|/|_)(kernel:0|W(_\d+)?:0)$")
BIAS = re.compile(r"(^|/|_)(bias:0|b(_\d+)?:0)$")


def _s(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def is_keras(f, path=None):
    """True when an open h5py.File looks like a Keras weights file; WeightsError when model_weights leads elsewhere."""
    if "layer_names" in f.attrs:
        return True
    g = h5_get(path or f.filename, f, "model_weights")
    return g is not None and "layer_names" in g.attrs


def _datasets(path, g, arch):
    """conv name -> (kernel, bias) datasets of the Keras layers in g, each checked by h5_dataset (nothing read)."""
    shapes = dict(archmod.conv_layers(arch or "vgg19"))      # VGG16's convs have VGG19's shapes under the same names
    found = {}
    for lname in (_s(n) for n in g.attrs["layer_names"]):
        m = LAYER.match(lname)
        name = f"conv{m.group(1)}_{m.group(2)}" if m else None
        if name not in shapes:
            continue
        lg = h5_get(path, g, lname)
        if lg is None:
            raise WeightsError(f"{path}: Keras layer {lname} is listed but its group is missing; the file is damaged")
        wnames = [_s(n) for n in lg.attrs.get("weight_names", [])]
        kn = [n for n in wnames if KERNEL.search(n)]
        bn = [n for n in wnames if BIAS.search(n)]
        if len(kn) != 1 or len(bn) != 1:
            raise WeightsError(f"{path}: Keras layer {lname} has weights {wnames}; expected one kernel and one bias")
        k, b = h5_get(path, lg, kn[0]), h5_get(path, lg, bn[0])
        if k is None or b is None:
            raise WeightsError(f"{path}: Keras layer {lname}: its weights {wnames} are missing; the file is damaged")
        o, i, kh, kw = shapes[name]
        kshape = getattr(k, "shape", None)
        if kshape and len(kshape) == 4 and kshape[2:] == (kh, kw) and kshape[:2] != (kh, kw):
            raise WeightsError(f"{path}: Keras layer {lname} kernel {kshape} is in Theano order (th_kernels); "
                               f"use the tf_dim_ordering_tf_kernels file")
        found[name] = (h5_dataset(path, k, (kh, kw, i, o)), h5_dataset(path, b, (o,)))
    return found


def read(path, arch=None, conv="caffe"):
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path}: cannot read this HDF5 file ({e}); "
                           f"it is damaged or truncated, download it again") from None
    with f:
        g = f if "layer_names" in f.attrs else h5_get(path, f, "model_weights")
        if g is None or "layer_names" not in g.attrs:
            raise WeightsError(f"{path}: an HDF5 file without Keras' layer_names; not a Keras weights file")
        found = _datasets(path, g, arch)
        params = {n: (np.transpose(h5_values(path, k), (3, 2, 0, 1)), h5_values(path, b))   # (KH, KW, I, O) -> OIHW
                  for n, (k, b) in found.items()}
    return build(path, params, conv, "Keras", arch)
