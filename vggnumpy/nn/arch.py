"""Network layer tables as data: VGG-19 and VGG-16 named as in the paper (conv1_1, relu1_1, pool1, ...), and NIN."""
from .kernels import output_size   # the window-size rule lives with the kernels; named here for the tables


# One row per layer: (name, type, params). Convs carry (in_ch, out_ch, kernel, stride, pad);
# pools carry (kernel, stride, ceil_mode[, pad]). ReLUs carry nothing.

def _vgg(blocks):
    """Build a VGG table from a list of (n_convs, channels) blocks."""
    layers, in_ch = [], 3
    for b, (n, ch) in enumerate(blocks, start=1):
        for i in range(1, n + 1):
            layers.append((f"conv{b}_{i}", "conv", dict(cin=in_ch, cout=ch, k=3, stride=1, pad=1)))
            layers.append((f"relu{b}_{i}", "relu", {}))
            in_ch = ch
        layers.append((f"pool{b}", "pool", dict(k=2, stride=2, ceil=False)))
    return layers


VGG19 = _vgg([(2, 64), (2, 128), (4, 256), (4, 512), (4, 512)])
VGG16 = _vgg([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)])


def _nin():
    """Network-in-Network (Lin et al. 2014, BVLC zoo nin_imagenet_conv) as jcjohnson uses it, with Caffe's names.

    The classifier's dropout (identity at inference), 6x6 global average pool and softmax are left out, as the
    VGG tables leave out the fully connected layers. Pools are 3x3/2 in Caffe's ceil mode.
    """
    rows = [("conv1", 3, 96, 11, 4, 0), ("relu0",), ("cccp1", 96, 96, 1, 1, 0), ("relu1",),
            ("cccp2", 96, 96, 1, 1, 0), ("relu2",), ("pool0",),
            ("conv2", 96, 256, 5, 1, 2), ("relu3",), ("cccp3", 256, 256, 1, 1, 0), ("relu5",),
            ("cccp4", 256, 256, 1, 1, 0), ("relu6",), ("pool2",),
            ("conv3", 256, 384, 3, 1, 1), ("relu7",), ("cccp5", 384, 384, 1, 1, 0), ("relu8",),
            ("cccp6", 384, 384, 1, 1, 0), ("relu9",), ("pool3",),
            ("conv4-1024", 384, 1024, 3, 1, 1), ("relu10",), ("cccp7-1024", 1024, 1024, 1, 1, 0), ("relu11",),
            ("cccp8-1024", 1024, 1000, 1, 1, 0), ("relu12",)]
    layers = []
    for row in rows:
        name = row[0]
        if len(row) > 1:
            _, cin, cout, k, stride, pad = row
            layers.append((name, "conv", dict(cin=cin, cout=cout, k=k, stride=stride, pad=pad)))
        elif name.startswith("relu"):
            layers.append((name, "relu", {}))
        else:
            layers.append((name, "pool", dict(k=3, stride=2, ceil=True, pad=0)))
    return layers


NIN = _nin()

ARCHS = {"vgg19": VGG19, "vgg16": VGG16, "nin": NIN}

# Defaults that every peer uses for VGG (jcjohnson, anishathalye, the paper).
DEFAULT_LAYERS = {
    "vgg19": dict(content=["relu4_2"], style=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]),
    "vgg16": dict(content=["relu4_2"], style=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]),
    # jcjohnson/neural-style's NIN choice.
    "nin": dict(content=["relu7"], style=["relu0", "relu3", "relu7", "relu12"]),
}


def get_table(arch):
    try:
        return ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHS))}") from None


def conv_layers(arch):
    """Names and shapes (O, I, KH, KW) of the conv layers of an architecture, in order."""
    return [(name, (p["cout"], p["cin"], p["k"], p["k"])) for name, kind, p in get_table(arch) if kind == "conv"]


def layer_names(arch):
    return [name for name, _, _ in get_table(arch)]


def feature_shapes(arch, height, width):
    """Map each layer name to its (C, H, W) for an input of height x width."""
    shapes, c, h, w = {}, 3, height, width
    for name, kind, p in get_table(arch):
        if kind == "conv":
            c = p["cout"]
            h = output_size(h, p["k"], p["stride"], p["pad"], False)
            w = output_size(w, p["k"], p["stride"], p["pad"], False)
        elif kind == "pool":
            h = output_size(h, p["k"], p["stride"], p.get("pad", 0), p["ceil"])
            w = output_size(w, p["k"], p["stride"], p.get("pad", 0), p["ceil"])
        shapes[name] = (c, h, w)
    return shapes


def min_input_size(arch, layers):
    """Smallest square input side for which every named layer has at least one pixel."""
    for side in range(1, 4096):
        shapes = feature_shapes(arch, side, side)
        if all(shapes[n][1] >= 1 and shapes[n][2] >= 1 for n in layers):
            return side
    raise ValueError(f"no input size fits layers {layers}")


def receptive(arch, layer):
    """(J, s, R) of `layer`: cumulative stride, offset of the first input pixel read, receptive field size."""
    j, s, r = 1, 0, 1
    for name, kind, p in get_table(arch):
        if kind in ("conv", "pool"):
            k, stride, pad = p["k"], p["stride"], p.get("pad", 0)
            s, r, j = s - pad * j, r + (k - 1) * j, j * stride
        if name == layer:
            return j, s, r
    raise ValueError(f"unknown layer {layer} for {arch}")
