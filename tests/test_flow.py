"""Optical flow: warping against its loop reference, exact integer shifts, the consistency check, long-term weights,
DIS on a known shift, and the warping error."""
import sys

import numpy as np
import pytest

import clips                                    # benchmarks/clips.py
from vggnumpy.video import flow


def _shifted(dx, dy, h=40, w=56):
    a, b = clips.shifted_texture(h, w, [(dx, dy)], seed=3)
    return a.astype(np.float32) / 255, b.astype(np.float32) / 255


def test_an_integer_shift_is_warped_back_exactly_and_the_uncovered_strip_is_marked():
    """Content moving by (3, -2): b(y, x) = a(y + 2, x - 3). Warping a by the constant flow (-3, 2) gives b exactly
    (bit for bit) where the sample lies inside a; `inside` is False on exactly the 3 columns and 2 rows that came
    in; the warping error of a perfectly consistent output is 0."""
    a, b = _shifted(3, -2)
    back = np.tile(np.array([-3.0, 2.0], np.float32), (40, 56, 1))       # frame b -> frame a
    out, inside = flow.warp(a, back)
    expect = np.zeros((40, 56), bool)
    expect[:-2, 3:] = True
    assert np.array_equal(inside, expect)
    assert np.array_equal(out[inside], b[inside])
    fwd = -back                                                          # frame a -> frame b
    mask = flow.warp(np.ones((40, 56, 1), np.float32), fwd)[1]
    assert flow.warping_error(a, b, fwd, mask) < 1e-12
    assert flow.warping_error(a, np.roll(b, 1, axis=1), fwd, mask) > 1e-3


def test_warp_equals_its_loop_reference(rng):
    """A random non-integer flow reaching outside the image: values to 1e-6 (float32), `inside` exactly."""
    img = rng.random((13, 17, 3)).astype(np.float32)
    f = (rng.standard_normal((13, 17, 2)) * 4).astype(np.float32)
    out, inside = flow.warp(img, f)
    ref, rin = flow.warp_reference(img, f)
    assert np.abs(out - ref).max() < 1e-6 and np.array_equal(inside, rin) and 0 < inside.sum() < inside.size


def test_a_half_pixel_shift_is_the_mean_of_neighbours(rng):
    img = rng.random((6, 8, 1)).astype(np.float32)
    f = np.zeros((6, 8, 2), np.float32)
    f[..., 0] = 0.5
    out, _ = flow.warp(img, f)
    np.testing.assert_allclose(out[:, :-1], (img[:, :-1] + img[:, 1:]) / 2, atol=1e-7)


def test_consistency_marks_out_of_frame_occlusions_and_motion_boundaries():
    h, w = 30, 40
    back = np.tile(np.array([-2.0, 0.0], np.float32), (h, w, 1))
    fwd = -back
    c = flow.consistency(back, fwd)
    assert c[:, :2].sum() == 0 and c[:, 2:].min() == 1                  # only the strip from outside the frame
    bad = fwd.copy()
    bad[10:20, 10:20] = [5.0, 5.0]                                       # the forward flow disagrees in a block
    c = flow.consistency(back, bad)
    assert c[10:20, 13:21].sum() == 0 and c[:, 25:].min() == 1
    assert flow.consistency(back, bad, occlusion=(0.01, 1e6)).sum() == c[:, 2:].size    # looser: all trusted
    step = back.copy()
    step[:, 20:] = [-6.0, 0.0]                              # two motions side by side: a boundary between them
    trust = (0.0, 1e6)                                      # every forward flow agrees: only the boundary decides
    c = flow.consistency(step, fwd, occlusion=trust)
    assert c[:, 19:21].sum() == 0 and c[:, :2].sum() == 0 and c[:, 2:19].min() == 1 and c[:, 21:].min() == 1
    assert flow.consistency(step, fwd, occlusion=trust, motion=(0.01, 100.0))[:, 2:].min() == 1


def test_long_term_weights_hold_each_pixel_by_its_nearest_reliable_frame():
    c1 = np.array([[1, 0, 0, 1]], np.float32)
    c2 = np.array([[1, 1, 0, 0]], np.float32)
    c4 = np.array([[1, 1, 1, 1]], np.float32)
    l1, l2, l4 = flow.long_term([c1, c2, c4])
    assert l1.tolist() == [[1, 0, 0, 1]] and l2.tolist() == [[0, 1, 0, 0]] and l4.tolist() == [[0, 0, 1, 0]]


def test_dis_finds_a_known_shift_and_warps_back():
    """A smooth texture moving by (3, 2) px: DIS's median flow in the interior within 0.25 px of (-3, -2) (b -> a),
    and a warped by it within 0.05 mean absolute difference of b in the interior."""
    pytest.importorskip("cv2")
    a, b = (f.astype(np.float32) / 255 for f in clips.shifted_texture(96, 128, [(3, 2)], seed=5))
    f = flow.dis(b, a)
    inner = (slice(12, -12), slice(12, -12))
    assert np.abs(np.median(f[inner].reshape(-1, 2), axis=0) - [-3, -2]).max() < 0.25
    assert np.abs(flow.warp(a, f)[0][inner] - b[inner]).mean() < 0.05


def test_dis_without_opencv_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"pip install 'vggnumpy\[video\]'"):
        flow.dis(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


def test_an_empty_mask_has_no_warping_error():
    with pytest.raises(ValueError, match="mask is empty"):
        flow.warping_error(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.zeros((4, 4, 2)), np.zeros((4, 4)))


def _cubic_reference(img, f):
    """warp_cubic one pixel at a time: Keys' kernel (a = -0.5) on the 4x4 neighbours, edges clamped."""
    def k(t):
        t = abs(t)
        return 1.5 * t ** 3 - 2.5 * t ** 2 + 1 if t <= 1 else (-0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2 if t < 2 else 0)
    h, w, c = img.shape
    out = np.zeros((h, w, c))
    for i in range(h):
        for j in range(w):
            x, y = min(max(j + f[i, j, 0], 0), w - 1), min(max(i + f[i, j, 1], 0), h - 1)
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            for yy in range(y0 - 1, y0 + 3):
                for xx in range(x0 - 1, x0 + 3):
                    out[i, j] += k(y - yy) * k(x - xx) * img[min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)]
    return np.clip(out, 0, 1)


def test_bicubic_warp_equals_its_loop_reference_and_keeps_whole_pixels(rng):
    """Values to 1e-5 (float32 sums of 16 terms); an integer shift exact; a linear ramp reproduced inside."""
    img = rng.random((11, 14, 3)).astype(np.float32)
    f = (rng.standard_normal((11, 14, 2)) * 3).astype(np.float32)
    assert np.abs(flow.warp_cubic(img, f)[0] - _cubic_reference(img, f)).max() < 1e-5
    shift = np.tile(np.array([2.0, -1.0], np.float32), (11, 14, 1))
    out, inside = flow.warp_cubic(img, shift)
    assert np.array_equal(out[inside], flow.warp(img, shift)[0][inside])
    ramp = np.tile((np.arange(14, dtype=np.float32) / 20)[None, :, None], (11, 1, 3))
    half = np.tile(np.array([0.5, 0.0], np.float32), (11, 14, 1))
    np.testing.assert_allclose(flow.warp_cubic(ramp, half)[0][:, 1:-3], ramp[:, 1:-3] + 0.025, atol=1e-6)
