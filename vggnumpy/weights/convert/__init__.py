"""Convert any public VGG/NIN release to vggnumpy's Weights: detect(path) by content, convert_file(path)."""
from ..hdf5 import WeightsError
from ..file import check_regular

HDF5 = b"\x89HDF\r\n\x1a\n"
FORMATS = {
    "vggnumpy": "vggnumpy's own HDF5 weights",
    "keras": "Keras HDF5 weights (vgg19/vgg16 *_tf_dim_ordering_tf_kernels*.h5)",
    "torch-legacy": "PyTorch .pth, legacy serialization (before 1.6)",
    "torch-zip": "PyTorch .pth, zip serialization (1.6 and later)",
    "caffe": "Caffe .caffemodel (protobuf NetParameter)",
    "matconvnet": "MatConvNet .mat (MATLAB v5)",
    "onnx": "ONNX .onnx (ModelProto: tf2onnx/Keras, the ONNX model zoo, torch.onnx)",
}


def _unknown(path, head, why=""):
    return WeightsError(f"{path}: unknown weights format{why} (starts with {head[:16]!r}); vggnumpy reads Keras .h5, "
                        f"PyTorch .pth (legacy and zip), Caffe .caffemodel, MatConvNet .mat, ONNX .onnx and its own "
                        f".h5")


def detect(path):
    """The format of a file from its bytes (never its name): one of FORMATS' keys; WeightsError otherwise."""
    from . import torchpth
    check_regular(path, "file to read weights from")
    with open(path, "rb") as f:
        head = f.read(1024)
    if not head:
        raise WeightsError(f"{path}: the file is empty; download it again")
    if head.startswith(HDF5):
        import h5py
        from .keras import is_keras
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") in ("vggnumpy-weights", b"vggnumpy-weights"):
                    return "vggnumpy"
                if is_keras(f, path):
                    return "keras"
        except OSError as e:
            raise WeightsError(f"{path}: an HDF5 file that cannot be opened ({e}); "
                               f"it is truncated or damaged") from None
        raise WeightsError(f"{path}: an HDF5 file, but neither a Keras weights file (no layer_names) nor vggnumpy's")
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head.startswith(torchpth.LEGACY_HEAD):
        return "torch-legacy"
    if head.startswith(b"MATLAB"):
        if b"MAT-file" in head[:128] and b"7.3" in head[:20]:
            raise WeightsError(f"{path}: a MATLAB v7.3 .mat file; save it again in MATLAB with -v7")
        return "matconvnet"
    if len(head) > 262 and head[257:262] == b"ustar":
        raise WeightsError(f"{path}: a tar archive (PyTorch's format before 0.4?); "
                           f"load and save it again as a state dict")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    kind = _protobuf_kind(path)
    if kind:
        return kind
    raise _unknown(path, head)


def _protobuf_kind(path):
    """onnx, caffe or None: parse the first top-level fields over the whole file (a Caffe layer or an ONNX graph
    may be longer than any fixed head). ONNX goes first: Caffe's test accepts an ONNX ModelProto's first fields."""
    import mmap
    from . import caffe, onnxfile
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if onnxfile.looks_like(mm):
            return "onnx"
        return "caffe" if caffe.looks_like(mm) else None


def convert_file(path, arch=None, convention=None):
    """Read a weights file of any supported format into a checked Weights (OIHW float32, with its convention).

    arch forces vgg19/vgg16/nin instead of guessing from the layer names; convention (caffe, torchvision,
    matconvnet) overrides the one the format implies, for files that carry no hint (e.g. re-saved state dicts).
    """
    from .. import file as wmod
    from . import caffe, keras, matconvnet, onnxfile, statedict, torchpth
    fmt = detect(path)
    if fmt == "vggnumpy":
        return wmod.load(path)
    if fmt == "keras":
        return keras.read(path, arch, convention or "caffe")
    if fmt == "caffe":
        return caffe.read(path, arch, convention or "caffe")
    if fmt == "matconvnet":
        return matconvnet.read(path, arch, convention)
    if fmt == "onnx":
        return onnxfile.read(path, arch, convention)
    if fmt == "pickle":
        torchpth.read_pickle_file(path)
    reader = torchpth.read_legacy if fmt == "torch-legacy" else torchpth.read_zip
    sd = reader(path, keep=statedict.keep)
    return statedict.convert(path, sd, arch, convention, f"PyTorch {fmt[6:]} .pth")
