"""Caffe .caffemodel (NetParameter protobuf; V0/V1 `layers` = 2 and new `layer` = 100) -> OIHW kernels, BGR 0-255."""
import math
import mmap

import numpy as np

from ..hdf5 import WeightsError
from . import protowire as pw
from .common import build

V1_TYPES = {4: "Convolution", 14: "InnerProduct", 17: "Pooling", 18: "ReLU", 6: "Dropout", 5: "Data"}
CONV_TYPES = {"Convolution", "conv", "CONVOLUTION"}
NET_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 100}      # name, layers, input, input_dim, force_backward, state, debug,
                                                # input_shape, layer


def looks_like(buf):
    """Cheap content test: the first top-level fields parse as a NetParameter and one is a layer (2 or 100)."""
    pos, end = 0, len(buf)
    try:
        for _ in range(64):
            if pos >= end:
                return False
            num, wt, _, pos = pw.field(buf, pos, end)
            if num not in NET_FIELDS:
                return False
            if num in (2, 100):
                return wt == pw.LEN
    except pw.WireError:
        return False
    return False


def _layers(buf):
    """Yield (name, type, [blob spans]) of every layer, whichever generation of LayerParameter holds it."""
    for num, wt, value in pw.fields(buf, 0, len(buf)):
        if wt != pw.LEN or num not in (2, 100):
            continue
        name, kind, blobs = "", "", []
        for f, fwt, v in pw.fields(buf, *value):
            if num == 100:                                      # LayerParameter
                if f == 1 and fwt == pw.LEN:
                    name = pw.string(buf, v)
                elif f == 2 and fwt == pw.LEN:
                    kind = pw.string(buf, v)
                elif f == 7 and fwt == pw.LEN:
                    blobs.append(v)
            elif f == 4 and fwt == pw.LEN:                      # V1LayerParameter
                name = pw.string(buf, v)
            elif f == 5 and fwt == pw.VARINT:
                kind = V1_TYPES.get(v, str(v))
            elif f == 6 and fwt == pw.LEN:
                blobs.append(v)
            elif f == 1 and fwt == pw.LEN:                      # V0LayerParameter inside V1
                for g, gwt, u in pw.fields(buf, *v):
                    if g == 1 and gwt == pw.LEN:
                        name = name or pw.string(buf, u)
                    elif g == 2 and gwt == pw.LEN:
                        kind = kind or pw.string(buf, u)
                    elif g == 50 and gwt == pw.LEN:
                        blobs.append(u)
        yield name, kind, blobs


def _blob(buf, span, path, where):
    """BlobProto -> float32 array shaped by `shape` (field 7) or the legacy num/channels/height/width."""
    legacy, shape, chunks = {}, None, []
    pos, end = span
    while pos < end:
        key = buf[pos]
        if key == 0x2d:                                         # field 5 (data), unpacked float
            vals, pos = pw.unpacked_run(buf, pos, end, 0x2d, 4)
            chunks.append(vals)
            continue
        if key == 0x41:                                         # field 8 (double_data), unpacked double
            vals, pos = pw.unpacked_run(buf, pos, end, 0x41, 8)
            chunks.append(vals)
            continue
        num, wt, v, pos = pw.field(buf, pos, end)
        if num in (1, 2, 3, 4) and wt == pw.VARINT:
            legacy[num] = v
        elif num == 5 and wt == pw.LEN:
            chunks.append(pw.fixed_array(buf, v, "f4"))
        elif num == 8 and wt == pw.LEN:
            chunks.append(pw.fixed_array(buf, v, "f8"))
        elif num == 7 and wt == pw.LEN:
            shape = []
            for g, gwt, u in pw.fields(buf, *v):
                if g == 1:
                    shape += pw.packed_varints(buf, u) if gwt == pw.LEN else [u]
    if shape is None:
        shape = [legacy.get(i, 1) for i in (1, 2, 3, 4)]
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if data.size != math.prod(shape):               # Python ints: np.prod would wrap past 2**63 (to 0, say)
        raise WeightsError(f"{path}: layer {where} has a blob of {data.size} values for shape {tuple(shape)}; "
                           f"the file is damaged")
    return data.astype(np.float32).reshape(shape)


def read(path, arch=None, conv="caffe"):
    with open(path, "rb") as f:
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise WeightsError(f"{path}: empty file") from None
    params, seen = {}, []
    try:
        for name, kind, blobs in _layers(mm):
            seen.append(name)
            if kind not in CONV_TYPES:
                continue
            if len(blobs) < 2:
                raise WeightsError(f"{path}: conv layer {name} has {len(blobs)} blobs, expected weights and bias "
                                   f"(is this a deploy prototxt-only net without weights?)")
            w = _blob(mm, blobs[0], path, name)
            b = _blob(mm, blobs[1], path, name)
            if w.ndim != 4:
                raise WeightsError(f"{path}: conv layer {name} has kernel shape {w.shape}, expected (O, I, KH, KW)")
            params[name] = (w, b.reshape(-1))                     # (O, I, KH, KW), (O,)
    except pw.WireError as e:
        raise WeightsError(f"{path}: damaged Caffe protobuf after layer {seen[-1] if seen else '(none)'} ({e}); "
                           f"the file is truncated or corrupt, download it again") from None
    finally:
        try:
            mm.close()
        except BufferError:
            pass
    return build(path, params, conv, "Caffe", arch)
