"""PyTorch .pth state dicts, legacy (pre-1.6) and zip, read by a restricted unpickler that never runs file code."""
import collections
import io
import math
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np

from ..hdf5 import WeightsError

MAGIC = 0x1950a86a20f9469cfc6c
PROTOCOL = 1001
LEGACY_HEAD = b"\x80\x02\x8a\x0a" + MAGIC.to_bytes(10, "little")

DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
          "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
          "ByteStorage": np.uint8, "BoolStorage": np.bool_, "BFloat16Storage": "bfloat16"}


class StorageType:
    """Stand-in for torch.FloatStorage and friends: only a name and a dtype."""

    def __init__(self, name):
        self.name = name
        self.dtype = DTYPES[name]


class Storage:
    """A flat array of `numel` elements whose bytes come from the file once they are read."""

    def __init__(self, stype, key, numel):
        self.stype, self.key, self.numel = stype, key, int(numel)
        self.data = None                       # (numel,) numpy array once read
        self.base, self.offset = self, 0      # legacy views point into a root storage

    def array(self, path):
        if self.base is not self:
            return self.base.array(path)[self.offset:self.offset + self.numel]
        if self.data is None:
            raise WeightsError(f"{path}: storage {self.key} has no data; the file is truncated or damaged")
        return self.data


class Tensor:
    """Stand-in for a tensor: storage, offset, size and stride, checked before any byte is touched."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def numpy(self, path, key):
        s, off, size, stride = self.storage, self.offset, self.size, self.stride
        if not isinstance(s, Storage):
            raise WeightsError(f"{path}: tensor {key} does not point to a storage; the file is damaged")
        ok = (isinstance(off, int) and off >= 0 and len(size) == len(stride)
              and all(isinstance(v, int) and v >= 0 for v in (*size, *stride)))
        if not ok:
            raise WeightsError(f"{path}: tensor {key} has a bad layout (offset {off}, size {size}, stride {stride})")
        data = s.array(path)
        count = math.prod(size)
        if count > data.size:   # stride 0 would repeat stored values into an array as large as declared
            raise WeightsError(f"{path}: tensor {key} declares {count} values but its storage holds {data.size}; "
                               f"vggnumpy copies only values the file holds, refused")
        if data.dtype == np.uint16:            # bfloat16: the high half of a float32
            data = (data.astype(np.uint32) << 16).view(np.float32)
        if 0 in size:
            return np.zeros(size, dtype=np.float32)
        last = off + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= data.size:
            raise WeightsError(f"{path}: tensor {key} reaches element {last} of a storage of {data.size}; "
                               f"the file is truncated or damaged")
        view = np.lib.stride_tricks.as_strided(data[off:], shape=size,
                                               strides=[st * data.itemsize for st in stride], writeable=False)
        return np.array(view, dtype=np.float32)


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    return Tensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *rest):
    return data


ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
           ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
           ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
           ("torch._utils", "_rebuild_parameter"): _rebuild_parameter}
ALLOWED.update({("torch", name): StorageType(name) for name in DTYPES})


class SafeUnpickler(pickle.Unpickler):
    """Resolves only OrderedDict, torch's tensor-rebuilding functions and storage types, to our stand-ins."""

    def __init__(self, file, path, persistent=None):
        super().__init__(file)
        self.path, self.persistent = path, persistent

    def find_class(self, module, name):
        try:
            return ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise WeightsError(f"{self.path}: refused: the pickle asks to import {module}.{name}, which is not part "
                               f"of a tensor state dict. vggnumpy never runs code from a weights file; use a file "
                               f"saved with torch.save(model.state_dict(), ...) from a source you trust") from None

    def persistent_load(self, pid):
        if self.persistent is None:
            raise WeightsError(f"{self.path}: unexpected persistent id {pid!r}; the file is damaged")
        return self.persistent(pid)


