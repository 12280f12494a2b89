"""Video end to end: a pan over a photo styled frame by frame, resume, independent frames, warped starts, bad inputs."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")

import clips                                    # benchmarks/clips.py (conftest puts benchmarks/ on the path)
from conftest import shared_image
from vggnumpy.run import pipeline as api
from vggnumpy.files import images
from vggnumpy.video import clip as video, frames as videoio
from vggnumpy.weights.file import random_weights

pytestmark = pytest.mark.slow

# Small and quick: the untrained VGG-19 (seed 0) at 48 px, few iterations.
FAST = dict(size=48, iterations=4, scales=1, frame_iterations=2, progress=False)


@pytest.fixture(scope="module")
def weights():
    return random_weights("vgg19", 0)


@pytest.fixture(scope="module")
def pan(tmp_path_factory):
    """The 24-frame camera pan and zoom over tubingen.jpg, as an MP4 through PyAV."""
    path = str(tmp_path_factory.mktemp("clip") / "pan.mp4")
    clips.write_clip(path, clips.pan_zoom(shared_image("content", "tubingen.jpg"), frames=24, size=64), fps=24)
    return path


def _style():
    return shared_image("style", "starry_night.jpg")


def _frames(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith("frame_"))


def test_folder_output_writes_every_frame_with_its_settings(pan, tmp_path, weights):
    out = str(tmp_path / "frames")
    res = video.stylize_video(pan, [_style()], out, weights=weights, frames=5, log=lambda m: None, **FAST)
    assert not res.interrupted and len(res.frames) == 5 and _frames(out) == [f"frame_{i:05d}.png" for i in range(1, 6)]
    first = images.load_image(res.frames[0].path)
    assert first.shape == (36, 48, 3)                        # 64x48 -> longest side 48, both sides even
    assert len({video.frame_hash(f.path) for f in res.frames}) == 1
    assert [f.iterations for f in res.frames] == [4, 2, 2, 2, 2]


def test_a_rerun_skips_finished_frames_and_resume_equals_one_run(pan, tmp_path, weights):
    """Stopped during frame 3, then run again: frames 1-2 are kept untouched and frames 3-5 come out byte-identical
    in their pixels to those of an uninterrupted run (warping reads the written PNGs in both)."""
    whole = str(tmp_path / "whole")
    video.stylize_video(pan, [_style()], whole, weights=weights, frames=5, log=lambda m: None, **FAST)
    part = str(tmp_path / "part")
    done = []
    stop = lambda: "SIGINT" if len(done) >= 2 else ""
    res = video.stylize_video(pan, [_style()], part, weights=weights, frames=5, log=lambda m: None, stop=stop,
                              on_frame=done.append, **FAST)
    assert res.interrupted == "SIGINT" and _frames(part) == ["frame_00001.png", "frame_00002.png"]
    stamps = [os.stat(os.path.join(part, n)).st_mtime_ns for n in _frames(part)]
    res = video.stylize_video(pan, [_style()], part, weights=weights, frames=5, log=lambda m: None, **FAST)
    assert [f.skipped for f in res.frames] == [True, True, False, False, False]
    assert stamps == [os.stat(os.path.join(part, n)).st_mtime_ns for n in _frames(part)[:2]]
    for n in _frames(whole):
        a, b = (images.to_uint8(images.load_image(os.path.join(d, n))) for d in (whole, part))
        assert np.array_equal(a, b), n


def test_temporal_weight_zero_is_independent_frames(pan, tmp_path, weights):
    """Each frame equals the still-image run on that frame (to 8-bit rounding: both written as PNG)."""
    out = str(tmp_path / "indep")
    res = video.stylize_video(pan, [_style()], out, weights=weights, frames=3, temporal_weight=0,
                              log=lambda m: None, **FAST)
    assert [f.iterations for f in res.frames] == [4, 4, 4]
    frames = [f for _, f in zip(range(3), videoio.open_frames(pan))]
    opts = {k: v for k, v in FAST.items() if k != "frame_iterations"}
    still = api.stylize(images.resize_to(frames[2].astype(np.float32) / 255, 36, 48), [_style()], weights=weights,
                        log=lambda m: None, **opts)
    assert np.array_equal(images.to_uint8(still.image), images.to_uint8(images.load_image(res.frames[2].path)))


def test_a_frame_starts_from_the_previous_output_warped(tmp_path, weights):
    """A texture moving 2 px right per frame, zero iterations after the first: frame 2 is frame 1's output shifted
    by 2 px (exactly, on the part that was in frame 1), and the uncovered strip comes from frame 2's content."""
    src = str(tmp_path / "tex")
    os.makedirs(src)
    clips.write_clip(src, clips.shifted_texture(48, 64, [(2, 0)]))
    out = str(tmp_path / "out")
    res = video.stylize_video(src, [_style()], out, weights=weights, log=lambda m: None,
                              **dict(FAST, size=64, frame_iterations=0))
    a, b = (images.to_uint8(images.load_image(f.path)) for f in res.frames)
    content = images.to_uint8(images.load_image(os.path.join(src, sorted(os.listdir(src))[1])))
    assert np.array_equal(b[8:-8, 10:-8], a[8:-8, 8:-10])         # DIS is exact on a pure shift away from borders
    assert np.abs(b[:, :2].astype(int) - content[:, :2]).max() <= 1


