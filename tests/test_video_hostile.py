"""`vggnumpy video` against hostile inputs: resume keyed on the inputs' bytes, 16-bit frames, the pixel limit, links
out of the frames folder, --temporal-frames beyond the first frames, output names, every input checked before the
first frame (nothing left behind on a refusal), and our own stale temporary files removed."""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")

from PIL import Image

from vggnumpy.files import images
from vggnumpy.video import clip as video, frames as videoio
from vggnumpy.weights.file import random_weights

FAST = ["-s", "32", "--scales", "1", "-n", "2", "--frame-iterations", "1", "--no-progress"]
API_FAST = dict(size=32, scales=1, iterations=2, frame_iterations=1, progress=False)


@pytest.fixture(scope="module")
def weights():
    return random_weights("vgg19", 0)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, weights):
    from vggnumpy.weights.file import save
    path = str(tmp_path_factory.mktemp("weights") / "w.h5")
    save(weights, path)
    return path


def _rgb(seed, h, w):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.fixture
def work(tmp_path):
    """tmp_path/work: in/ (3 frames of 32x32), style.png (40x40), mask.png, smask.png, init.png."""
    root = tmp_path / "work"
    (root / "in").mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.roll(_rgb(0, 32, 32), 2 * k, axis=1)).save(root / "in" / f"frame_{k + 1:05d}.png")
    Image.fromarray(_rgb(1, 40, 40)).save(root / "style.png")
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(root / "mask.png")
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(root / "smask.png")
    Image.fromarray(_rgb(2, 32, 32)).save(root / "init.png")
    return root


