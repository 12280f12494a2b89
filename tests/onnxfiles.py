"""A tiny ONNX protobuf writer of our own (no onnx package): VGG graphs laid out like tf2onnx, the zoo and torch."""
import os

import numpy as np

import weightfiles as wf
from vggnumpy.nn import arch as archmod

FLOAT, INT64, FLOAT16, DOUBLE, BFLOAT16 = 1, 7, 10, 11, 16
# storage -> (data_type, how the values are written)
STORAGES = {"raw": (FLOAT, "raw"), "float": (FLOAT, "packed"), "float-unpacked": (FLOAT, "unpacked"),
            "double": (DOUBLE, "packed"), "double-unpacked": (DOUBLE, "unpacked"), "f16": (FLOAT16, "raw"),
            "f16-int32": (FLOAT16, "int32"), "bf16": (BFLOAT16, "raw"), "external": (FLOAT, "external"),
            "int64": (INT64, "raw")}

# ---------------------------------------------------------------- the wire format


# The protobuf writer the Caffe test files use: varint, field key, length-delimited, varint field, string field.
varint, key, ld, vi, st = wf._varint, wf._key, wf._ld, wf._vi, wf._s


def ints(num, values, packed):
    return ld(num, b"".join(varint(v) for v in values)) if packed else b"".join(vi(num, v) for v in values)


def unpacked_fixed(num, arr, size):
    """One field per value (key, then 4 or 8 little-endian bytes), built with NumPy."""
    a = np.ascontiguousarray(arr, dtype="<f4" if size == 4 else "<f8").reshape(-1)
    out = np.empty((a.size, size + 1), np.uint8)
    out[:, 0] = num << 3 | (5 if size == 4 else 1)
    out[:, 1:] = a.view(np.uint8).reshape(-1, size)
    return out.tobytes()


# ---------------------------------------------------------------- values as stored


def stored(arr, storage):
    """The float32 values a reader must get back from arr written with this storage (f16 and bf16 round)."""
    if storage == "int64":
        return np.asarray(arr, np.int64)
    a = np.asarray(arr, np.float32)
    if STORAGES[storage][0] == FLOAT16:
        return a.astype(np.float16).astype(np.float32)
    if STORAGES[storage][0] == BFLOAT16:
        return ((a.view(np.uint32) >> 16) << 16).view(np.float32)        # bf16 by truncation
    return a


def tensor(name, arr, storage="raw", dims=None, external=None, packed_dims=True):
    """TensorProto bytes; external = (location, offset, length) for storage "external" (the data is the caller's)."""
    a = stored(arr, storage)
    dtype, how = STORAGES[storage]
    dims = list(a.shape) if dims is None else list(dims)
    out = ints(1, dims, packed_dims) + vi(2, dtype)
    if how == "packed":
        out += ld(4, a.astype("<f4").tobytes()) if dtype == FLOAT else ld(10, a.astype("<f8").tobytes())
    elif how == "unpacked":
        out += unpacked_fixed(4, a, 4) if dtype == FLOAT else unpacked_fixed(10, a, 8)
    elif how == "int32":
        out += ints(5, a.astype("<f2").view("<u2").reshape(-1).tolist(), True)
    out += st(8, name)
    if how == "raw":
        out += ld(9, raw_bytes(a, dtype))
    if how == "external":
        loc, offset, length = external
        out += b"".join(ld(13, st(1, k) + st(2, str(v))) for k, v in
                        (("location", loc), ("offset", offset), ("length", length)))
        out += vi(14, 1)
    return out


def raw_bytes(a, dtype):
    if dtype == FLOAT16:
        return a.astype("<f2").tobytes()
    if dtype == BFLOAT16:
        return (a.view(np.uint32) >> 16).astype("<u2").tobytes()
    return np.asarray(a, {DOUBLE: "<f8", INT64: "<i8"}.get(dtype, "<f4")).tobytes()


def attribute(name, value, packed=False):
    """AttributeProto: int (type 2), float (1), str (3), TensorProto bytes (4), list of ints (7)."""
    if isinstance(value, bool) or isinstance(value, int):
        return st(1, name) + vi(3, value) + vi(20, 2)
    if isinstance(value, float):
        return st(1, name) + key(2, 5) + np.float32(value).tobytes() + vi(20, 1)
    if isinstance(value, str):
        return st(1, name) + st(4, value) + vi(20, 3)
    if isinstance(value, bytes):
        return st(1, name) + ld(5, value) + vi(20, 4)
    return st(1, name) + ints(8, list(value), packed) + vi(20, 7)


