"""Builders of synthetic weight files laid out like the real releases (Keras, torch legacy/zip, Caffe, MatConvNet)."""
import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from vggnumpy.nn import arch as archmod

# ---------------------------------------------------------------- the one set of weights


def base_params(arch="vgg19", seed=0):
    """name -> (kernel (O, I, KH, KW), bias (O,)) float32, random, non-symmetric, BGR Caffe-convention network."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (o, i, kh, kw) in archmod.conv_layers(arch):
        std = np.float32(np.sqrt(2.0 / (i * kh * kw)))
        out[name] = (rng.standard_normal((o, i, kh, kw), dtype=np.float32) * std,
                     rng.standard_normal(o, dtype=np.float32) * np.float32(0.1))
    return out


def keras_names(arch):
    """Keras layer names in order: input_1, blockB_convK ..., blockB_pool."""
    names = ["input_1"]
    for name, kind, _ in archmod.get_table(arch):
        if kind == "conv":
            b, k = name[4:].split("_")
            names.append(f"block{b}_conv{k}")
        elif kind == "pool":
            names.append(f"block{name[4:]}_pool")
    return names


# ---------------------------------------------------------------- Keras


def write_keras(path, params, arch="vgg19", naming="v0.1", drop=()):
    """Keras weights: root attr layer_names, per layer attr weight_names and HWIO kernels.

    naming v0.1 (fchollet's 2016 release): block1_conv1_W_1:0 / _b_1:0 in the layer group.
    naming keras2: block1_conv1/kernel:0 / bias:0 (a nested group).
    """
    import h5py
    with h5py.File(path, "w") as f:
        names = [n for n in keras_names(arch) if n not in drop]
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        if naming == "keras2":
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.2.4"
        for lname in names:
            g = f.create_group(lname)
            if "_conv" not in lname:
                g.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            b, k = lname[5:].split("_conv")
            w, bias = params[f"conv{b}_{k}"]
            if naming == "keras2":
                wn = [f"{lname}/kernel:0", f"{lname}/bias:0"]
            else:
                wn = [f"{lname}_W_1:0", f"{lname}_b_1:0"]
            g.attrs["weight_names"] = np.array([n.encode() for n in wn])
            g.create_dataset(wn[0], data=np.transpose(w, (2, 3, 1, 0)))   # (KH, KW, I, O)
            g.create_dataset(wn[1], data=bias)


# ---------------------------------------------------------------- PyTorch, without torch


class G:
    """A global reference written as GLOBAL 'module\\nname' (torch.FloatStorage, torch._utils._rebuild_tensor_v2...)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *a):
        raise RuntimeError("a pickling marker")


class _Storage:
    def __init__(self, key, data, dtype="FloatStorage"):
        self.key, self.data, self.dtype = key, data, dtype