ONE_THREAD = dict(VGGNUMPY_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """Tiny images on a shared machine: one thread is quicker than many."""
    for k, val in ONE_THREAD.items():
        monkeypatch.setenv(k, val)


def _cli(work, weights_file, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vggnumpy", "video", *args, *FAST, "--weights", weights_file],
                          capture_output=True, text=True, cwd=str(work), timeout=timeout)


def _tree(root):
    """Every path under root with its kind, size and modification time: what a refusal must leave unchanged."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def _refused(p, *words):
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and "vggnumpy: error:" in p.stderr, p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)


def _png_header_only(path, w, h):
    """A PNG that declares w x h 8-bit grey pixels in its header but holds a few bytes of data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


# 1. Resume is keyed on the inputs' bytes, not only their names.

@pytest.mark.slow
def test_a_changed_painting_remakes_the_video(work, weights_file):
    args = ["in", "style.png", "-o", "out.mp4", "--frames", "2"]
    p = _cli(work, weights_file, *args)
    assert p.returncode == 0, p.stderr
    before = videoio.read_metadata(str(work / "out.mp4"))["comment"]
    assert "nothing to do" in _cli(work, weights_file, *args).stderr
    Image.fromarray(_rgb(7, 40, 40)).save(work / "style.png")            # the same name, another painting
    p = _cli(work, weights_file, *args)
    assert p.returncode == 0 and "nothing to do" not in p.stderr, p.stderr
    assert videoio.read_metadata(str(work / "out.mp4"))["comment"] != before
    assert not os.path.exists(work / "out_frames")


@pytest.mark.parametrize("which", ["frame", "style", "mask", "style_mask", "init"])
def test_a_changed_input_file_changes_the_settings_hash(work, weights, which):
    """The same names, other bytes: every input file's contents count (the frames' key, and a video's comment)."""
    from vggnumpy import config
    o = config.make(**{k: val for k, val in API_FAST.items() if k != "frame_iterations"},
                    masks=(str(work / "mask.png"),), style_masks=(str(work / "smask.png"),),
                    init_image=str(work / "init.png")).resolved(False)
    v = config.make_video(frame_iterations=1)
    key = lambda: video.settings_hash(str(work / "in"), [str(work / "style.png")], o, v, weights, (32, 32))
    before = key()
    assert key() == before
    if which == "frame":
        Image.fromarray(_rgb(9, 32, 32)).save(work / "in" / "frame_00002.png")
    elif which == "style":
        Image.fromarray(_rgb(9, 40, 40)).save(work / "style.png")
    elif which == "mask":
        Image.fromarray(np.full((32, 32), 200, np.uint8)).save(work / "mask.png")
    elif which == "style_mask":
        Image.fromarray(np.full((40, 40), 200, np.uint8)).save(work / "smask.png")
    else:
        Image.fromarray(_rgb(9, 32, 32)).save(work / "init.png")
    assert key() != before


# 2. 16-bit greyscale frames.

def test_16_bit_grey_frames_keep_their_grey(tmp_path):
    for k, value in enumerate((0, 32768, 65535)):
        Image.fromarray(np.full((8, 10), value, np.uint16)).save(tmp_path / f"f_{k}.png")
    with Image.open(tmp_path / "f_1.png") as im:
        assert im.mode.startswith("I")
    src = videoio.open_frames(str(tmp_path))
    got = [f for f in src]
    assert [f.dtype for f in got] == [np.uint8] * 3 and all(f.shape == (8, 10, 3) for f in got)
    assert [int(f[0, 0, 0]) for f in got] == [0, 128, 255]
    assert all((f == f[0, 0, 0]).all() for f in got)


# 3. The pixel limit, from the header, before decoding.

@pytest.mark.slow
def test_a_frame_declaring_too_many_pixels_is_refused_before_any_work(work, weights_file):
    _png_header_only(str(work / "in" / "frame_00002.png"), 13000, 12000)
    before = _tree(work)
    p = _cli(work, weights_file, "in", "style.png", "-o", "out")
    _refused(p, "frame_00002.png", "13000x12000", "pixels")
    assert _tree(work) == before


def test_the_pixel_limit_applies_to_video_streams_and_folder_frames(tmp_path, monkeypatch):
    from vggnumpy.files.images import ImageError
    frames = [_rgb(k, 48, 64) for k in range(2)]
    videoio.write_video(str(tmp_path / "a.mp4"), frames, 24)
    os.mkdir(tmp_path / "f")
    for k, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "f" / f"f_{k}.png")
    data = bytearray((tmp_path / "a.mp4").read_bytes())                  # b.mp4: the same header, frames unreadable
    at = data.find(b"mdat")
    n = int.from_bytes(data[at - 4:at], "big")
    data[at + 4:at - 4 + n] = bytes(n - 8)
    (tmp_path / "b.mp4").write_bytes(bytes(data))
    with pytest.raises(ImageError, match="cannot be decoded"):
        videoio.open_frames(str(tmp_path / "b.mp4"))
    monkeypatch.setattr(images, "MAX_INPUT_PIXELS", 64 * 48 - 1)
    for path in (str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4"), str(tmp_path / "f")):   # b: from the header alone
        with pytest.raises(ImageError, match="64x48 = 3,072 pixels, more than the 3,071"):
            videoio.open_frames(path)
    monkeypatch.setattr(images, "MAX_INPUT_PIXELS", 64 * 48)
    for path in (str(tmp_path / "a.mp4"), str(tmp_path / "f")):
        assert len(list(videoio.open_frames(path))) == 2


# 4. Links out of the frames folder.

@pytest.mark.slow
def test_a_link_out_of_the_frames_folder_is_refused(work, weights_file):
    os.rename(work / "in" / "frame_00003.png", work / "elsewhere.png")
    os.symlink(os.path.join("..", "elsewhere.png"), work / "in" / "frame_00003.png")
    before = _tree(work)
    p = _cli(work, weights_file, "in", "style.png", "-o", "out")
    _refused(p, "frame_00003.png", "outside the folder")
    assert _tree(work) == before


def test_a_link_inside_the_frames_folder_is_read(work):
    os.symlink("frame_00001.png", work / "in" / "frame_00004.png")
    os.mkdir(work / "in" / "sub")
    os.rename(work / "in" / "frame_00002.png", work / "in" / "sub" / "two.png")
    os.symlink(os.path.join("sub", "two.png"), work / "in" / "frame_00002.png")
    src = videoio.open_frames(str(work / "in"))
    got = list(src)
    assert src.count == 4 and np.array_equal(got[0], got[3])


# 5. --temporal-frames that reach back beyond the first frames.

@pytest.mark.parametrize("frames", ["2,4", "64"])
@pytest.mark.slow
def test_temporal_frames_beyond_the_start(work, weights_file, frames):
    p = _cli(work, weights_file, "in", "style.png", "-o", "out", "--temporal-frames", frames)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert sorted(n for n in os.listdir(work / "out")) == [f"frame_{k:05d}.png" for k in (1, 2, 3)]
    assert len({video.frame_hash(str(work / "out" / n)) for n in os.listdir(work / "out")}) == 1


# 6. Output names.

@pytest.mark.parametrize("out", ["out.webm", "out.txt"])
@pytest.mark.slow
def test_an_output_we_cannot_write_is_refused(work, weights_file, out):
    before = _tree(work)
    p = _cli(work, weights_file, "in", "style.png", "-o", out)
    _refused(p, out, ".mp4")
    assert _tree(work) == before


def test_an_existing_folder_with_a_dot_is_an_output_folder(work):
    from vggnumpy import config
    os.mkdir(work / "run.v2")
    o = config.make(size=32)
    assert video.check_video(str(work / "in"), [str(work / "style.png")], str(work / "run.v2"), o) == \
        str(work / "run.v2")
    assert video.check_video(str(work / "in"), [str(work / "style.png")], str(work / "new"), o) == str(work / "new")


# 7. Everything checked before the first frame; a refusal leaves nothing behind.

CASES = {                     # case: (output, words the message holds); half of them to a video, half to a folder
    "broken_link": ("out", ("frame_00002.png", "broken link")),
    "garbage_frame": ("out.mp4", ("frame_00003.png", "not an image")),
    "frame_size": ("out", ("frame_00003.png", "one size")),
    "fifo_input": ("out.mp4", ("clip.mp4", "named pipe")),
    "fifo_style": ("out", ("style.png", "named pipe")),
    "fifo_mask": ("out.mp4", ("mask.png", "named pipe")),
    "bad_style": ("out", ("style.png", "style image")),
    "mask_proportions": ("out.mp4", ("mask.png", "aspect ratio")),
    "empty_mask": ("out", ("mask.png", "empty")),
    "style_mask_proportions": ("out.mp4", ("smask.png", "aspect ratio")),
    "bad_init": ("out", ("init.png", "init image")),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.slow
def test_bad_inputs_are_refused_before_the_first_frame(work, weights_file, case):
    (out, words), inp, extra = CASES[case], "in", []
    if case == "broken_link":
        os.remove(work / "in" / "frame_00002.png")
        os.symlink("gone.png", work / "in" / "frame_00002.png")
    elif case == "garbage_frame":
        (work / "in" / "frame_00003.png").write_bytes(b"not a picture at all")
    elif case == "frame_size":
        Image.fromarray(_rgb(3, 16, 16)).save(work / "in" / "frame_00003.png")
    elif case == "fifo_input":
        os.mkfifo(work / "clip.mp4")
        inp = "clip.mp4"
    elif case == "fifo_style":
        os.remove(work / "style.png")
        os.mkfifo(work / "style.png")
    elif case == "fifo_mask":
        os.remove(work / "mask.png")
        os.mkfifo(work / "mask.png")
        extra = ["--mask", "mask.png"]
    elif case == "bad_style":
        (work / "style.png").write_bytes(b"not a picture at all")
    elif case == "mask_proportions":
        Image.fromarray(np.full((8, 32), 255, np.uint8)).save(work / "mask.png")
        extra = ["--mask", "mask.png"]
    elif case == "empty_mask":
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(work / "mask.png")
        extra = ["--mask", "mask.png"]
    elif case == "style_mask_proportions":
        Image.fromarray(np.full((10, 40), 255, np.uint8)).save(work / "smask.png")
        extra = ["--style-image-mask", "smask.png"]
    elif case == "bad_init":
        (work / "init.png").write_bytes(b"not a picture at all")
        extra = ["--init-image", "init.png"]
    before = _tree(work)
    try:
        p = _cli(work, weights_file, inp, "style.png", "-o", out, *extra, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the run blocked (a named pipe opened?)")
    _refused(p, *words)
    assert _tree(work) == before


# 8. Our own stale temporary files (a run killed during a frame write) are removed by the next run.

@pytest.mark.slow
def test_stale_temporary_frames_are_removed(work, weights_file):
    (work / "out_frames").mkdir()
    (work / "out_frames" / ".vggnumpy-k1ll3d_x.png").write_bytes(b"")     # what SIGKILL in atomic_write leaves
    p = _cli(work, weights_file, "in", "style.png", "-o", "out.mp4", "--frames", "2")
    assert p.returncode == 0, p.stderr
    assert os.path.isfile(work / "out.mp4") and not os.path.exists(work / "out_frames")