class _Bounded:
    """read/readline/tell over the rest of a seekable stream; a read of more bytes than remain is refused, so that
    a length a pickle declares is compared with the file before anything of that length is allocated."""

    def __init__(self, f, path):
        self.f, self.path = f, path
        start = f.tell()
        self.end = f.seek(0, 2)
        f.seek(start)

    def read(self, n=-1):
        left = self.end - self.f.tell()
        if n > left:
            raise WeightsError(f"{self.path}: the pickle declares {n} bytes at byte {self.f.tell()} but only {left} "
                               f"remain; the file is truncated or damaged")
        return self.f.read(n)

    def readline(self):
        return self.f.readline()

    def tell(self):
        return self.f.tell()


def _scan(f, path):
    """Walk the opcodes of the pickle at f's position (pickletools, through _Bounded) and come back. CPython's
    unpickler allocates a length an opcode declares before reading it, and grows its memo (zeroed) up to the
    largest index a PUT names: refuse a length beyond the file and a memo index beyond the opcodes seen so far
    (a pickler numbers its memo entries 0, 1, 2, ... as it makes them)."""
    start, seen, src = f.tell(), 0, _Bounded(f, path)
    for op, arg, pos in pickletools.genops(src):
        seen += 1
        if op.name == "FRAME" and arg > src.end - src.tell():   # the unpickler reads a whole frame at once
            raise WeightsError(f"{path}: the pickle declares a frame of {arg} bytes at byte {pos} but only "
                               f"{src.end - src.tell()} remain; the file is truncated or damaged")
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(arg) > seen:
            raise WeightsError(f"{path}: the pickle names memo index {arg} at byte {pos}, after {seen} opcodes; "
                               f"the file is damaged")
    f.seek(start)


def safe_load(f, path, persistent=None):
    """One pickle from file object f, scanned then read through SafeUnpickler; every failure is a WeightsError."""
    try:
        _scan(f, path)
        return SafeUnpickler(f, path, persistent).load()
    except WeightsError:
        raise
    except EOFError:
        raise WeightsError(f"{path}: the file ends inside a pickle; it is truncated, download it again") from None
    except Exception as e:   # UnpicklingError, ValueError, TypeError, ... from a damaged stream
        raise WeightsError(f"{path}: damaged pickle ({type(e).__name__}: {e})") from None


def _storage_type(path, t):
    if not isinstance(t, StorageType):
        raise WeightsError(f"{path}: storage of unknown type {t!r}; the file is damaged")
    return t


