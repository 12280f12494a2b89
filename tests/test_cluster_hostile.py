"""vggnumpy batch against a hostile or careless cluster setup: a --scheduler that is not one (a web server, a
silent socket, a closed port), SIGTERM while connecting, a dashboard that must stay on this machine, huge grids
of the same few files, and --workers far beyond the cores."""
import http.server
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from conftest import shared_image
from vggnumpy.batch import jobs as batch, run as batch_run, cluster
from vggnumpy.cli.main import main

pytestmark = pytest.mark.slow

pytest.importorskip("distributed")

FAST = dict(size=32, iterations=2, scales=1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _batch_cmd(wfile, out, *extra):
    c, s = shared_image("content", "tubingen.jpg"), shared_image("style", "starry_night.jpg")
    return [sys.executable, "-m", "vggnumpy", "batch", "--contents", c, "--styles", s, "-s", "32", "-n", "2",
            "--scales", "1", "--weights", wfile, "-o", out, "--no-progress", *extra]


def _env(**kw):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update({k: str(v) for k, v in kw.items()})
    return env


class _Web:
    """A plain HTTP server on 127.0.0.1 (python -m http.server's handler), in a thread."""

    def __enter__(self):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"tcp://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class _Silent:
    """A socket on 127.0.0.1 that accepts connections and never says a word; `accepted` is set on the first."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted, self.conns = threading.Event(), []

        def serve():
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                self.conns.append(conn)
                self.accepted.set()
        threading.Thread(target=serve, daemon=True).start()
        return f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc):
        self.sock.close()
        for c in self.conns:
            c.close()


class _Closed:
    """A port on 127.0.0.1 nothing listens on (connection refused)."""

    def __enter__(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return f"tcp://127.0.0.1:{port}"

    def __exit__(self, *exc):
        pass


@pytest.mark.parametrize("server", [_Web, _Silent, _Closed], ids=["web-server", "silent-socket", "closed-port"])
def test_a_scheduler_address_that_is_no_scheduler_fails_within_the_connect_timeout(server, wfile, tmp_path):
    """Not a Dask scheduler there: exit 1 within about the connect timeout (here 3 s), one line naming --scheduler
    and saying what to do; neither a hang (12 minutes against a web server) nor Dask's raw error."""
    with server() as address:
        start = time.monotonic()
        try:
            p = subprocess.run(_batch_cmd(wfile, str(tmp_path / "out"), "--scheduler", address), capture_output=True,
                               text=True, timeout=90, env=_env(VGGNUMPY_CONNECT_TIMEOUT=3))
        except subprocess.TimeoutExpired:
            pytest.fail(f"vggnumpy batch --scheduler {address} still connecting after 90 s")
        took = time.monotonic() - start
    err = p.stderr
    assert p.returncode == 1 and "Traceback" not in err, err
    assert f"--scheduler {address}: {address} is not a Dask scheduler or did not answer" in err, err
    assert "check the address" in err and "Maximum allowed dimension" not in err, err
    assert took < 3 + 20, f"{took:.1f} s (a 3 s connect timeout; the rest is Python starting)"


def test_the_probe_itself_keeps_to_its_deadline():
    """The connect (TCP, Dask's handshake, the identity call) against a silent socket ends at the deadline."""
    with _Silent() as address:
        start = time.monotonic()
        with pytest.raises(batch.BatchError, match="is not a Dask scheduler or did not answer"):
            cluster.probe(address, 1.5)
        assert time.monotonic() - start < 1.5 + 2


def test_sigterm_while_connecting_to_a_scheduler_ends_the_process_within_2_s(wfile, tmp_path):
    """SIGTERM during the connect (a silent --scheduler, a 60 s connect timeout) ends it within 2 s: exit 143,
    no traceback; the connect neither swallows the signal's exception nor waits for its own deadline."""
    silent = _Silent()
    with silent as address:
        start = time.monotonic()
        p = subprocess.Popen(_batch_cmd(wfile, str(tmp_path / "out"), "--scheduler", address),
                             stderr=subprocess.PIPE, text=True, env=_env(VGGNUMPY_CONNECT_TIMEOUT=60))
        try:
            while not silent.accepted.wait(0.05) and p.poll() is None and time.monotonic() - start < 60:
                pass                                                     # until it is connecting
            time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))       # and at least 1 s after the start
            assert silent.accepted.is_set() and p.poll() is None, p.stderr.read()
            p.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            try:
                err = p.communicate(timeout=2)[1]
            except subprocess.TimeoutExpired:
                pytest.fail("still running 2 s after SIGTERM while connecting to the scheduler")
            assert time.monotonic() - sent < 2
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert p.returncode == 143 and "Traceback" not in err, err


