"""ONNX exports of VGG16/VGG19 (tf2onnx/Keras, the ONNX zoo, torch.onnx) -> OIHW kernels, without the onnx package."""
import mmap
import os
import re
import struct
from collections import namedtuple

import numpy as np

from ...nn import arch as archmod
from ..hdf5 import WeightsError
from . import protowire as pw
from .common import build

# ModelProto fields and their wire types: ir_version, producer_name, producer_version, domain, model_version,
# doc_string, graph, opset_import, metadata_props, training_info, functions.
MODEL_FIELDS = {1: pw.VARINT, 2: pw.LEN, 3: pw.LEN, 4: pw.LEN, 5: pw.VARINT, 6: pw.LEN, 7: pw.LEN, 8: pw.LEN,
                14: pw.LEN, 20: pw.LEN, 25: pw.LEN}
GRAPH_FIELDS = {1, 2, 5, 10, 11, 12, 13, 14, 15, 16}   # node, name, initializer, doc, input, output, value_info, ...
FLOAT16, BFLOAT16 = 10, 16
# data_type -> (dtype of its raw_data, the typed field that holds it otherwise: float_data 4, int32_data 5, double 10)
DTYPES = {1: ("<f4", 4), FLOAT16: ("<f2", 5), 11: ("<f8", 10), BFLOAT16: ("<u2", 5)}
UNPACKED = {0x25: 4, 0x51: 8}       # one-byte keys of unpacked float_data (4, fixed32) and double_data (10, fixed64)
TRUNK_OPS = {"Transpose", "Conv", "Relu", "MaxPool", "AveragePool", "Identity", "Constant", "Add", "Dropout", "Cast"}
PASS_OPS = ("Identity", "Dropout", "Cast")
COUNTS = {13: "vgg16", 16: "vgg19"}
KERAS = re.compile(r"block\d+_conv\d+")
ZOO = re.compile(r"^vgg\d+_conv\d+_weight$")
TORCH = re.compile(r"(^|\.)features\.\d+\.weight$")

Node = namedtuple("Node", "op name inputs outputs attrs")
Attr = namedtuple("Attr", "i f s t ints")
Tensor = namedtuple("Tensor", "name dims dtype raw data external location")
Run = namedtuple("Run", "begin end key")            # unpacked fixed-width values: key, value, key, value, ...


def looks_like(buf):
    """Cheap content test: ModelProto's ir_version (field 1, a varint), then only ModelProto's fields up to the
    graph (field 7), whose first field is a GraphProto's.

    Caffe's NetParameter, the other protobuf format, has a string in field 1 and a varint in field 7. A truncated or
    damaged graph still counts as ONNX, so that the reader names the problem.
    """
    pos, end, version = 0, len(buf), False
    try:
        for _ in range(64):
            if pos >= end:
                return False
            key, after = pw.varint(buf, pos, end)
            num, wt = key >> 3, key & 7
            if MODEL_FIELDS.get(num) != wt:
                return False
            if num == 7:
                n, body = pw.varint(buf, after, end)
                return version and _graph_start(buf, body, min(body + n, end))
            _, _, _, pos = pw.field(buf, pos, end)
            version = version or num == 1
    except pw.WireError:
        return False
    return False


def _graph_start(buf, pos, end):
    """The graph is empty or its first field is a GraphProto's (the rest may be damaged: the reader says so)."""
    if pos >= end:
        return True
    key, _ = pw.varint(buf, pos, end)
    return key & 7 == pw.LEN and key >> 3 in GRAPH_FIELDS


def read(path, arch=None, conv=None):
    """The conv layers of an ONNX VGG as a checked Weights; conv (a convention name) overrides the guessed one."""
    with open(path, "rb") as f:
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise WeightsError(f"{path}: empty file") from None
    try:
        return _convert(path, mm, arch, conv)
    except pw.WireError as e:
        raise WeightsError(f"{path}: damaged ONNX protobuf ({e}); the file is truncated or corrupt, "
                           f"export or download it again") from None
    finally:
        try:
            mm.close()
        except BufferError:
            pass