def test_cli_writes_an_mp4_with_the_input_frame_rate_and_resumes(pan, tmp_path):
    out = str(tmp_path / "styled.mp4")
    args = [sys.executable, "-m", "vggnumpy", "video", pan, _style(), "-o", out, "-s", "48", "-n", "3",
            "--frame-iterations", "1", "--no-progress", "--weights", _weights_file(tmp_path)]
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    src, got = videoio.open_frames(pan), videoio.open_frames(out)
    assert got.count == 24 and got.fps == src.fps and got.size == (48, 36)
    assert not os.path.exists(str(tmp_path / "styled_frames"))
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 0 and "nothing to do" in p.stderr


def _weights_file(tmp_path):
    from vggnumpy.weights.file import save
    path = str(tmp_path / "w.h5")
    if not os.path.exists(path):
        save(random_weights("vgg19", 0), path)
    return path


@pytest.mark.parametrize("case", ["png_output", "output_is_input", "foreign_frames", "gif", "missing_input",
                                  "bad_threshold"])
def test_bad_video_input_clear_error_nothing_written(pan, tmp_path, case):
    folder = tmp_path / "in"
    folder.mkdir()
    clips.write_clip(str(folder), clips.shifted_texture(32, 32, [(1, 0)]))
    out, extra, word = str(tmp_path / "out.mp4"), [], ""
    inp = pan
    if case == "png_output":
        out, word = str(tmp_path / "out.png"), "not one image"
    elif case == "output_is_input":
        inp, out, word = str(folder), str(folder), "is the input"
    elif case == "foreign_frames":
        (tmp_path / "out_frames").mkdir()
        images.save_image(str(tmp_path / "out_frames" / "frame_00001.png"), np.zeros((4, 4, 3)))
        word = "not made by vggnumpy video"
    elif case == "gif":
        extra, word = ["--gif", str(tmp_path / "a.gif")], "--gif: not available for video"
    elif case == "missing_input":
        inp, word = str(tmp_path / "nope.mp4"), "nope.mp4"
    elif case == "bad_threshold":
        extra, word = ["--occlusion-threshold", "0.1"], "--occlusion-threshold"
    before = sorted(os.listdir(tmp_path))
    p = subprocess.run([sys.executable, "-m", "vggnumpy", "video", inp, _style(), "-o", out, "-s", "32",
                        "--no-progress", *extra], capture_output=True, text=True)
    assert p.returncode != 0 and word in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_long_term_targets_hold_each_pixel_once(weights):
    """--temporal-frames 1,2 at frame 2: a target per earlier frame, named by how far back it is; a pixel reliable
    in frame 1 is not constrained again by frame 0 (the long-term weights add up to at most 1)."""
    from vggnumpy import config
    frames = [f.astype(np.float32) / 255 for f in clips.shifted_texture(48, 64, [(2, 0), (-2, 0)])]   # back again
    v = config.make_video(temporal_frames=[2, 1])
    fr = video.temporal_frame(2, dict(enumerate(frames)), lambda k: frames[k], v)
    assert [name for name, _, _ in fr.targets] == ["temporal -1", "temporal -2"]
    c1, c2 = fr.targets[0][2], fr.targets[1][2]
    assert c1.mean() > 0.5 and (c1 + c2).max() <= 1
    assert c2[8:-8, -2:].min() == 1 and c2[8:-8, :-4].max() == 0      # frame 0 holds the strip that entered frame 2
    assert fr.start.shape == (48, 64, 3) and fr.weight == v.temporal_weight