def _listening(pids):
    import psutil
    out = []
    for pid in pids:
        for c in psutil.Process(pid).net_connections("inet"):
            if c.status == psutil.CONN_LISTEN:
                out.append((pid, c.laddr.ip, c.laddr.port))
    return out


@pytest.mark.parametrize("processes", [False, True], ids=["in-process", "worker-processes"])
def test_the_local_cluster_and_its_dashboard_listen_on_this_machine_only(processes):
    """Scheduler, workers and dashboard of our LocalCluster: every listening socket on 127.0.0.1; the printed
    dashboard link is where it listens."""
    import psutil
    me = psutil.Process()
    before = {(ip, port) for _, ip, port in _listening([me.pid])}
    lines = []
    client, cl = cluster.connect(workers=1, processes=processes, log=lines.append)
    try:
        pids = [me.pid] + [c.pid for c in me.children(recursive=True)]
        socks = [s for s in _listening(pids) if s[0] != me.pid or (s[1], s[2]) not in before]
        port = cl.scheduler.http_server.port
    finally:
        client.close()
        cl.close()
    assert socks and any(p == port for _, _, p in socks)
    assert all(ip == "127.0.0.1" for _, ip, _ in socks), socks
    assert f"dashboard http://127.0.0.1:{port}/status" in lines[0], lines


def test_the_dashboard_flag_says_what_it_exposes_and_refuses_a_bad_address(tmp_path, capsys):
    from vggnumpy.cli.main import build_parser
    p = build_parser()
    args = p.parse_args(["batch", "--contents", "C", "--styles", "S", "-o", "x", "--dashboard-address", "0.0.0.0:8787"])
    assert args.dashboard_address == "0.0.0.0:8787"
    sub = next(a for a in p._subparsers._group_actions if a.choices and "batch" in a.choices).choices["batch"]
    text = " ".join(sub.format_help().split())
    for word in ("--dashboard-address", "127.0.0.1", "identity", "folders", "memory", "logs", "exceptions"):
        assert word in text, word
    c, s = shared_image("content", "tubingen.jpg"), shared_image("style", "starry_night.jpg")
    code = main(["batch", "--contents", c, "--styles", s, "-o", str(tmp_path / "out"), "--dashboard-address", "8787"])
    err = capsys.readouterr().err
    assert code == 1 and "--dashboard-address 8787: give HOST:PORT" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_the_dashboard_address_reaches_the_cluster(wfile, tmp_path, monkeypatch):
    """--dashboard-address goes to LocalCluster(dashboard_address=...); the scheduler stays on 127.0.0.1."""
    import distributed
    seen = {}

    class Stop(Exception):
        pass

    def fake(**kw):
        seen.update(kw)
        raise Stop()
    monkeypatch.setattr(distributed, "LocalCluster", fake)
    c, s = shared_image("content", "tubingen.jpg"), shared_image("style", "starry_night.jpg")
    with pytest.raises(Stop):
        main(["batch", "--contents", c, "--styles", s, "-s", "32", "-n", "2", "--scales", "1", "--weights", wfile,
              "-o", str(tmp_path / "out"), "--no-progress", "--dashboard-address", "127.0.0.1:8799"])
    assert seen["dashboard_address"] == "127.0.0.1:8799" and seen.get("host") == "127.0.0.1"
    seen.clear()
    with pytest.raises(Stop):
        cluster.connect(workers=1, log=lambda m: None)
    assert seen["dashboard_address"] == "127.0.0.1:0" and seen["host"] == "127.0.0.1"


def _two_images():
    return shared_image("content", "tubingen.jpg"), shared_image("style", "starry_night.jpg")


