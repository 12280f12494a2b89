"""Shared steps of every converter: conventions, architecture guess, a checked Weights, HDF5 reads kept in the file."""
import math
import os

import numpy as np

from .. import arch as archmod
from ..weights import CAFFE, MATCONVNET, TORCHVISION, Weights, WeightsError, check_params, sha256_file

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

ONLY_INSIDE = "vggnumpy reads only data inside the file you name"
# Filters built into HDF5, and lzf (h5py registers it): any other id makes HDF5 search its plugin folders and load
# a shared library, that is, open another file.
H5_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}
H5_SHRINKING = {1, 4, 5, 6, 32000}   # filters that may store fewer bytes than the data holds
H5_RATIO = 1100                      # most data bytes per stored byte: DEFLATE's ceiling is 1032:1, lzf's lower
H5_HOPS = 16                         # soft links followed in a row at most (HDF5's own default)


def h5_get(path, group, name, hops=H5_HOPS, via=""):
    """The object at `name` ('a/b' from `group`, or '/a/b') or None when absent, walked one link at a time so that
    no link is followed out of the file: hard links, and soft links resolved by this same walk; an external or
    user-defined link is refused (h5py's `in` and [] would follow it, opening the file it names)."""
    import h5py
    obj = group.file if name.startswith("/") else group
    for part in (p for p in name.split("/") if p and p != "."):
        key = part.encode()
        if not isinstance(obj, h5py.Group) or not obj.id.links.exists(key):
            return None
        where = f"{obj.name.rstrip('/')}/{part}".lstrip("/")
        kind = obj.id.links.get_info(key).type
        if kind == h5py.h5l.TYPE_HARD:
            obj = obj[part]
        elif kind == h5py.h5l.TYPE_SOFT:
            target = obj.id.links.get_val(key).decode(errors="replace")
            if hops <= 0:
                raise WeightsError(f"{path}: {via}{where}: more than {H5_HOPS} soft links in a row; the file is damaged")
            obj = h5_get(path, obj, target, hops - 1, f"{via}{where} is a soft link to {target}; ")
            if obj is None:
                return None
        elif kind == h5py.h5l.TYPE_EXTERNAL:
            filename, target = (v.decode(errors="replace") for v in obj.id.links.get_val(key))
            raise WeightsError(f"{path}: {via}{where} is an external link to {target} in another file ({filename}); "
                               f"{ONLY_INSIDE}")
        else:
            raise WeightsError(f"{path}: {via}{where} is a user-defined link (class {kind}), which HDF5 resolves "
                               f"outside the file, maybe in another file; {ONLY_INSIDE}")
    return obj


def _h5_elsewhere(path, ds, where, plist):
    """Refuse a dataset whose bytes HDF5 would fetch from another file: virtual, external storage, filter plugins."""
    if ds.is_virtual:
        files = sorted({m.file_name for m in ds.virtual_sources()})
        raise WeightsError(f"{path}: {where} is a virtual dataset whose data comes from another file "
                           f"({', '.join(files)}); {ONLY_INSIDE}")
    if plist.get_external_count():
        files = [plist.get_external(i)[0].decode(errors="replace") for i in range(plist.get_external_count())]
        raise WeightsError(f"{path}: {where} keeps its data in another file ({', '.join(files)}; HDF5 external "
                           f"storage); {ONLY_INSIDE}")
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in H5_FILTERS:
            raise WeightsError(f"{path}: {where} is encoded with HDF5 filter {code}, which HDF5 would load from a "
                               f"plugin library, another file; {ONLY_INSIDE}, decoded by HDF5's built-in filters "
                               f"({', '.join(sorted(set(H5_FILTERS.values())))})")


def h5_dataset(path, ds, shape):
    """`ds`, once it is known to be a float dataset of `shape` whose bytes all lie in this file; WeightsError
    otherwise. Nothing is read: the checks use the dataset's metadata only."""
    import h5py
    if not isinstance(ds, h5py.Dataset):
        raise WeightsError(f"{path}: {ds.name.lstrip('/')} is a {type(ds).__name__.lower()}, expected a dataset")
    where, plist = f"dataset {ds.name.lstrip('/')}", ds.id.get_create_plist()
    _h5_elsewhere(path, ds, where, plist)
    if ds.dtype.kind != "f" or ds.dtype.itemsize > 8:
        raise WeightsError(f"{path}: {where} has dtype {ds.dtype}, expected float32")
    if ds.shape != tuple(shape):
        raise WeightsError(f"{path}: {where} has shape {ds.shape}, expected {tuple(shape)}; refused before reading")
    need, kept, size = math.prod(shape) * ds.dtype.itemsize, ds.id.get_storage_size(), os.path.getsize(path)
    if kept > size:
        raise WeightsError(f"{path}: {where} claims {kept} bytes of storage in a file of {size}; the file is damaged")
    filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
    unwritten = ""
    if plist.get_layout() == h5py.h5d.CHUNKED:   # chunks never written read as the fill value: data not held
        chunks, written = math.prod(-(-n // c) for n, c in zip(ds.shape, ds.chunks)), ds.id.get_num_chunks()
        unwritten = f" ({written} of its {chunks} chunks written)" if written < chunks else ""
    if unwritten or kept * (H5_RATIO if filters & H5_SHRINKING else 1) < need:
        raise WeightsError(f"{path}: {where} declares {need} bytes but keeps {kept} in the file{unwritten}; "
                           f"the file is damaged or truncated, refused before reading")
    return ds


def h5_values(path, ds):
    """The array of a dataset that h5_dataset accepted."""
    try:
        return ds[()]
    except OSError as e:
        raise WeightsError(f"{path}: dataset {ds.name.lstrip('/')} cannot be read ({e}); the file is damaged") from None