class _Tensor:
    def __init__(self, storage, offset, shape, stride=None, rebuild="_rebuild_tensor_v2"):
        self.storage, self.offset, self.shape = storage, offset, tuple(shape)
        self.stride = stride or tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
        self.rebuild = rebuild

    def __reduce__(self):
        if self.rebuild == "_rebuild_tensor":
            return G("torch._utils", "_rebuild_tensor"), (self.storage, self.offset, self.shape, self.stride)
        return (G("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, self.offset, self.shape, self.stride, False, collections.OrderedDict()))


class _Evil:
    def __init__(self, module, name, arg):
        self.g, self.arg = G(module, name), arg

    def __reduce__(self):
        return self.g, (self.arg,)


class TorchPickler(pickle._Pickler):
    """Pure-Python pickler that writes G markers as GLOBAL opcodes and storages as torch's persistent ids."""
    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def save_g(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
    dispatch[G] = save_g

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            pid = ("storage", G("torch", obj.dtype), obj.key, "cpu", int(obj.data.size))
            return pid + (None,) if self.legacy else pid
        return None


def _dump(obj, legacy):
    buf = io.BytesIO()
    TorchPickler(buf, legacy).dump(obj)
    return buf.getvalue()


def _state(sd, shared_bias=False, rebuild="_rebuild_tensor_v2", metadata=True):
    """OrderedDict of tensor stand-ins over storages; biases optionally share one storage (offsets)."""
    out, storages = collections.OrderedDict(), []
    bias_keys = [k for k in sd if k.endswith("bias")] if shared_bias else []
    if bias_keys:
        shared = _Storage("bias_pool", np.concatenate([sd[k].ravel() for k in bias_keys]).astype(np.float32))
        storages.append(shared)
    off = 0
    for i, (k, a) in enumerate(sd.items()):
        if k in bias_keys:
            out[k] = _Tensor(shared, off, a.shape, rebuild=rebuild)
            off += a.size
        else:
            s = _Storage(str(1000 + i), np.ascontiguousarray(a).ravel())
            storages.append(s)
            out[k] = _Tensor(s, 0, a.shape, rebuild=rebuild)
    if metadata:
        out._metadata = collections.OrderedDict([("", {"version": 1})])
    return out, storages


def legacy_bytes(obj, storages):
    """torch.save before 1.6: magic, protocol, sys_info, the object, sorted storage keys, then count + raw data."""
    parts = [pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps(dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4)),
                          protocol=2),
             _dump(obj, legacy=True)]
    by_key = {s.key: s for s in storages}
    keys = sorted(by_key)
    parts.append(pickle.dumps(keys, protocol=2))
    for k in keys:
        d = by_key[k].data
        parts.append(struct.pack("<q", d.size) + d.astype(d.dtype.newbyteorder("<")).tobytes())
    return b"".join(parts)


def write_torch_legacy(path, sd, shared_bias=False, rebuild="_rebuild_tensor_v2"):
    obj, storages = _state(sd, shared_bias, rebuild)
    with open(path, "wb") as f:
        f.write(legacy_bytes(obj, storages))


def write_torch_zip(path, sd, top="archive", data_pkl=None):
    """torch.save 1.6+: an uncompressed zip with top/data.pkl, top/data/KEY, top/byteorder, top/version."""
    obj, storages = _state(sd)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{top}/data.pkl", data_pkl if data_pkl is not None else _dump(obj, legacy=False))
        z.writestr(f"{top}/byteorder", "little")
        for s in storages:
            z.writestr(f"{top}/data/{s.key}", s.data.astype("<f4").tobytes())
        z.writestr(f"{top}/version", "3\n")


def torchvision_sd(params, arch="vgg19", classifier=True):
    """torchvision keys: features.N.weight/bias at the conv's index in the Sequential; a (small) classifier."""
    sd = collections.OrderedDict()
    for i, (name, kind, _) in enumerate(archmod.get_table(arch)):
        if kind == "conv":
            sd[f"features.{i}.weight"], sd[f"features.{i}.bias"] = params[name]
    if classifier:
        rng = np.random.default_rng(5)
        for i, (o, n) in zip((0, 3, 6), ((8, 12), (8, 8), (10, 8))):   # tiny stand-ins for the 4096-wide layers
            sd[f"classifier.{i}.weight"] = rng.standard_normal((o, n), dtype=np.float32)
            sd[f"classifier.{i}.bias"] = rng.standard_normal(o, dtype=np.float32)
    return sd


def paper_sd(params):
    """Gatys' vgg_conv.pth keys: conv1_1.weight ... conv5_4.bias."""
    sd = collections.OrderedDict()
    for name, (w, b) in params.items():
        sd[f"{name}.weight"], sd[f"{name}.bias"] = w, b
    return sd


def hostile_pickle(module="os", name="system", arg="true"):
    """A protocol-2 pickle whose loading would call module.name(arg)."""
    return _dump(_Evil(module, name, arg), legacy=True)


def hostile_legacy(module="os", name="system", arg="true"):
    """A legacy .pth whose main pickle would call module.name(arg)."""
    head = [pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2), pickle.dumps(1001, protocol=2),
            pickle.dumps(dict(protocol_version=1001, little_endian=True), protocol=2)]
    return b"".join(head) + hostile_pickle(module, name, arg) + pickle.dumps([], protocol=2)


# ---------------------------------------------------------------- Caffe protobuf, by hand


def _varint(n):
    n &= (1 << 64) - 1                       # negative int64: ten bytes, two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(num, wt):
    return _varint(num << 3 | wt)


def _ld(num, payload):
    return _key(num, 2) + _varint(len(payload)) + payload


def _vi(num, v):
    return _key(num, 0) + _varint(v)


def _s(num, text):
    return _ld(num, text.encode())


def blob(arr, style="v1", packed=True):
    """BlobProto: v1 uses num/channels/height/width (1-4), new uses shape (7); data (5) packed or not."""
    a = np.asarray(arr, dtype="<f4")
    if style == "v1":
        dims = (1,) * (4 - a.ndim) + a.shape
        head = b"".join(_vi(i + 1, d) for i, d in enumerate(dims))
    else:
        head = _ld(7, _ld(1, b"".join(_varint(d) for d in a.shape)))
    if packed:
        data = _ld(5, a.tobytes())
    else:
        data = b"".join(_key(5, 5) + struct.pack("<f", v) for v in a.ravel())
    return head + data


V1 = {"conv": 4, "relu": 18, "pool": 17, "fc": 14, "drop": 6, "softmax": 21}
NEW = {"conv": "Convolution", "relu": "ReLU", "pool": "Pooling", "fc": "InnerProduct", "drop": "Dropout",
       "softmax": "Softmax"}


