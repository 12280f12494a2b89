"""Hostile weight files: data kept in other files and sizes declared beyond what a file holds are refused before \
reading."""
import collections
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib

import h5py
import numpy as np
import pytest

import weightfiles as wf
from vggnumpy.weights import file as wmod
from vggnumpy.weights.convert import convert_file

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOTIF = b"PWD!"                        # 4 bytes: any reordering of float32 values copied from SECRET still shows it
SECRET = MOTIF * (64 * 3 * 3 * 3)      # exactly conv1_1's kernel: 6912 bytes of text
HUGE = 2 ** 20                         # (HUGE, HUGE, 3, 3) float32 = 36 TiB, declared by files of a few KB
PEAK = 64 << 20                        # what a refusal may allocate (tracemalloc: Python and NumPy memory), bytes
# format -> (group, dataset, shape) of conv1_1's kernel: ours is (O, I, KH, KW), Keras' (KH, KW, I, O)
TARGET = {"vggnumpy": ("conv1_1", "weight", (64, 3, 3, 3)),
          "keras": ("block1_conv1", "block1_conv1_W_1:0", (3, 3, 3, 64))}
KINDS = ["external-storage", "external-link", "soft-link-through-external", "virtual", "plugin-filter"]
PLUGIN = 32015                         # an HDF5 filter id that HDF5 would look for in its plugin folders


@pytest.fixture(autouse=True)
def _address_space_cap():
    """Cap the address space at its size now plus 8 GiB during each test, so code that trusts a declared size fails
    with MemoryError rather than exhausting the machine (no test here needs more than a few hundred MB)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        cap = size + (8 << 30) if hard == resource.RLIM_INFINITY else min(hard, size + (8 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, ValueError, StopIteration):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A good vggnumpy file and a good Keras file (VGG16), written once."""
    d = tmp_path_factory.mktemp("good")
    out = {"vggnumpy": str(d / "vgg.h5"), "keras": str(d / "keras.h5")}
    wmod.save(wmod.random_weights("vgg16", 0), out["vggnumpy"])
    wf.write_keras(out["keras"], wf.base_params("vgg16"), "vgg16", "v0.1")
    return out


