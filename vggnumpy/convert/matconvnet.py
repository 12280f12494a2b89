"""MatConvNet imagenet-vgg-verydeep-*.mat through scipy.io.loadmat: HWIO kernels (no spatial transpose), RGB 0-255."""
import numpy as np

from ..weights import MATCONVNET, WeightsError
from .common import build


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


def read(path, arch=None, conv=None):
    import scipy.io
    try:
        d = scipy.io.loadmat(path)
    except NotImplementedError:
        raise WeightsError(f"{path}: a MATLAB v7.3 (HDF5) .mat file; save it again in MATLAB with -v7") from None
    except Exception as e:   # scipy raises ValueError, TypeError, OSError... on damaged or cut files
        raise WeightsError(f"{path}: cannot read this .mat file ({type(e).__name__}: {e}); it is truncated or damaged") from None
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
                raise WeightsError(f"{path}: MatConvNet layer {name} has {w.size} weight arrays, expected kernel and bias")
            kernel, bias = np.asarray(w[0]), np.asarray(w[1])
        elif "filters" in names:                        # the oldest MatConvNet files
            kernel, bias = np.asarray(rec["filters"]), np.asarray(rec["biases"])
        else:
            raise WeightsError(f"{path}: MatConvNet layer {name} has no weights")
        if kernel.ndim != 4:
            raise WeightsError(f"{path}: MatConvNet layer {name} kernel has shape {kernel.shape}, expected (KH, KW, I, O)")
        # HWIO -> OIHW. No spatial transpose: MatConvNet kernels are stored (H, W) as used.
        params[name] = (np.transpose(kernel, (3, 2, 0, 1)), bias.reshape(-1))
    c = dict(MATCONVNET)
    if conv is None:
        mean = _mean(d)
        if mean is not None:
            c["mean"] = mean
    return build(path, params, conv or c, "MatConvNet", arch)