def _convert(path, buf, arch, conv):
    producer, version, span = _model(path, buf)
    g = _Graph(buf, span)
    convs = [i for i, n in enumerate(g.nodes) if n.op == "Conv"]
    if not convs:
        raise WeightsError(f"{path}: an ONNX model without Conv nodes; not a VGG (vggnumpy reads ONNX exports of "
                           f"VGG16 and VGG19)")
    _check_trunk(path, g, convs)
    arch = _arch(path, len(convs), arch)
    folder = os.path.dirname(os.path.abspath(path))
    params, names = {}, []
    for (layer, _), i in zip(archmod.conv_layers(arch), convs):
        w, b, name = _conv_params(path, buf, g, i, folder)
        params[layer] = (w, b)                                  # (O, I, 3, 3), (O,)
        names.append(name)
    conv = conv or _convention(path, g, producer, names)
    version = re.sub(r"\s+None$", "", version)              # tf2onnx writes "1.17.0 None" (no git hash)
    origin = f" ({' '.join(x for x in (producer, version) if x)})" if producer else ""
    base = os.path.basename(path)
    return build(path, params, conv, "ONNX", arch,
                 description=f"pretrained {arch} converted from ONNX file {base}{origin}")


def _model(path, buf):
    """(producer_name, producer_version, span of the graph) of the ModelProto in buf."""
    producer = version = ""
    graph = None
    for num, wt, v in pw.fields(buf, 0, len(buf)):
        if wt != pw.LEN:
            continue
        if num == 2:
            producer = pw.string(buf, v)
        elif num == 3:
            version = pw.string(buf, v)
        elif num == 7:
            graph = v
    if graph is None:
        raise WeightsError(f"{path}: an ONNX model without a graph; export the network again")
    return producer, version, graph


# ------------------------------------------------------------------ the protobuf messages


class _Graph:
    """A GraphProto's nodes in graph order, who produces and who consumes each value, initializers by name."""

    def __init__(self, buf, span):
        self.nodes, self.inits, self.inputs = [], {}, set()
        for num, wt, v in pw.fields(buf, *span):
            if wt != pw.LEN:
                continue
            if num == 1:
                self.nodes.append(_node(buf, v))
            elif num == 5:
                t = _tensor(buf, v)
                self.inits[t.name] = t
            elif num == 11:
                self.inputs.add(next((pw.string(buf, u) for f, fwt, u in pw.fields(buf, *v)
                                      if f == 1 and fwt == pw.LEN), ""))
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.outputs if o}
        self.consumers = {}
        for i, n in enumerate(self.nodes):
            for x in n.inputs:
                if x:
                    self.consumers.setdefault(x, []).append(i)

    def constant(self, name):
        """The Tensor behind a value (an initializer, or a Constant node's value, through Identity/Cast); None if
        it is computed."""
        for _ in range(len(self.nodes) + 1):
            if name in self.inits:
                return self.inits[name]
            i = self.producer.get(name)
            if i is None:
                return None
            n = self.nodes[i]
            if n.op == "Constant":
                return n.attrs["value"].t if "value" in n.attrs else None
            if n.op not in ("Identity", "Cast") or not n.inputs:
                return None
            name = n.inputs[0]
        return None

    def where(self, i):
        n = self.nodes[i]
        return f"{n.op} node {n.name or (n.outputs[0] if n.outputs else i)!r}"


