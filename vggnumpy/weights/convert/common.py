"""Shared steps of every converter: conventions, architecture guess, a checked Weights, HDF5 reads kept in the file."""
import os

import numpy as np

from ...nn import arch as archmod
from ..file import CAFFE, MATCONVNET, TORCHVISION, Weights, check_params, sha256_file
from ..hdf5 import WeightsError

CONVENTIONS = {"caffe": CAFFE, "torchvision": TORCHVISION, "matconvnet": MATCONVNET}


def convention(value):
    """A convention dict from a name (caffe, torchvision, matconvnet) or a dict."""
    if isinstance(value, dict):
        return dict(value)
    try:
        return dict(CONVENTIONS[value])
    except KeyError:
        raise ValueError(f"unknown input convention {value!r}; choose {', '.join(CONVENTIONS)}") from None


def guess_arch(names):
    """vgg19, vgg16 or nin from the layer names a file holds (a vgg19 file missing one layer stays vgg19)."""
    names = set(names)
    if names & {"cccp1", "cccp7-1024", "conv4-1024"}:
        return "nin"
    if names & {"conv3_4", "conv4_4", "conv5_4"}:
        return "vgg19"
    return "vgg16"


def as_f32(a):
    return np.ascontiguousarray(np.asarray(a), dtype=np.float32)


def build(path, params, conv, fmt, arch=None, description=""):
    """Keep the conv layers of `arch` (guessed from the names), check them and wrap them with the convention."""
    if not params:
        raise WeightsError(f"{path}: a {fmt} file, but it holds no conv layers vggnumpy knows "
                           f"(VGG conv1_1..conv5_4 or NIN conv1..cccp8-1024)")
    arch = arch or guess_arch(params)
    archmod.get_table(arch)
    names = [n for n, _ in archmod.conv_layers(arch)]
    kept = {n: (as_f32(params[n][0]), as_f32(params[n][1]).reshape(-1)) for n in names if n in params}
    check_params(arch, kept, path)
    conv = convention(conv)
    base = os.path.basename(path)
    return Weights(arch=arch, params=kept, trained=True, source=base, source_sha256=sha256_file(path),
                   description=description or f"pretrained {arch} converted from {fmt} file {base}",
                   extra={"source_format": fmt}, **conv)


# ---------------------------------------------------------------- HDF5: read only inside the file named

