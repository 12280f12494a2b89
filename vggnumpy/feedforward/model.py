"""The style network's own HDF5 file: its parameters, what it was trained on and how, and, while training is
unfinished, the optimiser's state, so that rerunning the same `vggnumpy train` resumes it. Read as carefully as
the VGG weights files (weights/hdf5.py: nothing outside the file named is opened)."""
import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..files.paths import atomic_write, check_writable
from ..nn import transformer
from ..weights.file import check_regular
from ..weights.hdf5 import WeightsError, h5_dataset, h5_get, h5_values

FORMAT = "vggnumpy-style-network"
FORMAT_VERSION = 1
HISTORY = ["step", "loss", "content", "style", "tv", "seconds"]      # the columns of a model's loss history
HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED = os.path.join(HERE, "models")             # the models inside the package, chosen by name


@dataclass
class Model:
    """A trained (or training) transformer: params {name: float32 array}, info (JSON-able: the painting's name and
    SHA-256, the loss weights and layers, the loss network, the photos, iterations done and asked, seconds),
    the Adam state {"t", "m/NAME", "v/NAME"} while training is unfinished (None when done), and the loss history."""
    params: dict
    info: dict
    adam: dict = None
    history: list = field(default_factory=list, repr=False)     # per step: [step, loss, content, style, tv, seconds]
    path: str = None

    @property
    def width(self):
        return self.params["conv1.w"].shape[0] / transformer.CHANNELS[0]


def save(model, path):
    """Write the model atomically (a temporary file in the same folder, then rename)."""
    import h5py
    check_writable("model file", path)
    with atomic_write(path, suffix=".h5.part") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["width"] = float(model.width)
            f.attrs["info"] = json.dumps(model.info, sort_keys=True)
            g = f.create_group("params")
            for name, a in model.params.items():
                g.create_dataset(name, data=np.ascontiguousarray(a, dtype=np.float32))
            if model.history:
                h = f.create_dataset("history", data=np.asarray(model.history, dtype=np.float64))
                h.attrs["columns"] = json.dumps(HISTORY)
            if model.adam is not None:
                a = f.create_group("adam")
                a.attrs["t"] = int(model.adam["t"])
                for key, arr in model.adam.items():
                    if key != "t":
                        a.create_dataset(key.replace("/", "_", 1), data=np.ascontiguousarray(arr, np.float32))


def _attr(f, key, path):
    if key not in f.attrs:
        raise WeightsError(f"{path}: damaged style network file (no {key!r}); train it again with vggnumpy train")
    v = f.attrs[key]
    return v.decode() if isinstance(v, bytes) else v


def _group(path, f, name, shapes):
    """{key: array} of the datasets `shapes` names inside group `name`, each checked before any is read."""
    found = {}
    for key, shape in shapes.items():
        ds = h5_get(path, f, f"{name}/{key}")
        if ds is None:
            raise WeightsError(f"{path}: style network file misses {name}/{key}; the file is damaged or "
                               f"incomplete; train it again with vggnumpy train")
        found[key] = h5_dataset(path, ds, shape)
    out = {k: np.asarray(h5_values(path, ds), dtype=np.float32) for k, ds in found.items()}
    for k, a in out.items():
        if not np.all(np.isfinite(a)):
            raise WeightsError(f"{path}: {name}/{k} holds NaN or infinite values; the file is damaged")
    return out


def load(path):
    """Read and check a style network file; a VGG weights file or any other HDF5 is refused, naming what it is."""
    import h5py
    if not os.path.exists(path):
        raise WeightsError(f"{path}: no such style network file; 'vggnumpy fast --list' names the shipped ones")
    check_regular(path, "style network file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path}: not an HDF5 file ({e}); give a style network made by vggnumpy train") from None
    with f:
        fmt = f.attrs.get("format", b"")
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
        if fmt == "vggnumpy-weights":
            raise WeightsError(f"{path}: this is a VGG weights file (the loss network), not a style network; "
                               f"give a model made by vggnumpy train, or pass it with --weights")
        if fmt != FORMAT:
            raise WeightsError(f"{path}: HDF5 file is not a vggnumpy style network (no format={FORMAT!r} "
                               f"attribute); make one with vggnumpy train")
        version = int(_attr(f, "format_version", path))
        if version > FORMAT_VERSION:
            raise WeightsError(f"{path}: format version {version} is newer than this vggnumpy reads "
                               f"({FORMAT_VERSION}); upgrade vggnumpy")
        try:
            width = float(_attr(f, "width", path))
            shapes = transformer.param_shapes(width)
            info = json.loads(_attr(f, "info", path))
            if not isinstance(info, dict):
                raise ValueError("info is not a JSON object")
        except (ValueError, TypeError) as e:
            raise WeightsError(f"{path}: damaged style network file ({e}); train it again") from None
        params = _group(path, f, "params", shapes)
        adam = None
        if h5_get(path, f, "adam") is not None:
            adam = {"t": int(f["adam"].attrs.get("t", 0))}
            for kind in ("m", "v"):
                got = _group(path, f, "adam", {f"{kind}_{k}": s for k, s in shapes.items()})
                adam.update({f"{kind}/{k[2:]}": a for k, a in got.items()})
        history = []
        ds = h5_get(path, f, "history")
        if ds is not None:
            rows = h5_values(path, h5_dataset(path, ds, (ds.shape[0], len(HISTORY)))) if len(ds.shape) == 2 else None
            if rows is None:
                raise WeightsError(f"{path}: history has shape {ds.shape}, expected (steps, {len(HISTORY)})")
            history = rows.tolist()
    return Model(params, info, adam, history, path)


def shipped():
    """{name: path} of the models inside the package."""
    if not os.path.isdir(SHIPPED):
        return {}
    return {os.path.splitext(f)[0]: os.path.join(SHIPPED, f) for f in sorted(os.listdir(SHIPPED))
            if f.endswith(".h5")}


def resolve(name_or_path):
    """A shipped model's name (starry_night) or a file name -> the path to load."""
    models = shipped()
    if name_or_path in models and not os.path.exists(name_or_path):
        return models[name_or_path]
    if not os.path.exists(name_or_path) and os.sep not in name_or_path and not name_or_path.endswith(".h5"):
        raise WeightsError(f"{name_or_path}: no such style network; the shipped ones are "
                           f"{', '.join(models) or 'none'} ('vggnumpy fast --list'), or give a file made by "
                           f"vggnumpy train")
    return name_or_path
