"""MatConvNet imagenet-vgg-verydeep-*.mat through scipy.io.loadmat: HWIO kernels (no spatial transpose), RGB 0-255."""
import os
import struct
import zlib

import numpy as np

from ..file import MATCONVNET
from ..hdf5 import WeightsError
from .common import build

MI_MATRIX, MI_COMPRESSED = 14, 15   # element types that hold further elements
STEP = 1 << 20                      # bytes read, or inflated, at a time while checking sizes
DEPTH = 64                          # matrices nested in matrices, at most (MatConvNet's files nest 4 deep)


def _s(v):
    """A MATLAB string as loadmat returns it (array of str, possibly nested) -> str."""
    a = np.asarray(v)
    while a.dtype == object and a.size == 1:
        a = np.asarray(a.flat[0])
    return "".join(str(x) for x in a.ravel()) if a.size else ""


def _struct(v):
    """The record of a 1x1 struct array (possibly wrapped in a cell)."""
    a = np.asarray(v)
    while a.dtype == object and a.size == 1:
        a = np.asarray(a.flat[0])
    if a.dtype.names is None or a.size != 1:
        raise ValueError("not a 1x1 struct")
    return a.flat[0], a.dtype.names


def _mean(d):
    """meta.normalization.averageImage (newer files) or normalization.averageImage (older), as 3 RGB values."""
    try:
        if "meta" in d:
            meta, _ = _struct(d["meta"])
            norm, _ = _struct(meta["normalization"])
        else:
            norm, _ = _struct(d["normalization"])
        avg = np.asarray(norm["averageImage"], dtype=np.float64)
        if avg.size % 3 == 0 and avg.size >= 3:
            return tuple(round(float(v), 4) for v in avg.reshape(-1, 3).mean(axis=0))   # stored as single
    except (KeyError, ValueError, IndexError, TypeError):
        pass
    return None


class _Stream:
    """Exact reads and skips over the rest of a file (`size` bytes from its position), or over a zlib stream of
    `size` bytes there, inflated a step at a time; data that ends early raises WeightsError."""

    def __init__(self, f, path, size, label, inflate=False):
        self.f, self.path, self.left, self.label = f, path, size, label
        self.z = zlib.decompressobj() if inflate else None
        self.buf, self.off, self.pos = b"", 0, 0

    def more(self):
        """True while data is left (for a zlib stream: refills the buffer, inflating at most STEP bytes)."""
        if self.z is None:
            return self.left > 0
        while self.off == len(self.buf):
            src = self.z.unconsumed_tail
            if not src and self.left > 0:
                src = self.f.read(min(STEP, self.left))
                self.left = self.left - len(src) if src else 0
            if not src:
                return False
            self.buf, self.off = self.z.decompress(src, STEP), 0
        return True

    def take(self, n, what, keep=True):
        """The next n bytes (skipped unless keep), or WeightsError saying that `what` declared more than there is."""
        if self.z is None and n > self.left:
            raise WeightsError(f"{self.path}: {what} but only {self.left} remain in the {self.label}; "
                               f"the file is truncated or damaged")
        if self.z is None:
            if not keep:
                self.f.seek(n, 1)
            data = self.f.read(n) if keep else b""
            self.left, self.pos = self.left - n, self.pos + n
            return data
        parts, need = [], n
        while need:
            if not self.more():
                raise WeightsError(f"{self.path}: {what} but the {self.label} ends {need} bytes short; "
                                   f"the file is truncated or damaged")
            piece = self.buf[self.off:self.off + need]
            self.off, need = self.off + len(piece), need - len(piece)
            if keep:
                parts.append(piece)
        self.pos += n
        return b"".join(parts)