def value_info(name, dims=None, elem=FLOAT):
    """ValueInfoProto with a tensor type; str dims are symbolic (dim_param); dims None: shape unknown."""
    shape = b"" if dims is None else ld(2, b"".join(ld(1, st(2, d) if isinstance(d, str) else vi(1, d))
                                                    for d in dims))
    return st(1, name) + ld(2, ld(1, vi(1, elem) + shape))


# ---------------------------------------------------------------- a graph


class Graph:
    """Nodes, initializers, inputs and outputs in the order they are added; external data kept for write()."""

    def __init__(self, packed_ints=False, packed_dims=True):
        self.nodes, self.inits, self.inputs, self.outputs, self.side = [], [], [], [], {}
        self.packed_ints, self.packed_dims = packed_ints, packed_dims

    def init(self, name, arr, storage="raw", dims=None, location="weights.bin", as_input=False):
        external = None
        if storage == "external":
            data = self.side.setdefault(location, bytearray())
            raw = np.asarray(arr, "<f4").tobytes()
            external = (location, len(data), len(raw))
            data += raw
        self.inits.append(tensor(name, arr, storage, dims, external, self.packed_dims))
        if as_input:
            self.inputs.append(value_info(name, np.shape(arr)))
        return name

    def node(self, op, inputs, outputs, name="", **attrs):
        body = b"".join(st(1, x) for x in inputs) + b"".join(st(2, x) for x in outputs) + st(3, name or outputs[0])
        body += st(4, op) + b"".join(ld(5, attribute(k, v, self.packed_ints)) for k, v in attrs.items())
        self.nodes.append(body)
        return outputs[0]

    def model(self, producer="", version="", ir=7, opset=13):
        graph = b"".join(ld(1, n) for n in self.nodes) + st(2, "graph") + b"".join(ld(5, t) for t in self.inits)
        graph += b"".join(ld(11, v) for v in self.inputs) + b"".join(ld(12, v) for v in self.outputs)
        out = vi(1, ir) + (st(2, producer) if producer else b"") + (st(3, version) if version else b"")
        return out + ld(7, graph) + ld(8, st(1, "") + vi(2, opset))

    def write(self, path, **model):
        """The model at path and its external data files beside it."""
        with open(path, "wb") as f:
            f.write(self.model(**model))
        for loc, data in self.side.items():
            with open(os.path.join(os.path.dirname(path), loc), "wb") as f:
                f.write(data)


# ---------------------------------------------------------------- VGG layouts


PRODUCERS = {"tf2onnx": ("tf2onnx", "1.17.0 None"), "zoo": ("", ""), "torch": ("pytorch", "2.1.0"),
             "plain": ("someconverter", "0.1")}


def names(layout, arch, i, layer):
    """(weight, bias) initializer names of conv number i (layer conv{b}_{k}) in each exporter's style."""
    b, k = layer[4:].split("_")
    if layout == "tf2onnx":
        return (f"functional_1/block{b}_conv{k}_1/convolution/ReadVariableOp:0",
                f"functional_1/block{b}_conv{k}_1/Squeeze:0")
    if layout == "zoo":
        return f"vgg0_conv{i}_weight", f"vgg0_conv{i}_bias"
    if layout == "torch":
        pos = [n for n, _, _ in archmod.get_table(arch)].index(layer)
        return f"features.{pos}.weight", f"features.{pos}.bias"
    return f"w{i}", f"b{i}"


def vgg(params, arch="vgg16", layout="zoo", storage="raw", bias="input", bn=False, via=None, dims=None,
        attrs=None, location="weights.bin", side=32):
    """A VGG graph: input, the conv trunk from params (name -> (O, I, KH, KW), (O,)), a small classifier head.

    storage: one for all tensors or a dict layer -> storage (not FLOAT: a Cast to float follows, as real
    mixed-precision exports do); bias: input (Conv's third input), add (an Add after the Conv), none;
    via: None, constant (Constant nodes) or identity (an Identity between initializer and Conv); dims: layer ->
    declared weight dims; attrs: layer -> Conv attributes to override; side: the input's height and width.
    """
    g = Graph(packed_ints=layout == "zoo", packed_dims=layout != "zoo")
    x = _input(g, layout, side)
    conv_i, pool_i = 0, 0
    for layer, kind, _ in archmod.get_table(arch):
        if kind == "pool":
            x = g.node("MaxPool", [x], [f"pool{pool_i}"], kernel_shape=[2, 2], strides=[2, 2])
            pool_i += 1
        elif kind == "conv":
            s = storage.get(layer, "raw") if isinstance(storage, dict) else storage
            x = _conv(g, layout, arch, conv_i, layer, params[layer], x, s, bias, via, (dims or {}).get(layer),
                      (attrs or {}).get(layer, {}), location)
            if bn:
                o = params[layer][0].shape[0]
                stats = [g.init(f"bn{conv_i}_{n}", v) for n, v in
                         (("gamma", np.ones(o)), ("beta", np.zeros(o)), ("mean", np.zeros(o)), ("var", np.ones(o)))]
                x = g.node("BatchNormalization", [x] + stats, [f"bn{conv_i}"], epsilon=1e-5)
            conv_i += 1
        else:
            x = g.node("Relu", [x], [f"relu{conv_i - 1}"])
    g.outputs.append(value_info(x))           # the features, for onnxruntime checks
    _head(g, layout, x)
    return g


