"""A new user's hostile runs: outputs onto inputs, numbers out of range, image bombs, signals, tiny budgets."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from vggnumpy import optim

pytestmark = pytest.mark.slow

FAST = ["-s", "40", "--scales", "1", "-n", "2", "--no-progress"]


def run_cli(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "vggnumpy", *args], capture_output=True, text=True, cwd=cwd)
    return p.returncode, p.stderr


def _png(path, seed, size=(48, 40)):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture
def pics(tmp_path):
    return _png(tmp_path / "c.png", 0), _png(tmp_path / "s.png", 1)


def _files(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


def _refused(tmp_path, args, expect):
    """The run fails with a clear message naming `expect`; no file in tmp_path is created or changed."""
    before = _files(tmp_path)
    code, err = run_cli(*args)
    assert code != 0 and "Traceback" not in err, err
    assert expect in err, err
    assert _files(tmp_path) == before


def test_gif_onto_the_content_image(tmp_path):
    c = str(tmp_path / "c.gif")
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(c)
    s = _png(tmp_path / "s.png", 1)
    _refused(tmp_path, ["style", c, s, "-o", str(tmp_path / "o.png"), "--gif", c, *FAST], "GIF would overwrite")


@pytest.mark.parametrize("case", ["frame-is-style", "plot-is-output", "plot-is-frame", "plot-is-content",
                                  "symlink-output", "hardlink-output", "trace-is-init"])
def test_no_output_resolves_to_an_input_or_another_output(tmp_path, pics, case):
    c, s = pics
    out = str(tmp_path / "o.png")
    args = ["style", c, s, "-o", out, *FAST]
    if case == "frame-is-style":
        s2 = _png(tmp_path / "o_0002.png", 2)
        args = ["style", c, s2, "-o", out, "--save-every", "2", *FAST]
    elif case == "plot-is-output":
        args += ["--plot", out]
    elif case == "plot-is-frame":
        args += ["--save-every", "1", "--plot", str(tmp_path / "o_0001.png")]
    elif case == "plot-is-content":
        args += ["--plot", c]
    elif case == "symlink-output":
        os.symlink(c, str(tmp_path / "link.png"))
        args[4] = str(tmp_path / "link.png")
    elif case == "hardlink-output":
        os.link(c, str(tmp_path / "hard.png"))
        args[4] = str(tmp_path / "hard.png")
    elif case == "trace-is-init":
        init = tmp_path / "i.json"
        init.write_bytes(open(c, "rb").read())             # an image whatever its name
        args += ["--init-image", str(init), "--trace", str(init)]
    _refused(tmp_path, args, "would overwrite" if case != "plot-is-output" else "same file")


@pytest.mark.parametrize("option, value, expect", [
    ("--size", "100000", "--size"), ("--size", "0", "--size"), ("--style-scale", "inf", "--style-scale"),
    ("--style-scale", "nan", "--style-scale"), ("--style-scale", "0", "--style-scale"),
    ("--style-scale", "100", "--style-scale"), ("--content-weight", "nan", "--content-weight"),
    ("--style-weight", "-1", "--style-weight"), ("--tv-weight", "inf", "--tv-weight"),
    ("--learning-rate", "nan", "--learning-rate"), ("--learning-rate", "0", "--learning-rate"),
    ("--seed", "-1", "--seed"), ("--lbfgs-memory", "0", "--lbfgs-memory"), ("--iterations", "-3", "--iterations"),
    ("--style-layer-weights", "1,nan,1,1,1", "--style-layer-weights"),
    ("--style-blend-weights", "inf", "--style-blend-weights"),
    ("--style-blend-weights", "0", "--style-blend-weights"), ("--scales", "0", "--scales"),
    ("--scales", "40", "--scales"), ("--scale-iterations", "3,-1", "--scale-iterations"),
    ("--print-every", "-2", "--print-every"), ("--max-memory", "10M", "--max-memory"),
    ("--max-memory", "lots", "--max-memory"), ("--max-memory", "-4G", "--max-memory"), ("--gif", "x.png", "--gif"),
    ("--trace", "t.txt", "--trace"),
])
def test_every_number_option_is_checked(tmp_path, pics, option, value, expect):
    c, s = pics
    _refused(tmp_path, ["style", c, s, "-o", str(tmp_path / "o.png"), *FAST, option, value], expect)


def test_style_scale_has_an_upper_bound_that_the_error_states(tmp_path, pics):
    c, s = pics
    _refused(tmp_path, ["style", c, s, "-o", str(tmp_path / "o.png"), "-s", "4096", "--style-scale", "3"],
             "limit is 8192 px")


@pytest.mark.parametrize("side", [20000, 12500])
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, side):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(bomb)                 # a few KB declaring 156-400 million pixels
    assert os.path.getsize(bomb) < 200_000
    s = _png(tmp_path / "s.png", 1)
    start = time.perf_counter()
    _refused(tmp_path, ["style", str(bomb), s, "-o", str(tmp_path / "o.png"), *FAST], "bomb.png")
    assert time.perf_counter() - start < 20


def test_a_gif_of_a_short_run_is_written(tmp_path, pics):
    c, s = pics
    gif = str(tmp_path / "p.gif")
    code, err = run_cli("style", c, s, "-o", str(tmp_path / "o.png"), "--gif", gif, "-s", "40", "--scales", "1",
                        "-n", "4", "--no-progress")
    assert code == 0, err
    with Image.open(gif) as g:
        assert g.n_frames >= 4                               # one per iteration, and the final image


def test_adam_reports_the_loss_of_the_iterate_it_hands_out():
    target = np.linspace(0.1, 0.9, 50).astype(np.float32)
    fun = lambda x: (float(np.sum((x - target) ** 2)), (2 * (x - target)).astype(np.float32))
    seen = []
    optim.adam(fun, np.full(50, 0.5, np.float32), 20, lr=0.05,
               on_iter=lambda i, x, f: seen.append((f, fun(x)[0])) and False)
    assert len(seen) == 20
    for reported, actual in seen:
        assert reported == pytest.approx(actual, rel=1e-6)


def test_lbfgs_steps_carry_the_terms_of_their_own_iterate():
    """Not those of the last evaluation, which may be a line-search trial point."""
    target = np.linspace(0.1, 0.9, 40).astype(np.float32)

    def fun(x):
        r = x - target
        return float(np.sum(r ** 4)), (4 * r ** 3).astype(np.float32), {"first pixel": float(x[0])}
    steps = list(optim.steps("lbfgs", fun, np.full(40, 0.5, np.float32), 15))
    assert len(steps) == 15
    for st in steps:
        assert st.parts["first pixel"] == pytest.approx(float(st.x[0]), abs=1e-7)
        assert st.loss == pytest.approx(fun(st.x)[0], rel=1e-5)


def _start(tmp_path, pics, *extra):
    c, s = pics
    out = str(tmp_path / "o.png")
    p = subprocess.Popen([sys.executable, "-m", "vggnumpy", "style", c, s, "-o", out, "-s", "48", "--scales", "1",
                          "-n", "500", "--save-every", "1", "--no-progress", *extra],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(str(tmp_path / "o_0002.png")):
        assert p.poll() is None and time.time() < deadline, p.stderr.read() if p.poll() is not None else "slow"
        time.sleep(0.05)
    return p, out


def _no_temporary(folder):
    assert not [n for n in os.listdir(folder) if n.startswith(".vggnumpy-") or n.endswith(".part")]


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_and_writes_the_best_image_so_far(tmp_path, pics, sig, code):
    p, out = _start(tmp_path, pics)
    p.send_signal(sig)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == code, err
    assert "Traceback" not in err and "wrote" in err
    with Image.open(out) as im:
        assert "vggnumpy:interrupted" in im.info and f"({sig.name})" in im.info["vggnumpy:interrupted"]
        assert im.size == (48, 40)
    _no_temporary(tmp_path)


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_at_once(tmp_path, pics):
    p, out = _start(tmp_path, pics)
    p.send_signal(signal.SIGINT)
    time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 130 and "Traceback" not in err, err
    _no_temporary(tmp_path)


def test_sigterm_while_weights_are_saved_leaves_no_temporary_file(tmp_path):
    """The signal arrives while the HDF5 file is half written."""
    out = str(tmp_path / "w.h5")
    script = (
        "import os, signal, sys, time, h5py\n"
        "calls = []\n"
        "real = h5py.Group.create_dataset\n"
        "def slow(self, *a, **k):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 9:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(2)\n"
        "    return real(self, *a, **k)\n"
        "h5py.Group.create_dataset = slow\n"
        "from vggnumpy.cli.main import main\n"
        f"sys.exit(main(['weights', 'random', '--arch', 'vgg16', '-o', {out!r}]))\n")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert p.returncode == 143 and "Traceback" not in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []


def test_a_size_beyond_the_machine_is_refused_before_the_work(tmp_path, pics, monkeypatch):
    """--size 8192 is in range but needs ~160 GB untiled and ~10 GB tiled: within 2G it is a clear error naming
    --size and --max-memory, not a MemoryError."""
    c, s = pics
    _refused(tmp_path, ["style", c, s, "-o", str(tmp_path / "o.png"), "-s", "8192", "--scales", "1", "-n", "1",
                        "--no-progress", "--max-memory", "2G"], "--size 8192: this run needs at least")


def test_the_memory_model_is_close_to_the_measured_peaks():
    """bench_eval.py's peak resident memory of one VGG-19 evaluation (benchmarks/README.md): within 10%."""
    from vggnumpy.run import memory
    for side, measured_mib in [(256, 336), (512, 584), (1024, 1579), (2048, 5771)]:
        model = memory.estimate("vgg19", side, side, "relu5_1", "adam", 0)[1] / 2 ** 20
        assert 0.9 < model / measured_mib < 1.1, (side, model, measured_mib)


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_weights_convert_never_writes_onto_its_input(tmp_path, link):
    from vggnumpy.weights import file as weights
    src = str(tmp_path / "w.h5")
    weights.save(weights.random_weights("vgg16", 0), src)
    other = str(tmp_path / "other.h5")
    (os.symlink if link == "symlink" else os.link)(src, other)
    _refused(tmp_path, ["weights", "convert", src, "-o", other], "would overwrite an input")


def test_a_missing_input_is_named_before_any_weights_are_looked_for(tmp_path, pics):
    c, s = pics
    code, err = run_cli("style", str(tmp_path / "nothere.jpg"), s, "-o", str(tmp_path / "o.png"), *FAST)
    assert code == 1 and "nothere.jpg: content image file not found" in err
    assert "weights" not in err and "Traceback" not in err         # no download or cache step was tried