def read_legacy(path, keep=lambda key: True):
    """torch.save's format before 1.6: magic, protocol and sys_info pickles, the object, storage keys, raw data."""
    storages = {}

    def persistent(pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise WeightsError(f"{path}: unexpected persistent id {pid!r}; the file is damaged")
        _, stype, key, _location, numel, view = pid
        stype = _storage_type(path, stype)
        root = storages.setdefault(str(key), Storage(stype, key, numel))
        if view is None:
            return root
        vkey, offset, vsize = view
        v = Storage(stype, vkey, vsize)
        v.base, v.offset = root, int(offset)
        return v

    with open(path, "rb") as f:
        if safe_load(f, path) != MAGIC:
            raise WeightsError(f"{path}: not a torch file (wrong magic number)")
        if safe_load(f, path) != PROTOCOL:
            raise WeightsError(f"{path}: unsupported torch legacy protocol version")
        info = safe_load(f, path)
        big = isinstance(info, dict) and not info.get("little_endian", True)
        obj = safe_load(f, path, persistent)
        keys = safe_load(f, path)
        if not isinstance(keys, list):
            raise WeightsError(f"{path}: damaged storage key list")
        items = _tensors(path, obj, keep, materialize=False)
        needed = _roots(items)
        size = os.fstat(f.fileno()).st_size
        for key in keys:
            s = storages.get(str(key))
            head = f.read(8)
            if s is None or len(head) < 8:
                raise WeightsError(f"{path}: storage {key} is missing or cut short; the file is truncated")
            (n,) = struct.unpack(">q" if big else "<q", head)
            dt = _dtype(s, ">" if big else "<")
            nbytes = n * dt.itemsize
            if n < 0 or f.tell() + nbytes > size:
                raise WeightsError(f"{path}: storage {key} needs {nbytes} bytes but the file ends after "
                                   f"{size - f.tell()}; the file is truncated, download it again")
            if id(s) in needed:
                s.data = np.frombuffer(f.read(nbytes), dtype=dt).astype(dt.newbyteorder("="), copy=False)
            else:
                f.seek(nbytes, 1)
    return collections.OrderedDict((k, t.numpy(path, k)) for k, t in items)


def _dtype(s, order):
    return np.dtype(np.uint16 if s.stype.dtype == "bfloat16" else s.stype.dtype).newbyteorder(order)


def _roots(items):
    """The root storages that the kept tensors read, by id."""
    return {id(t.storage.base): t.storage.base for _, t in items if isinstance(t.storage, Storage)}


def _record(zf, name, path, what, need=0):
    """The bytes of an archive member, once its header shows them stored as they are (torch.save never compresses;
    a compressed member could inflate to far more than the file holds), inside the file, and `need` bytes long."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise WeightsError(f"{path}: {what} is missing from the archive; the file is truncated or damaged") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise WeightsError(f"{path}: {what} is compressed (zip method {info.compress_type}); torch.save stores "
                           f"records as they are, and vggnumpy inflates nothing: save the file again with torch.save")
    if info.file_size < need:
        raise WeightsError(f"{path}: {what} declares {need} bytes but its record holds {info.file_size}; "
                           f"the file is truncated or damaged")
    if info.compress_size != info.file_size or info.header_offset + info.file_size > os.path.getsize(path):
        raise WeightsError(f"{path}: {what} runs past the end of the file; the file is truncated or damaged")
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise WeightsError(f"{path}: {what} cannot be read ({e}); the file is truncated or damaged") from None


def read_zip(path, keep=lambda key: True):
    """torch.save's zip format (1.6+): <top>/data.pkl with persistent ids into <top>/data/<key>."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise WeightsError(f"{path}: damaged zip archive ({e}); the file is truncated or not a .pth") from None
    with zf:
        pkls = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise WeightsError(f"{path}: a zip archive without torch's <name>/data.pkl; not a .pth file")
        top = pkls[0][:-len("data.pkl")]
        order = "<"
        if top + "byteorder" in zf.namelist() and _record(zf, top + "byteorder", path, "byteorder").strip() == b"big":
            order = ">"
        storages = {}

        def persistent(pid):
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise WeightsError(f"{path}: unexpected persistent id {pid!r}; the file is damaged")
            _, stype, key, _location, numel = pid
            return storages.setdefault(str(key), Storage(_storage_type(path, stype), key, numel))

        obj = safe_load(io.BytesIO(_record(zf, pkls[0], path, "data.pkl")), path, persistent)
        items = _tensors(path, obj, keep, materialize=False)
        for s in _roots(items).values():
            dt = _dtype(s, order)
            raw = _record(zf, f"{top}data/{s.key}", path, f"storage {s.key}", s.numel * dt.itemsize)
            s.data = np.frombuffer(raw, dtype=dt, count=s.numel).astype(dt.newbyteorder("="), copy=False)
        return collections.OrderedDict((k, t.numpy(path, k)) for k, t in items)


def _state_dict(obj):
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def _tensors(path, obj, keep, materialize=True):
    obj = _state_dict(obj)
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    items = [(str(k), t) for k, t in obj.items() if isinstance(t, Tensor) and keep(str(k))]
    if not materialize:
        return items
    return collections.OrderedDict((k, t.numpy(path, k)) for k, t in items)


def read_pickle_file(path):
    """A bare pickle (no torch header): unpickle safely to say what it is, never to run it."""
    with open(path, "rb") as f:
        obj = safe_load(f, path)
    raise WeightsError(f"{path}: a plain pickle of a {type(obj).__name__}, not a torch .pth file")
