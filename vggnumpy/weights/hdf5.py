"""The safe HDF5 walker every weights reader uses: datasets read only from inside the file named (no external storage, \
links or virtual datasets), and WeightsError, the error of a weights file that cannot be used."""
import math
import os


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the file and the problem."""


ONLY_INSIDE = "vggnumpy reads only data inside the file you name"


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
                raise WeightsError(f"{path}: {via}{where}: more than {H5_HOPS} soft links in a row; "
                                   f"the file is damaged")
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


# Filters built into HDF5, and lzf (h5py registers it): any other id makes HDF5 search its plugin folders and load
# a shared library, that is, open another file.
H5_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}


H5_SHRINKING = {1, 4, 5, 6, 32000}   # filters that may store fewer bytes than the data holds


H5_RATIO = 1100                      # most data bytes per stored byte: DEFLATE's ceiling is 1032:1, lzf's lower
