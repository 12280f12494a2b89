"""Torch state dict keys -> our layer names: torchvision `features.N`, paper names `conv1_1.weight`, PG's NIN."""
import re

from ...nn import arch as archmod
from ..hdf5 import WeightsError
from .common import build

FEATURE = re.compile(r"^(?:module\.)?features\.(\d+)\.(weight|bias)$")
NAMED = re.compile(r"^(?:module\.)?([a-z]+\d+(?:_\d+)?(?:-1024)?)\.(weight|bias)$")
# ProGamerGov's nin_imagenet.pth: a Sequential with a Dropout before conv4-1024 (BGR, Caffe convention).
NIN_FEATURES = [0, 2, 4, 7, 9, 11, 14, 16, 18, 22, 24, 26]


def _positions(arch):
    """torchvision's Sequential index of each conv: its row in our table (conv, relu, pool each take one)."""
    return {i: name for i, (name, kind, _) in enumerate(archmod.get_table(arch)) if kind == "conv"}


def keep(key):
    """Which keys a converter needs (skips the 400 MB classifier)."""
    return bool(FEATURE.match(key) or NAMED.match(key))


def convert(path, sd, arch=None, conv=None, fmt="torch .pth"):
    if any(k.endswith("running_mean") for k in sd):
        raise WeightsError(f"{path}: a batch-normalised VGG (vgg19_bn); "
                           f"vggnumpy runs the plain VGG, use vgg19-dcbb9e9d.pth")
    feats = {}
    for k, v in sd.items():
        m = FEATURE.match(k)
        if m:
            feats.setdefault(int(m.group(1)), {})[m.group(2)] = v
    if feats:
        idx = set(feats)
        nin = dict(zip(NIN_FEATURES, (n for n, _ in archmod.conv_layers("nin"))))
        first = feats.get(0, {}).get("weight")
        if arch is None:
            if first is not None and first.ndim == 4 and first.shape[-1] == 11:
                arch = "nin"
            else:
                arch = "vgg19" if max(idx) > 28 else "vgg16"
        table = nin if arch == "nin" else _positions(arch)
        default = "caffe" if arch == "nin" else "torchvision"
        stray = sorted(idx - set(table))
        if stray:
            raise WeightsError(f"{path}: features.{stray[0]} is not a conv layer of {arch} "
                               f"(convs are at {sorted(table)}); not a torchvision {arch} file")
        params = {}
        for i, name in table.items():
            if i in feats:
                if "weight" not in feats[i] or "bias" not in feats[i]:
                    raise WeightsError(f"{path}: features.{i} ({name}) lacks its weight or bias")
                params[name] = (feats[i]["weight"], feats[i]["bias"])
        return build(path, params, conv or default, f"{fmt} (features.N)", arch)
    named = {}
    for k, v in sd.items():
        m = NAMED.match(k)
        if m:
            named.setdefault(m.group(1), {})[m.group(2)] = v
    params = {n: (d["weight"], d["bias"]) for n, d in named.items() if "weight" in d and "bias" in d}
    if not params:
        shown = ", ".join(list(sd)[:6]) or "none"
        raise WeightsError(f"{path}: a torch state dict without VGG conv layers (keys: {shown}); "
                           f"expected torchvision's features.N.weight or conv1_1.weight")
    # Paper-named files (Gatys' vgg_conv.pth) come from Caffe: BGR, 0-255, minus the ImageNet mean.
    return build(path, params, conv or "caffe", f"{fmt} (paper layer names)", arch)