def caffe_layer(style, name, kind, blobs=(), bottom="x", top="x", unpacked=False, conv=None):
    if style == "v1":
        body = _ld(2, bottom.encode()) + _ld(3, top.encode()) + _s(4, name) + _vi(5, V1[kind])
        body += b"".join(_ld(6, blob(b, "v1", packed=not unpacked)) for b in blobs)
        if conv:
            body += _ld(10, _vi(1, conv["cout"]) + _vi(3, conv["pad"]) + _vi(4, conv["k"]) + _vi(6, conv["stride"]))
        return _ld(2, body)
    body = _s(1, name) + _s(2, NEW[kind]) + _ld(3, bottom.encode()) + _ld(4, top.encode())
    body += b"".join(_ld(7, blob(b, "new", packed=not unpacked)) for b in blobs)
    if conv:
        body += _ld(106, _vi(1, conv["cout"]) + _vi(3, conv["pad"]) + _vi(4, conv["k"]) + _vi(6, conv["stride"]))
    return _ld(100, body)


def write_caffe(path, params, arch="vgg19", style="v1", netname="VGG_ILSVRC_19_layers", unpacked=(), extra=True):
    """A .caffemodel: NetParameter with input dims and one layer per table row, plus fc/dropout layers.

    Biases: v1 stores (1, 1, 1, O) through num/channels/height/width; new stores shape [O].
    """
    out = [_s(1, netname)]
    if style == "v1":
        out += [_s(3, "data")] + [_vi(4, d) for d in (10, 3, 224, 224)]
    else:
        out.append(_ld(100, _s(1, "input") + _s(2, "Input") + _ld(4, b"data")))
    for name, kind, p in archmod.get_table(arch):
        if kind == "conv":
            w, b = params[name]
            out.append(caffe_layer(style, name, "conv", (w, b), unpacked=name in unpacked, conv=p))
        else:
            out.append(caffe_layer(style, name, kind))
        if arch == "nin" and name == "pool3":
            out.append(caffe_layer(style, "drop", "drop"))
    if extra:
        rng = np.random.default_rng(3)
        out.append(caffe_layer(style, "fc8", "fc", (rng.standard_normal((10, 16), dtype=np.float32),
                                                    rng.standard_normal(10, dtype=np.float32))))
        out.append(caffe_layer(style, "prob", "softmax"))
    with open(path, "wb") as f:
        f.write(b"".join(out))


# ---------------------------------------------------------------- MatConvNet


MCN_MEAN = (123.68, 116.779, 103.939)


def write_matconvnet(path, params, arch="vgg19"):
    """imagenet-vgg-verydeep-19.mat as scipy writes it: layers{i} structs with name, type, weights {kernel, bias}.

    Kernels are HWIO with RGB input channels: conv1_1 is the BGR network's with its input channels reversed.
    """
    import scipy.io
    table = archmod.get_table(arch)
    rng = np.random.default_rng(4)
    rows = []
    for name, kind, p in table:
        if kind == "conv":
            w, b = params[name]
            if name == "conv1_1":
                w = w[:, ::-1]
            cell = np.empty((1, 2), dtype=object)
            cell[0, 0] = np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))   # (KH, KW, I, O)
            cell[0, 1] = b.reshape(1, -1)
            rows.append(dict(name=name, type="conv", weights=cell, size=np.array(cell[0, 0].shape, float),
                             pad=np.ones((1, 4)), stride=np.ones((1, 2)), precious=False, dilate=1.0,
                             opts=np.empty((1, 0), dtype=object)))
        elif kind == "relu":
            rows.append(dict(name=name, type="relu", leak=0.0, precious=False))
        else:
            rows.append(dict(name=name, type="pool", method="max", pool=np.array([[2.0, 2.0]]),
                             stride=np.array([[2.0, 2.0]]), pad=np.zeros((1, 4)), precious=False))
    fc = np.empty((1, 2), dtype=object)
    fc[0, 0] = rng.standard_normal((7, 7, 512, 4), dtype=np.float32)       # fc6 stored as a conv, ignored
    fc[0, 1] = rng.standard_normal((1, 4), dtype=np.float32)
    rows += [dict(name="fc6", type="conv", weights=fc, size=np.array(fc[0, 0].shape, float), pad=np.zeros((1, 4)),
                  stride=np.ones((1, 2)), precious=False, dilate=1.0, opts=np.empty((1, 0), dtype=object)),
             dict(name="prob", type="softmax", precious=False)]
    layers = np.empty((1, len(rows)), dtype=object)
    for i, r in enumerate(rows):
        layers[0, i] = r
    classes = np.empty((1, 2), dtype=object)
    classes[0, 0], classes[0, 1] = "n01440764", "n01443537"
    meta = dict(inputs=dict(name="data", size=np.array([[224.0, 224.0, 3.0, 10.0]])),
                classes=dict(name=classes, description=classes),
                normalization=dict(averageImage=np.array(MCN_MEAN, np.float32).reshape(1, 1, 3), keepAspect=1.0,
                                   border=np.array([[32.0, 32.0]]), cropSize=np.array([[0.875, 0.875]]),
                                   interpolation="bilinear"))
    scipy.io.savemat(path, dict(layers=layers, meta=meta), do_compression=False)