def _walk(s, end, order, depth=0):
    """Check each element tag in s up to byte `end` of it (None: to its end): the size a tag declares must fit in
    what holds it, so scipy, which allocates a declared size before reading, never allocates more than the file."""
    while (s.pos < end) if end is not None else s.more():
        at = s.pos
        kind, n = struct.unpack(order + "II", s.take(8, f"an element tag at byte {at} of the {s.label}"))
        if kind >> 16:                                      # small element: its data sits in the tag
            continue
        what = f"an element (type {kind}) at byte {at} of the {s.label} declares {n} bytes"
        if end is not None and n > end - s.pos:
            raise WeightsError(f"{s.path}: {what} but only {end - s.pos} remain in what holds it; the file is damaged")
        if kind == MI_MATRIX and depth < DEPTH:
            _walk(s, s.pos + n, order, depth + 1)
        elif kind == MI_COMPRESSED and depth == 0 and s.z is None:
            start = s.f.tell()
            s.take(n, what, keep=False)                     # the compressed bytes lie in the file
            s.f.seek(start)
            _walk(_Stream(s.f, s.path, n, f"compressed variable at byte {at + 128}", inflate=True), None, order)
            s.f.seek(start + n)
        elif kind == MI_MATRIX:
            raise WeightsError(f"{s.path}: matrices nested more than {DEPTH} deep; the file is damaged")
        else:
            s.take(n + (0 if end is None else min(-n % 8, end - s.pos - n)), what, keep=False)   # data pads to 8


def _check_sizes(path):
    """Refuse a .mat that is not MATLAB v5, or one whose elements declare more bytes than the file holds."""
    with open(path, "rb") as f:
        head = f.read(128)
        major = head[124 + (head[126:127] == b"I")] if len(head) == 128 else 0
        if major == 2:
            raise WeightsError(f"{path}: a MATLAB v7.3 (HDF5) .mat file; save it again in MATLAB with -v7")
        if major != 1 or head[126:128] not in (b"IM", b"MI"):
            raise WeightsError(f"{path}: not a MATLAB v5 .mat file (its 128-byte header is not one); it is damaged")
        order = "<" if head[126:128] == b"IM" else ">"
        _walk(_Stream(f, path, os.fstat(f.fileno()).st_size - 128, "file"), None, order)


def read(path, arch=None, conv=None):
    import scipy.io
    _check_sizes(path)
    try:
        d = scipy.io.loadmat(path)
    except NotImplementedError:
        raise WeightsError(f"{path}: a MATLAB v7.3 (HDF5) .mat file; save it again in MATLAB with -v7") from None
    except Exception as e:   # scipy raises ValueError, TypeError, OSError... on damaged or cut files
        raise WeightsError(f"{path}: cannot read this .mat file ({type(e).__name__}: {e}); "
                           f"it is truncated or damaged") from None
    if "layers" not in d:
        raise WeightsError(f"{path}: a .mat file without a `layers` array; not a MatConvNet model")
    params = {}
    for entry in np.asarray(d["layers"]).ravel():
        try:
            rec, names = _struct(entry)
        except ValueError:
            continue
        name = _s(rec["name"]) if "name" in names else ""
        kind = _s(rec["type"]) if "type" in names else ""
        if kind != "conv" or not name.startswith("conv"):
            continue                                    # relu, pool, and the fc6..fc8 layers stored as convs
        if "weights" in names:
            w = np.asarray(rec["weights"], dtype=object).ravel()
            if w.size < 2:
                raise WeightsError(f"{path}: MatConvNet layer {name} has {w.size} weight arrays, "
                                   f"expected kernel and bias")
            kernel, bias = np.asarray(w[0]), np.asarray(w[1])
        elif "filters" in names:                        # the oldest MatConvNet files
            kernel, bias = np.asarray(rec["filters"]), np.asarray(rec["biases"])
        else:
            raise WeightsError(f"{path}: MatConvNet layer {name} has no weights")
        if kernel.ndim != 4:
            raise WeightsError(f"{path}: MatConvNet layer {name} kernel has shape {kernel.shape}, "
                               f"expected (KH, KW, I, O)")
        # HWIO -> OIHW. No spatial transpose: MatConvNet kernels are stored (H, W) as used.
        params[name] = (np.transpose(kernel, (3, 2, 0, 1)), bias.reshape(-1))
    c = dict(MATCONVNET)
    if conv is None:
        mean = _mean(d)
        if mean is not None:
            c["mean"] = mean
    return build(path, params, conv or c, "MatConvNet", arch)
