"""End-to-end runs of the command line on real images at small sizes, and its handling of bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import shared_image
from vggnumpy.cli.main import main

FAST = ["-s", "48", "--scales", "1", "-n", "4", "--no-progress"]


def run_cli(*args):
    """Run the installed-style entry point in a subprocess; returns (exit code, stderr)."""
    p = subprocess.run([sys.executable, "-m", "vggnumpy", *args], capture_output=True, text=True)
    return p.returncode, p.stderr


@pytest.mark.slow
def test_style_on_real_images_writes_valid_image(tmp_path):
    content = shared_image("content", "tubingen.jpg")
    style = shared_image("style", "starry_night.jpg")
    out = str(tmp_path / "out.png")
    code, err = run_cli("style", content, style, "-o", out, "-s", "64", "--scales", "2", "-n", "10",
                        "--scale-iterations", "5,5")
    assert code == 0, err
    assert "UNTRAINED" in err                       # the loud warning
    with Image.open(out) as im:
        assert im.format == "PNG" and max(im.size) == 64 and im.mode == "RGB"
        assert "UNTRAINED" in im.info["vggnumpy:warning"]
        a = np.asarray(im)
    assert a.std() > 5                              # an image, not a flat colour


@pytest.mark.slow
def test_options_two_styles_blend_colors_frames_gif_adam(tmp_path):
    content = shared_image("content", "golden_gate.jpg")
    s1, s2 = shared_image("style", "the_scream.jpg"), shared_image("style", "starry_night.jpg")
    out = str(tmp_path / "o.jpg")
    gif = str(tmp_path / "p.gif")
    code = main(["style", content, s1, s2, "-o", out, "--style-blend-weights", "3,1", "--original-colors",
                 "--save-every", "2", "--gif", gif, "--optimizer", "adam", "--init", "noise", "--seed", "3",
                 "--print-every", "2", "--style-scale", "0.5", "--pooling", "avg", "--style-layers",
                 "relu1_1,relu2_1", "--style-layer-weights", "1,2", "--content-layers", "relu3_2", *FAST])
    assert code == 0
    assert Image.open(out).format == "JPEG"
    assert os.path.exists(str(tmp_path / "o_0002.jpg")) and os.path.exists(str(tmp_path / "o_0004.jpg"))
    with Image.open(gif) as g:
        assert g.is_animated and g.n_frames == 2


@pytest.mark.slow
def test_init_image_and_vgg16(tmp_path):
    content = shared_image("content", "tubingen.jpg")
    style = shared_image("style", "the_scream.jpg")
    out = str(tmp_path / "o.png")
    assert main(["style", content, style, "-o", out, "--init-image", style, "--arch", "vgg16", *FAST]) == 0
    assert Image.open(out).size[0] == 48


@pytest.mark.slow
def test_demo_needs_no_files(tmp_path):
    out = str(tmp_path / "demo.png")
    code, err = run_cli("demo", "-o", out, "-s", "64", "-n", "5", "--no-progress")
    assert code == 0, err
    assert Image.open(out).size == (64, 51)
    assert os.path.exists(str(tmp_path / "demo_content.png")) and os.path.exists(str(tmp_path / "demo_style.png"))


def _snapshot(folder):
    return {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}


@pytest.mark.parametrize("case", ["missing", "unreadable", "tiny", "bad-ext", "bad-weights", "bad-layer",
                                  "bad-blend", "out-is-input"])
def test_bad_input_clear_error_nonzero_exit_nothing_written(tmp_path, case):
    content = shared_image("content", "tubingen.jpg")
    style = shared_image("style", "starry_night.jpg")
    out = tmp_path / "out.png"
    out.write_bytes(b"the user's earlier result")            # must survive any failure untouched
    args = ["style", content, style, "-o", str(out), *FAST]
    expect = None
    if case == "missing":
        args[2], expect = str(tmp_path / "nope.jpg"), "nope.jpg"
    elif case == "unreadable":
        bad = tmp_path / "bad.jpg"
        bad.write_text("not an image")
        args[1], expect = str(bad), "bad.jpg"
    elif case == "tiny":
        Image.new("RGB", (6, 6)).save(tmp_path / "tiny.png")
        args[1], expect = str(tmp_path / "tiny.png"), "too small"
    elif case == "bad-ext":
        args[4], expect = str(tmp_path / "out.xyz"), "out.xyz"
    elif case == "bad-weights":
        (tmp_path / "w.h5").write_text("no")
        args += ["--weights", str(tmp_path / "w.h5")]
        expect = "w.h5"
    elif case == "bad-layer":
        args += ["--style-layers", "relu9_1"]
        expect = "relu9_1"
    elif case == "bad-blend":
        args += ["--style-blend-weights", "1,2"]
        expect = "blend"
    elif case == "out-is-input":
        args[4], expect = content, "input"
    before = _snapshot(tmp_path)
    code, err = run_cli(*args)
    assert code != 0
    assert expect in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before


def test_weights_random_and_info(tmp_path, capsys):
    p = str(tmp_path / "r.h5")
    assert main(["weights", "random", "-o", p, "--arch", "vgg16", "--seed", "4"]) == 0
    assert main(["weights", "info", p]) == 0
    text = capsys.readouterr().out
    assert "UNTRAINED" in text and "conv5_3" in text and "14,714,688" in text


@pytest.mark.slow
def test_device_lbfgs_option_runs_on_the_cpu_too(tmp_path):
    content = shared_image("content", "tubingen.jpg")
    style = shared_image("style", "starry_night.jpg")
    out = str(tmp_path / "o.png")
    assert main(["style", content, style, "-o", out, "--optimizer", "lbfgs-device", "--device", "cpu", *FAST]) == 0
    assert Image.open(out).size[0] == 48


@pytest.mark.slow
def test_a_wide_style_at_a_coarse_scale_keeps_the_networks_smallest_input(rng):
    """A 64x40 style at the 24 px scale of a 48 px run: its shorter side is kept at 16 px (VGG-19's smallest input
    to relu5_1), not 15 (the pooling failed: 'input 1x3 is smaller than the 2x2 window')."""
    from vggnumpy.run import pipeline as api
    from vggnumpy.weights.file import random_weights
    content, style = rng.random((36, 48, 3)), rng.random((40, 64, 3))
    res = api.stylize(content, [style], size=48, scales=2, iterations=2, weights=random_weights("vgg19", 0),
                      progress=False, log=lambda m: None)
    assert res.image.shape == (36, 48, 3)
