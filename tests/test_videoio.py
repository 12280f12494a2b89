"""Frames in and out: MP4 round trips with their frame rate, numbered folders in numeric order, atomic writes, the
test clips, and bad inputs named in the error."""
import os
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

import clips                                    # benchmarks/clips.py
from conftest import shared_image
from vggnumpy.video import frames as videoio
from vggnumpy.files.images import ImageError


def _pattern(k, h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 4 + k * 8) % 256, (y * 5) % 256, np.full((h, w), 40 * k % 256)], axis=2).astype(np.uint8)


def test_mp4_round_trip_keeps_count_rate_size_and_pixels(tmp_path):
    """H.264 at crf 18 is lossy: mean absolute difference per frame below 3/255."""
    path = str(tmp_path / "a.mp4")
    frames = [_pattern(k) for k in range(6)]
    videoio.write_video(path, frames, Fraction(30000, 1001), {"comment": "made by a test"})
    src = videoio.open_frames(path)
    assert (src.count, src.fps, src.size) == (6, Fraction(30000, 1001), (64, 48))
    got = list(src)
    assert len(got) == 6
    for a, b in zip(frames, got):
        assert np.abs(a.astype(int) - b).mean() < 3
    assert videoio.read_metadata(path)["comment"] == "made by a test"


def test_a_folder_is_read_in_numeric_order(tmp_path):
    from PIL import Image
    for k in (2, 10, 1):
        Image.fromarray(_pattern(k)).save(str(tmp_path / f"frame_{k}.png"))
    (tmp_path / "notes.txt").write_text("not a frame")
    src = videoio.open_frames(str(tmp_path), fps=Fraction(12))
    assert src.count == 3 and src.fps == 12 and src.size == (64, 48)
    assert [f[0, 0, 2] for f in src] == [40, 80, 400 % 256]
    assert videoio.open_frames(str(tmp_path)).fps == 24


def test_odd_sizes_are_refused_and_even_size_rounds_down(tmp_path):
    with pytest.raises(ValueError, match="even"):
        videoio.write_video(str(tmp_path / "odd.mp4"), [np.zeros((5, 8, 3), np.uint8)], 24)
    assert videoio.even_size(65, 37) == (64, 36) and videoio.even_size(1, 1) == (2, 2)
    assert os.listdir(tmp_path) == []


def test_a_failing_write_leaves_nothing(tmp_path):
    def frames():
        yield _pattern(0)
        raise RuntimeError("the source broke")
    with pytest.raises(RuntimeError):
        videoio.write_video(str(tmp_path / "b.mp4"), frames(), 24)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("case", ["missing", "empty_folder", "not_a_video", "sizes_differ", "no_number"])
def test_bad_inputs_name_the_file(tmp_path, case):
    from PIL import Image
    path, name = str(tmp_path / "nope.mp4"), "nope.mp4"
    if case == "empty_folder":
        path, name = str(tmp_path), str(tmp_path)
    elif case == "not_a_video":
        (tmp_path / "text.mp4").write_text("hello")
        path, name = str(tmp_path / "text.mp4"), "text.mp4"
    elif case == "sizes_differ":
        Image.fromarray(_pattern(0)).save(str(tmp_path / "f1.png"))
        Image.fromarray(_pattern(1, 32, 32)).save(str(tmp_path / "f2.png"))
        path, name = str(tmp_path), "f2.png"
    elif case == "no_number":
        Image.fromarray(_pattern(0)).save(str(tmp_path / "cover.png"))
        path, name = str(tmp_path), "cover.png"
    with pytest.raises(ImageError, match=name):
        list(videoio.open_frames(path))


def test_the_shifted_texture_moves_by_its_steps():
    frames = clips.shifted_texture(20, 30, [(2, 1), (-1, 3)])
    a, b, c = (f.astype(int) for f in frames)
    assert np.array_equal(b[1:, 2:], a[:-1, :-2]) and np.array_equal(c[3:, :-1], b[:-3, 1:])
    assert a.std() > 20                                        # a texture, not a flat field


def test_the_pan_clip_is_smooth_and_even_sized():
    frames = clips.pan_zoom(shared_image("content", "tubingen.jpg"), frames=24, size=64)
    assert len(frames) == 24 and all(f.shape == frames[0].shape for f in frames)
    h, w = frames[0].shape[:2]
    assert h % 2 == 0 and w % 2 == 0 and max(h, w) == 64
    steps = [np.abs(a.astype(int) - b).mean() for a, b in zip(frames, frames[1:])]
    assert 0 < min(steps) and max(steps) < 0.7 * np.abs(frames[0].astype(int) - frames[-1]).mean()   # 29.5 < 50


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".avi"])
def test_every_output_container_round_trips_with_its_metadata(tmp_path, ext):
    """Each container `vggnumpy video -o` accepts: count, rate and the comment a rerun reads (Matroska upper-cases
    the tag's key)."""
    path = str(tmp_path / f"c{ext}")
    videoio.write_video(path, [_pattern(k) for k in range(4)], 24, {"comment": "settings=x"})
    src = videoio.open_frames(path)
    assert src.count == 4 and src.fps == 24 and videoio.read_metadata(path)["comment"] == "settings=x"


def test_a_frame_of_another_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="one size"):
        videoio.write_video(str(tmp_path / "s.mp4"), [_pattern(0), _pattern(1, 32, 32)], 24)
    assert os.listdir(tmp_path) == []