def test_ctrl_c_keeps_the_finished_frames(pan, tmp_path):
    """SIGINT once frame 2 exists: exit 130, frames 1..k kept whole (each readable, with the settings), no
    temporary file, no video."""
    import signal
    import time
    out = str(tmp_path / "o.mp4")
    frames = tmp_path / "o_frames"
    p = subprocess.Popen([sys.executable, "-m", "vggnumpy", "video", pan, _style(), "-o", out, "-s", "48", "-n", "3",
                          "--frame-iterations", "2", "--no-progress", "--weights", _weights_file(tmp_path)],
                         stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (frames / "frame_00002.png").exists() and time.time() - t0 < 120 and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130 and "run the same command again" in err, err
    kept = _frames(str(frames))
    assert 2 <= len(kept) < 24 and not os.path.exists(out)
    hashes = {video.frame_hash(str(frames / n)) for n in kept}
    assert len(hashes) == 1 and None not in hashes
    assert sorted(os.listdir(frames)) == kept


def test_masks_paint_each_frame_by_region(tmp_path, weights):
    """Spatial control through video: the masks (drawn at the frames' proportions) apply to every frame; the left
    region of each frame takes the red painting's colour, the right the blue one's."""
    from PIL import Image
    rng = np.random.default_rng(0)
    os.mkdir(tmp_path / "in")
    for k in range(3):                                    # a folder of 3 frames, a texture moving right
        img = np.roll(rng.random((48, 64, 3)) * 0.3 + 0.4, 2 * k, axis=1)
        images.save_image(str(tmp_path / "in" / f"in_{k + 1}.png"), img.astype(np.float32))
    for name, rgb in (("red", (0.85, 0.2, 0.15)), ("blue", (0.1, 0.25, 0.85))):
        style = np.clip(np.array(rgb) + 0.08 * rng.standard_normal((60, 80, 3)), 0, 1).astype(np.float32)
        images.save_image(str(tmp_path / f"{name}.png"), style)
    left = np.zeros((48, 64), np.uint8)
    left[:, :32] = 255
    Image.fromarray(left).save(tmp_path / "l.png")
    Image.fromarray(255 - left).save(tmp_path / "r.png")
    out = str(tmp_path / "out")
    res = video.stylize_video(str(tmp_path / "in"), [str(tmp_path / "red.png"), str(tmp_path / "blue.png")], out,
                              weights=weights, log=lambda m: None, masks=(str(tmp_path / "l.png"),
                                                                            str(tmp_path / "r.png")),
                              style_weight=50.0, **dict(FAST, iterations=30, frame_iterations=10))
    assert len(res.frames) == 3
    for f in res.frames:
        a = images.load_image(f.path)
        red = lambda b: float((b[..., 0] - b[..., 2]).mean())
        assert red(a[:, :18]) > red(a[:, 30:]) + 0.2, f.path
