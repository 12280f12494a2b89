"""Our HDF5 weight file: its schema, a checked loader, a writer, and the untrained He-initialised VGG."""
import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from ..nn import arch as archmod
from .hdf5 import WeightsError
from ..files.paths import InputError, atomic_write, cache_dir, check_input, check_writable, make_folder

FORMAT = "vggnumpy-weights"
FORMAT_VERSION = 1

# Input conventions of the public releases (see weights/README.md and ../shared/notes/weight-formats.md).
# An image in RGB [0, 1] becomes the network's input as: ((x[order] * scale) - mean) / std.
CAFFE = dict(channel_order="BGR", pixel_scale=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
TORCHVISION = dict(channel_order="RGB", pixel_scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
MATCONVNET = dict(channel_order="RGB", pixel_scale=255.0, mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0))



@dataclass
class Weights:
    """Conv kernels (OIHW float32) and biases by layer name, with the input convention."""
    arch: str
    params: dict                      # name -> (weight (O, I, KH, KW), bias (O,))
    channel_order: str = "RGB"
    pixel_scale: float = 1.0
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    trained: bool = True
    source: str = ""
    source_sha256: str = ""
    description: str = ""
    path: str = ""
    extra: dict = field(default_factory=dict)

    def convention(self):
        return dict(channel_order=self.channel_order, pixel_scale=self.pixel_scale,
                    mean=tuple(self.mean), std=tuple(self.std))


def check_regular(path, what="weights file"):
    """WeightsError, before the file is opened, when `path` is a folder, a named pipe, a device or a socket."""
    try:
        check_input(what, path)
    except InputError as e:
        raise WeightsError(str(e)) from None


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_params(arch, params, path="<memory>"):
    """Check names, shapes, dtype and finiteness of every conv layer; raise WeightsError otherwise."""
    expected = archmod.conv_layers(arch)
    for name, shape in expected:
        if name not in params:
            raise WeightsError(f"{path}: layer {name} is missing (an {arch} file needs "
                               f"{', '.join(n for n, _ in expected)}); "
                               f"convert the file again or pass another --weights")
        w, b = params[name]
        if tuple(w.shape) != shape or tuple(b.shape) != (shape[0],):
            raise WeightsError(f"{path}: layer {name} has kernel {tuple(w.shape)} and bias {tuple(b.shape)}, "
                               f"expected {shape} and {(shape[0],)} for {arch}")
        for what, a in (("kernel", w), ("bias", b)):
            if not np.issubdtype(a.dtype, np.floating):
                raise WeightsError(f"{path}: layer {name} {what} has dtype {a.dtype}, expected float32")
            if not np.all(np.isfinite(a)):
                raise WeightsError(f"{path}: layer {name} {what} holds NaN or infinite values; the file is damaged")


def save(weights, path):
    """Write weights to our HDF5 schema atomically (temporary file in the same folder, then rename)."""
    import h5py
    check_params(weights.arch, weights.params, path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.abspath(folder) == os.path.abspath(cache_dir()):
        make_folder(folder, "cache folder (VGGNUMPY_CACHE)")   # the cache is made when missing; no other folder
    check_writable("weights file", path)
    with atomic_write(path, suffix=".h5.part") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["arch"] = weights.arch
            f.attrs["layers"] = [n for n, _ in archmod.conv_layers(weights.arch)]
            f.attrs["channel_order"] = weights.channel_order
            f.attrs["pixel_scale"] = float(weights.pixel_scale)
            f.attrs["mean"] = np.asarray(weights.mean, dtype=np.float64)
            f.attrs["std"] = np.asarray(weights.std, dtype=np.float64)
            f.attrs["trained"] = bool(weights.trained)
            f.attrs["source"] = weights.source
            f.attrs["source_sha256"] = weights.source_sha256
            f.attrs["description"] = weights.description
            for key, value in weights.extra.items():
                f.attrs[key] = value
            for name, _ in archmod.conv_layers(weights.arch):
                w, b = weights.params[name]
                g = f.create_group(name)
                g.create_dataset("weight", data=np.ascontiguousarray(w, dtype=np.float32))
                g.create_dataset("bias", data=np.ascontiguousarray(b, dtype=np.float32))


def _attr_str(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_layers(path, f, arch):
    """name -> (kernel, bias) of the conv layers present, every dataset checked (in this file, of its layer's shape,
    holding what it declares) before any is read; an absent layer is left to check_params to name."""
    from .hdf5 import h5_dataset, h5_get, h5_values
    found = {}
    for name, shape in archmod.conv_layers(arch):
        w, b = h5_get(path, f, f"{name}/weight"), h5_get(path, f, f"{name}/bias")
        if w is not None and b is not None:
            found[name] = (h5_dataset(path, w, shape), h5_dataset(path, b, shape[:1]))
    return {name: (h5_values(path, w), h5_values(path, b)) for name, (w, b) in found.items()}


def load(path):
    """Read and check one of our HDF5 weight files; nothing outside it is opened (see hdf5.h5_get)."""
    import h5py
    if not os.path.exists(path):
        raise WeightsError(f"{path}: no such weights file; run 'vggnumpy weights list' to see what is cached")
    check_regular(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path}: not an HDF5 file ({e}); "
                           f"convert it with 'vggnumpy weights convert {path}'") from None
    with f:
        if _attr_str(f.attrs.get("format", "")) != FORMAT:
            raise WeightsError(f"{path}: HDF5 file is not in vggnumpy's weight format "
                               f"(no format={FORMAT!r} attribute); "
                               f"convert it with 'vggnumpy weights convert {path}'")
        version = int(f.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise WeightsError(f"{path}: format version {version} is newer than this vggnumpy reads "
                               f"({FORMAT_VERSION}); upgrade vggnumpy")
        try:
            arch = _attr_str(f.attrs["arch"])
            archmod.get_table(arch)
            params = _read_layers(path, f, arch)
            known = {"format", "format_version", "arch", "layers", "channel_order", "pixel_scale", "mean", "std",
                     "trained", "source", "source_sha256", "description"}
            w = Weights(
                arch=arch, params=params,
                channel_order=_attr_str(f.attrs["channel_order"]),
                pixel_scale=float(f.attrs["pixel_scale"]),
                mean=tuple(float(v) for v in f.attrs["mean"]),
                std=tuple(float(v) for v in f.attrs["std"]),
                trained=bool(f.attrs.get("trained", True)),
                source=_attr_str(f.attrs.get("source", "")),
                source_sha256=_attr_str(f.attrs.get("source_sha256", "")),
                description=_attr_str(f.attrs.get("description", "")),
                path=path,
                extra={k: f.attrs[k] for k in f.attrs if k not in known},
            )
        except WeightsError:
            raise
        except (KeyError, ValueError, TypeError) as e:
            raise WeightsError(f"{path}: damaged vggnumpy weights file ({e}); convert or download it again") from None
    if w.channel_order not in ("RGB", "BGR") or len(w.mean) != 3 or len(w.std) != 3 or min(w.std) <= 0:
        raise WeightsError(f"{path}: bad input convention "
                           f"(channel_order={w.channel_order}, mean={w.mean}, std={w.std})")
    check_params(arch, params, path)
    for name in params:
        params[name] = tuple(np.asarray(a, dtype=np.float32) for a in params[name])
    return w


def random_weights(arch="vgg19", seed=0):
    """An untrained network: He-normal kernels (std sqrt(2 / fan_in)), zero biases, torchvision's convention."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, (o, i, kh, kw) in archmod.conv_layers(arch):
        std = np.sqrt(2.0 / (i * kh * kw))
        params[name] = ((rng.standard_normal((o, i, kh, kw), dtype=np.float32) * np.float32(std)),
                        np.zeros(o, dtype=np.float32))
    return Weights(arch=arch, params=params, trained=False, source=f"random:seed={seed}",
                   description=f"UNTRAINED {arch} (He initialisation, seed {seed}); not pretrained",
                   **TORCHVISION)