def test_many_tasks_of_the_same_two_images_hold_them_once(wfile):
    """2000 packed tasks of the same 2 images: the client holds the images once (not 2000 copies), and a pickled
    task (what goes to a worker) holds no image bytes, under 10 KB."""
    c, s = _two_images()
    size = os.path.getsize(c) + os.path.getsize(s)
    jobs = batch.grid([c], [(s,)], {"style_weight": [float(k) for k in range(1, 1001)]}, dict(FAST, weights=wfile)) * 2
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        shared = {}
        tasks = [batch.pack(j, shared=shared) for j in jobs]
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(tasks) == 2000
    assert held < 2 * size + 2000 * 8_000, f"{held} bytes for 2000 tasks of {size} bytes of images"
    with open(c, "rb") as f:
        head = f.read()[1000:1064]
    blob = pickle.dumps(tasks[-1])
    assert len(blob) < 10_000 and head not in blob


def test_dask_gets_each_distinct_file_once(wfile, tmp_path, monkeypatch):
    """A grid of 1 photo x 2 paintings x 2 style weights (4 tasks, 3 distinct files): each file is scattered to the
    cluster once, every submitted task is small, and the outputs are those of the sequential run."""
    import distributed
    c = shared_image("content", "tubingen.jpg")
    s1, s2 = shared_image("style", "starry_night.jpg"), shared_image("style", "the_scream.jpg")
    jobs = batch.grid([c], [(s1,), (s2,)], {"style_weight": [5.0, 20.0]}, dict(FAST, weights=wfile))
    scattered, submitted = [], []
    real_scatter, real_submit = distributed.Client.scatter, distributed.Client.submit

    def scatter(self, data, *a, **kw):
        values = data.values() if isinstance(data, dict) else data if isinstance(data, (list, tuple)) else [data]
        scattered.extend(len(v) for v in values)
        return real_scatter(self, data, *a, **kw)

    def submit(self, func, *args, **kw):
        if args and isinstance(args[0], batch.Task):
            submitted.append(len(pickle.dumps(args[0])))
        return real_submit(self, func, *args, **kw)
    monkeypatch.setattr(distributed.Client, "scatter", scatter)
    monkeypatch.setattr(distributed.Client, "submit", submit)
    _, summary = batch_run.run_batch(jobs, str(tmp_path / "dask"), workers=1, processes=False, log=lambda m: None,
                                     progress=False, sheet=False)
    assert summary["done"] == 4, summary
    assert sorted(scattered) == sorted(os.path.getsize(p) for p in (c, s1, s2))
    assert len(submitted) == 4 and max(submitted) < 10_000
    _, here = batch_run.run_batch(jobs, str(tmp_path / "here"), sequential=True, log=lambda m: None, progress=False,
                                  sheet=False)
    assert here["done"] == 4
    names = sorted(n for n in os.listdir(tmp_path / "here") if n.endswith(".png"))
    assert names and all((tmp_path / "here" / n).read_bytes() == (tmp_path / "dask" / n).read_bytes() for n in names)


def test_too_many_workers_are_refused_before_any_process_starts(wfile, tmp_path, monkeypatch, capsys):
    """--workers above 4 per core: exit 1, one line naming --workers, the cores and the limit; no cluster made,
    nothing read or written."""
    import distributed
    made = []
    monkeypatch.setattr(distributed, "LocalCluster", lambda **kw: made.append(kw) or pytest.fail("a cluster started"))
    n, limit = cluster.cores(), cluster.WORKERS_PER_CORE * cluster.cores()
    c, s = _two_images()
    code = main(["batch", "--contents", c, "--styles", s, "-s", "32", "-n", "2", "--scales", "1", "--weights", wfile,
                 "-o", str(tmp_path / "out"), "--no-progress", "--workers", str(limit + 1)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and not made, err
    assert f"--workers {limit + 1}:" in err and f"{n} core" in err and f"--workers {limit} or fewer" in err, err
    assert not (tmp_path / "out").exists()
    jobs = batch.grid([c], [(s,)], {}, dict(FAST, weights=wfile))
    with pytest.raises(batch.BatchError, match=f"--workers 1000: .*at most {limit} worker processes"):
        batch_run.run_batch(jobs, str(tmp_path / "lib"), workers=1000, processes=False, log=lambda m: None,
                            progress=False, sheet=False)
    assert not made