def _input(g, layout, side):
    if layout == "tf2onnx":
        g.inputs.append(value_info("input", ["unk__99", side, side, 3]))
        return g.node("Transpose", ["input"], ["input_nchw"], perm=[0, 3, 1, 2])
    g.inputs.append(value_info("data", [1, 3, side, side]))
    return "data"


def _conv(g, layout, arch, i, layer, wb, x, storage, bias, via, dims, attrs, location):
    w, b = wb
    wname, bname = names(layout, arch, i, layer)
    inputs = [x, _const(g, wname, w, storage, via, dims, location)]
    if bias == "input":
        inputs.append(_const(g, bname, b, storage, via, None, location))
    k = w.shape[2]
    conv_attrs = dict(dilations=[1, 1], strides=[1, 1], kernel_shape=[k, w.shape[3]], pads=[(k - 1) // 2] * 4,
                      group=1)
    conv_attrs.update(attrs)
    conv_attrs = {k: v for k, v in conv_attrs.items() if v is not None}      # None: leave the attribute out
    y = g.node("Conv", inputs, [f"conv{i}"], name=f"{layer}/Conv", **conv_attrs)
    if bias == "add":
        y = g.node("Add", [y, _const(g, bname, b.reshape(1, -1, 1, 1), storage, via, None, location)], [f"add{i}"])
    return y


def _const(g, name, arr, storage, via, dims, location):
    """An initializer (or a Constant node) holding arr, cast to float when stored otherwise; its value's name."""
    if via == "constant":
        t = tensor(name, arr, storage, dims)
        out = g.node("Constant", [], [name + "_const"], value=t)
    else:
        out = g.init(name, arr, storage, dims, location)
    if via == "identity":
        out = g.node("Identity", [out], [name + "_id"])
    if STORAGES[storage][0] != FLOAT:
        out = g.node("Cast", [out], [name + "_f32"], to=FLOAT)
    return out


def _head(g, layout, x):
    """A small classifier on the 1x1 pool5: tf2onnx's Transpose/Reshape/MatMul/folded batch norm, or Flatten/Gemm."""
    rng = np.random.default_rng(9)
    if layout == "tf2onnx":
        x = g.node("Transpose", [x], ["nhwc"], perm=[0, 2, 3, 1])
        x = g.node("Reshape", [x, g.init("shape", np.array([-1, 512]), "int64")], ["flat"])
        x = g.node("MatMul", [x, g.init("fc_w", rng.standard_normal((512, 4)))], ["mm"])
        x = g.node("Add", [x, g.init("fc_b", rng.standard_normal(4))], ["fc"])
        x = g.node("Relu", [x], ["fc_relu"])
        x = g.node("Mul", [x, g.init("bn_mul", rng.random(4) + 0.5)], ["bn_scaled"])
        x = g.node("Add", [x, g.init("bn_sub", rng.standard_normal(4))], ["bn"])
        y = g.node("Softmax", [x], ["dense_3"])
    else:
        x = g.node("Flatten", [x], ["flatten"])
        x = g.node("Gemm", [x, g.init("dense0_weight", rng.standard_normal((4, 512))),
                            g.init("dense0_bias", rng.standard_normal(4))], ["dense0"], transB=1)
        x = g.node("Relu", [x], ["dense0_relu"])
        x = g.node("Dropout", [x], ["dense0_drop"])
        y = g.node("Gemm", [x, g.init("dense1_weight", rng.standard_normal((3, 4))),
                            g.init("dense1_bias", rng.standard_normal(3))], ["dense1"], transB=1)
    g.outputs.insert(0, value_info(y))