def _refused(call, match, peak=PEAK):
    """call() raises a WeightsError matching `match`, allocating less than `peak` bytes on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(wmod.WeightsError, match=match):
            call()
        used = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert used < peak, f"allocated {used} bytes before refusing"


def _cli(args, **kw):
    return subprocess.run([sys.executable, "-m", "vggnumpy", *args], capture_output=True, cwd=ROOT, timeout=300, **kw)


def _cli_refuses(path, tmp_path, words):
    """`vggnumpy weights convert PATH -o OUT` fails, names the file on stderr, leaks nothing, writes nothing."""
    out = tmp_path / "out.h5"
    r = _cli(["weights", "convert", path, "-o", str(out)])
    leaked = out.exists() and MOTIF * 8 in out.read_bytes()
    assert not leaked and MOTIF * 8 not in r.stdout + r.stderr
    assert r.returncode != 0 and not out.exists(), r.stdout.decode()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == []
    err = r.stderr.decode()
    assert "Traceback" not in err and os.path.basename(path) in err and re.search(words, err), err


# ------------------------------------------------------------------ HDF5 data in another file


def _hostile(originals, tmp_path, fmt, kind):
    """A copy of a good file whose conv1_1 kernel is replaced by `kind`, reaching SECRET or other.h5 elsewhere."""
    secret, other = tmp_path / "secret.txt", str(tmp_path / "other.h5")
    secret.write_bytes(SECRET)
    group, name, shape = TARGET[fmt]
    with h5py.File(other, "w") as o:
        o["stolen"] = np.frombuffer(SECRET, "<f4").reshape(shape)
    p = str(tmp_path / f"{fmt}-{kind}.h5")
    shutil.copy(originals[fmt], p)
    with h5py.File(p, "a") as f:
        g = f[group]
        del g[name]
        if kind == "external-storage":
            g.create_dataset(name, shape, "<f4", external=[(str(secret), 0, len(SECRET))])
        elif kind == "external-link":
            g[name] = h5py.ExternalLink(other, "/stolen")
        elif kind == "soft-link-through-external":     # a soft link stays in the file; its path must, too
            f["elsewhere"] = h5py.ExternalLink(other, "/")
            g[name] = h5py.SoftLink("/elsewhere/stolen")
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape, "<f4")
            layout[...] = h5py.VirtualSource(other, "stolen", shape)
            g.create_virtual_dataset(name, layout)
        else:                                           # HDF5 would search its plugin folders for this filter
            d = g.create_dataset(name, shape, "<f4", chunks=shape, compression=PLUGIN, allow_unknown_filter=True)
            d.id.write_direct_chunk((0,) * len(shape), SECRET)
    return p, [str(secret), other]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", ["vggnumpy", "keras"])
def test_hdf5_data_in_another_file_is_refused(originals, tmp_path, fmt, kind):
    p, _ = _hostile(originals, tmp_path, fmt, kind)
    group, name, _ = TARGET[fmt]
    msg = rf"{re.escape(os.path.basename(p))}: .*{group}/{name}.*another file.*only data inside the file you name"
    _refused(lambda: convert_file(p), msg)
    if fmt == "vggnumpy":
        _refused(lambda: wmod.load(p), msg)
    _cli_refuses(p, tmp_path, "another file")


def test_keras_model_weights_in_another_file_is_refused(originals, tmp_path):
    p = str(tmp_path / "model.h5")
    with h5py.File(p, "w") as f:                        # a Keras model file whose weights group is another file
        f["model_weights"] = h5py.ExternalLink(originals["keras"], "/")
    _refused(lambda: convert_file(p), r"model.h5: model_weights is an external link .*another file")
    _cli_refuses(p, tmp_path, "another file")


def _strace(tmp_path, path):
    """File-name system calls of `vggnumpy weights convert PATH`, or None where strace cannot trace here."""
    trace = tmp_path / "trace.txt"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    env = dict(os.environ, HDF5_PLUGIN_PATH=str(plugins))
    r = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=%file", "-o", str(trace), sys.executable,
                        "-m", "vggnumpy", "weights", "convert", path, "-o", str(tmp_path / "out.h5")],
                       capture_output=True, cwd=ROOT, timeout=300, env=env)
    text = trace.read_text() if trace.exists() else ""
    if path not in text:
        pytest.skip(f"strace cannot trace here: {r.stderr.decode()[-300:]}")
    return text, str(plugins)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to see which files are opened")
@pytest.mark.parametrize("kind", KINDS + ["model_weights"])
def test_no_other_file_is_touched(originals, tmp_path, kind):
    if kind == "model_weights":
        p, others = str(tmp_path / "model.h5"), [originals["keras"]]
        with h5py.File(p, "w") as f:
            f["model_weights"] = h5py.ExternalLink(originals["keras"], "/")
    else:
        p, others = _hostile(originals, tmp_path, "vggnumpy", kind)
    text, plugins = _strace(tmp_path, p)
    for other in others + [plugins]:
        assert other not in text, [line for line in text.splitlines() if other in line]


# ------------------------------------------------------------------ HDF5 sizes declared beyond the file


def _tiny(path, fmt, make):
    """A file of a few KB holding only conv1_1, whose kernel make(group, name, shape) creates."""
    group, name, shape = TARGET[fmt]
    with h5py.File(path, "w") as f:
        if fmt == "vggnumpy":
            f.attrs.update(format=wmod.FORMAT, format_version=1, arch="vgg16", channel_order="RGB",
                           pixel_scale=1.0, mean=[0.5] * 3, std=[0.25] * 3)
            g = f.create_group(group)
            make(g, name, shape)
            g["bias"] = np.zeros(64, np.float32)
        else:
            f.attrs["layer_names"] = [group.encode()]
            g = f.create_group(group)
            g.attrs["weight_names"] = [name.encode(), b"block1_conv1_b_1:0"]
            make(g, name, shape)
            g["block1_conv1_b_1:0"] = np.zeros(64, np.float32)


def _huge(g, name, shape):                              # chunked, nothing written: HDF5 would fill 36 TiB
    big = (HUGE, HUGE, 3, 3) if shape[0] == 64 else (3, 3, HUGE, HUGE)
    g.create_dataset(name, big, "<f4", chunks=tuple(min(n, 64) for n in big))


SIZES = {"huge-shape": (_huge, r"has shape \(.*1048576.*\), expected"),
         "unwritten": (lambda g, n, s: g.create_dataset(n, s, "<f4"), r"declares 6912 bytes but keeps 0"),
         "unwritten-gzip": (lambda g, n, s: g.create_dataset(n, s, "<f4", chunks=(3,) * 3 + (1,), compression="gzip"),
                            r"declares 6912 bytes but keeps 0")}


@pytest.mark.parametrize("case", list(SIZES))
@pytest.mark.parametrize("fmt", ["vggnumpy", "keras"])
def test_hdf5_declared_size_beyond_the_file(tmp_path, fmt, case):
    make, words = SIZES[case]
    p = str(tmp_path / f"tiny-{fmt}.h5")
    _tiny(p, fmt, make)
    assert os.path.getsize(p) < 16384
    group, name, _ = TARGET[fmt]
    _refused(lambda: convert_file(p), rf"tiny-{fmt}.h5: .*{group}/{name}.* {words}")
    if fmt == "vggnumpy":
        _refused(lambda: wmod.load(p), rf"tiny-{fmt}.h5: .*{words}")
    _cli_refuses(p, tmp_path, words.replace("\\", ""))


def test_hdf5_compressed_data_is_read_and_unwritten_chunks_refused(originals, tmp_path):
    """The size check allows compression (stored bytes x 1100 >= declared bytes) and refuses unwritten chunks."""
    p = str(tmp_path / "gzip.h5")
    shutil.copy(originals["vggnumpy"], p)
    with h5py.File(p, "a") as f:
        k = f["conv5_3/weight"][...]
        del f["conv5_3/weight"], f["conv1_1/bias"]
        f.create_dataset("conv5_3/weight", data=k, chunks=(64, 64, 3, 3), compression="gzip", shuffle=True)
        f.create_dataset("conv1_1/bias", data=np.zeros(64, np.float32), chunks=(64,), compression="gzip")
    w = wmod.load(p)
    np.testing.assert_array_equal(w.params["conv5_3"][0], k)
    with h5py.File(p, "a") as f:                        # one chunk of eight left unwritten: filled, not held
        del f["conv5_3/weight"]
        d = f.create_dataset("conv5_3/weight", k.shape, "<f4", chunks=(64, 512, 3, 3), compression="gzip")
        d[:448] = k[:448]
    _refused(lambda: wmod.load(p), r"gzip.h5: .*conv5_3/weight declares 9437184 bytes but keeps \d+ in the file "
                                   r"\(7 of its 8 chunks")


# ------------------------------------------------------------------ PyTorch .pth


def _torch_zip(path, data_pkl, records=(), compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, raw in records:
            z.writestr(f"archive/data/{key}", raw, compress_type=compress)
        z.writestr("archive/version", "3\n")


def _legacy_head():
    return (pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2)
            + pickle.dumps(dict(protocol_version=1001, little_endian=True), protocol=2))


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_torch_tensor_larger_than_its_storage(tmp_path, fmt):
    obj, storages = wf._state({"features.0.weight": np.ones(1, np.float32)})
    t = obj["features.0.weight"]
    t.shape, t.stride = (HUGE, HUGE, 3, 3), (0, 0, 0, 0)   # one stored value repeated 36 TiB worth
    p = str(tmp_path / f"wide-{fmt}.pth")
    if fmt == "zip":
        _torch_zip(p, wf._dump(obj, legacy=False), [("1000", b"\0\0\x80?")])
    else:
        with open(p, "wb") as f:
            f.write(wf.legacy_bytes(obj, storages))
    _refused(lambda: convert_file(p), rf"wide-{fmt}.pth: tensor features.0.weight .*9895604649984 values.*holds 1")
    _cli_refuses(p, tmp_path, "features.0.weight")


def test_torch_compressed_record_is_refused(tmp_path):
    n = 16 << 20                                        # 64 MiB of zeros deflate to about 64 KiB
    s = wf._Storage("0", np.broadcast_to(np.float32(0), (n,)))
    obj = collections.OrderedDict([("features.0.weight", wf._Tensor(s, 0, (n,)))])
    p = str(tmp_path / "bomb.pth")
    _torch_zip(p, wf._dump(obj, legacy=False), [("0", bytes(4 * n))], zipfile.ZIP_DEFLATED)
    assert os.path.getsize(p) < 1 << 20
    _refused(lambda: convert_file(p), r"bomb.pth: storage 0 is compressed", peak=16 << 20)


# BINBYTES8 declaring 4 GiB with 3 bytes after it; CPython's unpickler allocates the declared length first.
LONG_BYTES = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 32) + b"abc"
# EMPTY_DICT, LONG_BINPUT 2**24: CPython's unpickler grows its memo to 2 * 2**24 slots (256 MiB) and zeroes them.
FAR_MEMO = b"\x80\x02}r" + struct.pack("<I", 1 << 24) + b"."


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("payload,words", [(LONG_BYTES, r"declares 4294967296 bytes .* but only \d+ remain"),
                                           (FAR_MEMO, r"memo index 16777216")], ids=["length", "memo"])
def test_pickle_declaring_more_than_it_holds(tmp_path, fmt, payload, words):
    p = str(tmp_path / f"pkl-{fmt}.pth")
    if fmt == "zip":
        _torch_zip(p, payload)
    else:
        with open(p, "wb") as f:
            f.write(_legacy_head() + payload + pickle.dumps([], protocol=2))
    _refused(lambda: convert_file(p), rf"pkl-{fmt}.pth: .*{words}", peak=16 << 20)


# ------------------------------------------------------------------ MatConvNet .mat (v5) and Caffe


def _mat_elem(kind, payload, declared=None):
    n = len(payload) if declared is None else declared
    return struct.pack("<II", kind, n) + payload + b"\0" * (-len(payload) % 8)


def _mat_single(name, dims, data, declared):
    """A miMATRIX of class single whose data element declares `declared` bytes."""
    body = (_mat_elem(6, struct.pack("<II", 7, 0)) + _mat_elem(5, struct.pack(f"<{len(dims)}i", *dims))
            + _mat_elem(1, name.encode()) + _mat_elem(7, data, declared))
    return _mat_elem(14, body)


@pytest.mark.parametrize("compressed", [False, True])
def test_mat_element_declaring_more_than_the_file(tmp_path, compressed):
    var = _mat_single("layers", [1, 4], np.arange(4, dtype="<f4").tobytes(), declared=2 ** 32 - 8)   # 4 GiB
    if compressed:
        z = zlib.compress(var)
        var = struct.pack("<II", 15, len(z)) + z
    head = b"MATLAB 5.0 MAT-file, hostile".ljust(116) + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    p = str(tmp_path / "big.mat")
    with open(p, "wb") as f:
        f.write(head + var)
    _refused(lambda: convert_file(p), r"big.mat: .*declares 4294967288 bytes", peak=16 << 20)
    _cli_refuses(p, tmp_path, "declares")


def test_caffe_shape_whose_product_overflows(tmp_path):
    shape = wf._ld(7, wf._ld(1, b"".join(wf._varint(d) for d in (2 ** 62, 4))))    # 2**64 values: 0 in int64
    layer = wf._s(1, "conv1_1") + wf._s(2, "Convolution") + wf._ld(7, shape) + wf._ld(7, wf.blob(np.zeros(64)))
    p = str(tmp_path / "wrap.caffemodel")
    with open(p, "wb") as f:
        f.write(wf._s(1, "net") + wf._ld(100, layer))
    _refused(lambda: convert_file(p), r"wrap.caffemodel: layer conv1_1 has a blob of 0 values for shape")
    _cli_refuses(p, tmp_path, "blob of 0 values")