def _signed(v):
    """An int64 from its varint (negative values take ten bytes, two's complement)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _node(buf, span):
    op, name, inputs, outputs, attrs = "", "", [], [], {}
    for num, wt, v in pw.fields(buf, *span):
        if wt != pw.LEN:
            continue
        if num == 1:
            inputs.append(pw.string(buf, v))
        elif num == 2:
            outputs.append(pw.string(buf, v))
        elif num == 3:
            name = pw.string(buf, v)
        elif num == 4:
            op = pw.string(buf, v)
        elif num == 5:
            key, attr = _attr(buf, v)
            attrs[key] = attr
    return Node(op, name, inputs, outputs, attrs)


def _attr(buf, span):
    """(name, Attr) of an AttributeProto: i, f, s, t and ints (packed or not) are the ones a VGG uses."""
    name, i, f, s, t, ints = "", None, None, None, None, []
    for num, wt, v in pw.fields(buf, *span):
        if num == 1 and wt == pw.LEN:
            name = pw.string(buf, v)
        elif num == 2 and wt == pw.I32:
            f = struct.unpack("<f", bytes(buf[v[0]:v[1]]))[0]
        elif num == 3 and wt == pw.VARINT:
            i = _signed(v)
        elif num == 4 and wt == pw.LEN:
            s = pw.string(buf, v)
        elif num == 5 and wt == pw.LEN:
            t = _tensor(buf, v)
        elif num == 8:
            ints += [_signed(x) for x in (pw.packed_varints(buf, v) if wt == pw.LEN else [v])]
    return name, Attr(i, f, s, t, ints)


def _tensor(buf, span):
    """A TensorProto's header: name, dims, data_type, and where its values are (nothing is read yet).

    data maps a typed field (4 float_data, 5 int32_data, 10 double_data) to its chunks: (begin, end) spans of packed
    runs, Runs of unpacked fixed-width values, ints of single unpacked varints.
    """
    name, dims, dtype, raw, data, external, location = "", [], 0, None, {}, {}, 0
    pos, end = span
    while pos < end:
        key = buf[pos]
        if key in UNPACKED:                                 # one float per field: skip the whole run at once
            stop = _run_end(buf, pos, end, key, UNPACKED[key])
            data.setdefault(4 if key == 0x25 else 10, []).append(Run(pos, stop, key))
            pos = stop
            continue
        num, wt, v, pos = pw.field(buf, pos, end)
        if num == 1:
            dims += [_signed(x) for x in (pw.packed_varints(buf, v) if wt == pw.LEN else [v])]
        elif num == 2 and wt == pw.VARINT:
            dtype = v
        elif (num in (4, 10) and wt == pw.LEN) or (num == 5 and wt in (pw.LEN, pw.VARINT)):
            data.setdefault(num, []).append(v)
        elif num == 8 and wt == pw.LEN:
            name = pw.string(buf, v)
        elif num == 9 and wt == pw.LEN:
            raw = v
        elif num == 13 and wt == pw.LEN:
            entry = {f: pw.string(buf, u) for f, fwt, u in pw.fields(buf, *v) if fwt == pw.LEN}
            external[entry.get(1, "")] = entry.get(2, "")
        elif num == 14 and wt == pw.VARINT:
            location = v
    return Tensor(name, dims, dtype, raw, data, external, location)


def _run_end(buf, pos, end, key, size):
    """Where a run of unpacked fields with the one-byte key ends; only their keys are looked at, a block at a time."""
    step, block = size + 1, 1 << 20
    raw = np.frombuffer(buf, dtype=np.uint8, count=end - pos, offset=pos)
    keys = raw[:(len(raw) // step) * step:step]             # a view: one byte a field
    for first in range(0, len(keys), block):
        bad = np.flatnonzero(keys[first:first + block] != key)
        if bad.size:
            return pos + (first + int(bad[0])) * step
    return pos + len(keys) * step


# ------------------------------------------------------------------ a plain VGG, and nothing else


def _check_trunk(path, g, convs):
    """Every node the last Conv depends on is a VGG op, and a Relu follows it: no batch norm, no residual Add."""
    todo, seen = [convs[-1]], set()
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        _check_node(path, g, i)
        todo += [g.producer[x] for x in g.nodes[i].inputs if x in g.producer]
    out = g.nodes[convs[-1]].outputs[0]
    for _ in range(len(g.nodes)):
        users = [g.nodes[u] for u in g.consumers.get(out, [])]
        if not users or any(n.op == "Relu" for n in users):
            return
        if len(users) == 1 and users[0].op in PASS_OPS + ("Add", "BatchNormalization"):
            _check_node(path, g, g.consumers[out][0])
            out = users[0].outputs[0]
            continue
        raise WeightsError(f"{path}: not a plain VGG: the last Conv is followed by {', '.join(n.op for n in users)} "
                           f"instead of a Relu; vggnumpy reads VGG16/VGG19 made of Conv, Relu and pooling")


def _check_node(path, g, i):
    n, where = g.nodes[i], g.where(i)
    if n.op == "BatchNormalization":
        raise WeightsError(f"{path}: a batch-normalised VGG ({where}); vggnumpy runs the plain VGG: use a plain "
                           f"VGG16/VGG19 export (e.g. the ONNX zoo's vgg16-7.onnx, not vgg16-bn-7.onnx)")
    if n.op not in TRUNK_OPS:
        raise WeightsError(f"{path}: not a plain VGG: its conv layers pass through {where}; vggnumpy reads "
                           f"VGG16/VGG19 made of Conv, Relu and pooling only")
    if n.op == "Transpose" and (not n.inputs or n.inputs[0] not in g.inputs):
        raise WeightsError(f"{path}: not a plain VGG: {where} inside the conv layers (only one at the input, "
                           f"NHWC to NCHW, is expected)")
    if n.op == "Add":
        computed = [x for x in n.inputs if g.constant(x) is None]
        source = g.nodes[g.producer[computed[0]]].op if len(computed) == 1 and computed[0] in g.producer else None
        if source not in ("Conv", "Add"):
            raise WeightsError(f"{path}: not a plain VGG: {where} is not a conv bias (a residual connection, or "
                               f"preprocessing inside the model); vggnumpy reads VGG16/VGG19 made of Conv, Relu "
                               f"and pooling only")
    if n.op in ("MaxPool", "AveragePool"):
        _check_pool(path, n, where)


def _ints(n, key, default):
    a = n.attrs.get(key)
    return list(a.ints) if a is not None and a.ints else list(default)


def _check_pool(path, n, where):
    k, s, p = _ints(n, "kernel_shape", ()), _ints(n, "strides", (1, 1)), _ints(n, "pads", (0, 0, 0, 0))
    if k != [2, 2] or s != [2, 2] or any(p):
        raise WeightsError(f"{path}: not a plain VGG: {where} has kernel {k}, strides {s}, pads {p}; a VGG pool is "
                           f"2x2 with stride 2 and no padding")


def _check_conv(path, n, dims, where):
    """3x3, stride 1, pad 1 (or auto_pad SAME), dilation 1, group 1: else 'not a plain VGG', saying what differs."""
    k = _ints(n, "kernel_shape", dims[2:])
    strides, dilations = _ints(n, "strides", (1, 1)), _ints(n, "dilations", (1, 1))
    group = n.attrs["group"].i if "group" in n.attrs and n.attrs["group"].i is not None else 1
    auto = n.attrs["auto_pad"].s if "auto_pad" in n.attrs and n.attrs["auto_pad"].s else "NOTSET"
    pads = _ints(n, "pads", (0, 0, 0, 0))
    wrong = []
    if k != [3, 3] or list(dims[2:]) != [3, 3]:
        wrong.append(f"kernel {k} (weight {tuple(dims)})")
    if any(s != 1 for s in strides):
        wrong.append(f"strides {strides}")
    if any(d != 1 for d in dilations):
        wrong.append(f"dilations {dilations}")
    if group != 1:
        wrong.append(f"group {group}")
    if auto not in ("SAME_UPPER", "SAME_LOWER") and (auto != "NOTSET" or pads != [1, 1, 1, 1]):
        wrong.append(f"auto_pad {auto}" if auto != "NOTSET" else f"pads {pads}")
    if wrong:
        raise WeightsError(f"{path}: not a plain VGG: {where} has {', '.join(wrong)}; a VGG conv is 3x3 with "
                           f"stride 1, pad 1, dilation 1 and group 1")


def _arch(path, count, arch):
    """vgg16 (13 convs) or vgg19 (16) from the number of Conv nodes; arch, when given, must have that many."""
    if arch is not None:
        if arch not in COUNTS.values():
            raise WeightsError(f"{path}: vggnumpy reads vgg16 and vgg19 from ONNX files, not {arch}")
        want = len(archmod.conv_layers(arch))
        if count != want:
            raise WeightsError(f"{path}: an ONNX model with {count} Conv nodes, but {arch} has {want}")
        return arch
    if count not in COUNTS:
        raise WeightsError(f"{path}: an ONNX model with {count} Conv nodes; a VGG16 has 13 and a VGG19 16, so this "
                           f"is not a VGG vggnumpy can use")
    return COUNTS[count]


def _convention(path, g, producer, names):
    """caffe for tf2onnx/Keras exports (BGR 0-255), torchvision for the zoo's and torch's names; else ask."""
    nhwc = any(n.op == "Transpose" and n.inputs and n.inputs[0] in g.inputs and _ints(n, "perm", ()) == [0, 3, 1, 2]
               for n in g.nodes)
    if producer.lower() in ("tf2onnx", "keras2onnx") or nhwc or any(KERAS.search(x) for x in names):
        return "caffe"
    if any(ZOO.match(x) or TORCH.search(x) for x in names):
        return "torchvision"
    raise WeightsError(f"{path}: an ONNX VGG of unknown origin (producer {producer!r}, first weight {names[0]!r}); "
                       f"its input convention cannot be told: pass --convention caffe (Keras, Caffe: BGR 0-255 "
                       f"minus mean) or --convention torchvision (RGB, ImageNet mean/std)")


# ------------------------------------------------------------------ values


def _conv_params(path, buf, g, i, folder):
    """(kernel (O, I, 3, 3), bias (O,), the weight's name) of the Conv node at index i."""
    n, where = g.nodes[i], g.where(i)
    wt = g.constant(n.inputs[1]) if len(n.inputs) > 1 else None
    if wt is None:
        raise WeightsError(f"{path}: the weight of {where} is not stored in the model (computed at run time); "
                           f"export it again with constant folding")
    if len(wt.dims) != 4:
        raise WeightsError(f"{path}: the weight of {where} has shape {tuple(wt.dims)}, expected (O, I, KH, KW)")
    _check_conv(path, n, wt.dims, where)
    w = _values(path, buf, wt, folder)                      # (O, I, KH, KW)
    biases = [g.constant(n.inputs[2])] if len(n.inputs) > 2 and n.inputs[2] else []
    if biases and biases[0] is None:
        raise WeightsError(f"{path}: the bias of {where} is not stored in the model (computed at run time)")
    out = n.outputs[0]
    while len(g.consumers.get(out, [])) == 1 and g.nodes[g.consumers[out][0]].op == "Add":
        add = g.nodes[g.consumers[out][0]]                  # a bias added after the Conv
        consts = [g.constant(x) for x in add.inputs if x != out]
        if len(consts) != 1 or consts[0] is None:
            break
        biases.append(consts[0])
        out = add.outputs[0]
    b = np.zeros(wt.dims[0], np.float32)                    # (O,)
    for t in biases:
        v = _values(path, buf, t, folder).reshape(-1)
        if v.size != wt.dims[0]:
            raise WeightsError(f"{path}: the bias {t.name!r} of {where} has {v.size} values for {wt.dims[0]} "
                               f"output channels")
        b = b + v
    return w, b, wt.name or n.inputs[1]


def _values(path, buf, t, folder):
    """The float32 array of a Tensor; its byte count is checked against its dims before anything is allocated."""
    if t.dtype not in DTYPES:
        raise WeightsError(f"{path}: tensor {t.name!r} has ONNX data type {t.dtype}; vggnumpy reads FLOAT, FLOAT16, "
                           f"BFLOAT16 and DOUBLE weights (a quantised model cannot be used)")
    code, typed = DTYPES[t.dtype]
    dt = np.dtype(code)
    if any(d < 0 for d in t.dims):
        raise WeightsError(f"{path}: tensor {t.name!r} has negative dims {tuple(t.dims)}; the file is damaged")
    count = int(np.prod(t.dims, dtype=object)) if t.dims else 1  # Python ints: no overflow
    if t.location == 1 or t.external:
        a = _external(path, folder, t, dt, count)
    elif t.raw is not None:
        _expect(path, t, count, dt.itemsize, t.raw[1] - t.raw[0], "raw_data")
        a = np.frombuffer(buf, dtype=dt, count=count, offset=t.raw[0]).copy()
    else:
        a = _typed(path, buf, t, typed, count)
    if t.dtype == BFLOAT16:
        a = (a.astype("<u4") << 16).view("<f4")
    elif t.dtype == FLOAT16 and a.dtype.kind in "iu":
        a = a.astype("<u2").view("<f2")                      # FLOAT16 bit patterns in int32_data
    return a.astype(np.float32, copy=False).reshape(t.dims)


def _expect(path, t, count, itemsize, have, where):
    want = count * itemsize
    if want != have:
        raise WeightsError(f"{path}: tensor {t.name!r} declares shape {tuple(t.dims)} ({count:,} values, "
                           f"{want:,} bytes) but its {where} holds {have:,} bytes; the file is damaged or not a "
                           f"complete export")


def _typed(path, buf, t, field, count):
    """Values of float_data (4), double_data (10) or int32_data (5), packed or not, their number checked first."""
    chunks = t.data.get(field, [])
    if field == 5:
        values = []
        for c in chunks:
            values += pw.packed_varints(buf, c) if isinstance(c, tuple) else [c]
            if len(values) > count:
                break
        _expect(path, t, count, 1, len(values), "int32_data")
        return np.array(values, dtype=np.uint32)
    size = 4 if field == 4 else 8
    n = sum((c.end - c.begin) // (size + 1) if isinstance(c, Run) else (c[1] - c[0]) // size for c in chunks)
    _expect(path, t, count, size, n * size, "float_data" if field == 4 else "double_data")
    parts = [pw.unpacked_run(buf, c.begin, c.end, c.key, size)[0] if isinstance(c, Run) else
             pw.fixed_array(buf, c, f"f{size}") for c in chunks]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _external(path, folder, t, dt, count):
    """Values stored beside the model (external_data: location, offset, length), read once the sizes agree."""
    loc = t.external.get("location", "")
    data = _inside(path, folder, t, loc)
    size = os.path.getsize(data)
    try:
        offset = int(t.external.get("offset") or 0)
        length = int(t.external["length"]) if t.external.get("length") else size - offset
    except ValueError:
        raise WeightsError(f"{path}: tensor {t.name!r} has a bad external offset or length {t.external}") from None
    if offset < 0 or length < 0 or offset + length > size:
        raise WeightsError(f"{path}: tensor {t.name!r} lies at bytes {offset:,}..{offset + length:,} of {loc!r}, "
                           f"which holds {size:,} bytes; the data file is truncated or not this model's")
    _expect(path, t, count, dt.itemsize, length, f"external data in {loc!r}")
    with open(data, "rb") as f:
        f.seek(offset)
        a = np.fromfile(f, dtype=dt, count=count)
    if a.size != count:
        raise WeightsError(f"{path}: {loc!r} ended while reading tensor {t.name!r}; the data file is truncated")
    return a


def _inside(path, folder, t, loc):
    """The real path of an external data file, refused unless it lies inside the model's folder (links resolved)."""
    parts = re.split(r"[\\/]", loc)
    if not loc or "\0" in loc or os.path.isabs(loc) or loc[:1] in "/\\" or re.match(r"^[A-Za-z]:", loc) \
            or ".." in parts:
        raise WeightsError(f"{path}: tensor {t.name!r} names external data {loc!r}, not a file inside the model's "
                           f"folder; vggnumpy reads only data files beside the model: put it there and export again")
    full = os.path.join(folder, *[p for p in parts if p not in ("", ".")])
    real, root = os.path.realpath(full), os.path.realpath(folder)
    if os.path.commonpath([real, root]) != root:
        raise WeightsError(f"{path}: tensor {t.name!r} names external data {loc!r}, a link that leads outside the "
                           f"model's folder ({real}); vggnumpy reads only data files beside the model")
    if not os.path.isfile(real):
        raise WeightsError(f"{path}: tensor {t.name!r} is stored in {loc!r} beside the model, but {full} is missing; "
                           f"copy the model's data file into {folder}")
    return real
