"""Pictures of what the network sees: feature grids, Gram heat maps and distances, the loss curve beside a frame."""
import os
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from vggnumpy.files import images
from vggnumpy.learn import lookinside  # noqa: E402
from vggnumpy.nn.network import Network  # noqa: E402
from vggnumpy.weights.file import random_weights  # noqa: E402

LAYERS = ["relu1_1", "relu3_1"]


@pytest.fixture(scope="module")
def net():
    return Network(random_weights("vgg19", 0), "avg")


def _image(seed, h=48, w=64):
    """A smooth random picture (H, W, 3) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.float32(max(h, w))
    base = [np.sin((3 + 4 * rng.random()) * xx + (3 + 4 * rng.random()) * yy + 6 * rng.random()) for _ in range(3)]
    img = 0.5 + 0.35 * np.stack(base, axis=2) + 0.1 * rng.standard_normal((h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32)


def _rows(n, total):
    rows = []
    for i in range(1, n + 1):
        terms = {"content": 100.0 / i, "style relu1_1": 50.0 / i ** 0.5, "tv": 1.0}
        rows.append(dict(iteration=i, scale=0 if i <= total // 2 else 1, size=[48, 64], loss=sum(terms.values()),
                         terms=terms, seconds=0.01 * i, evaluations=i))
    return rows


@pytest.mark.slow
def test_write_features_writes_exactly_the_expected_non_blank_pngs(net, tmp_path):
    from PIL import Image
    said = []
    paths = lookinside.write_features(net, [("content", _image(0)), ("style", _image(1, 56, 40))], LAYERS,
                                      str(tmp_path), log=said.append)
    want = {f"features_{lab}_{lay}.png" for lab in ("content", "style") for lay in LAYERS}
    want |= {f"gram_{lay}.png" for lay in LAYERS}
    assert sorted(os.path.basename(p) for p in paths) == sorted(want)
    assert set(os.listdir(tmp_path)) == want                          # no stray temporary file either
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG"
            a = np.asarray(im.convert("RGB"), dtype=np.float32)
        assert a.std() > 0, p
    assert len(said) == 1 and str(tmp_path) in said[0]


def test_gram_distance_is_zero_to_itself_and_positive_to_another_image(net):
    from vggnumpy.style.objective import features
    chw = lambda a: np.ascontiguousarray(a.transpose(2, 0, 1))      # noqa: E731
    a, b = _image(0), _image(1)
    fa, fb = features(net, chw(a), LAYERS), features(net, chw(b), LAYERS)
    for layer in LAYERS:
        d = lookinside.gram_distances([("a", fa), ("a again", fa), ("b", fb)], layer)
        assert [lab for lab, _ in d] == ["a", "a again", "b"]
        assert d[0][1] == 0.0 and d[1][1] == 0.0
        assert d[2][1] > 1e-4
        # the number the style loss measures: ||G_b - G_a||^2 / ||G_a||^2
        ga, gb = lookinside.gram_matrix(fa[layer]), lookinside.gram_matrix(fb[layer])
        assert d[2][1] == pytest.approx(float(np.sum((gb - ga) ** 2) / np.sum(ga ** 2)), rel=1e-4)


def test_choose_channels_puts_the_loudest_channel_first():
    rng = np.random.default_rng(0)
    f = rng.random((1, 100, 5, 6)).astype(np.float32)               # (N, C, h, w)
    f[0, 73] += 10.0
    f[0, 12] += 5.0
    chans = lookinside.choose_channels(f)
    assert len(chans) == 64 and len(set(chans.tolist())) == 64
    assert chans[0] == 73 and chans[1] == 12
    means = f[0].mean(axis=(1, 2))
    assert np.all(np.diff(means[chans]) <= 0)                         # largest mean first
    assert lookinside.choose_channels(f, pick="first").tolist() == list(range(64))
    assert sorted(lookinside.choose_channels(f[:, :5]).tolist()) == list(range(5))


def test_feature_mosaic_scales_each_map_to_its_own_range():
    f = np.zeros((1, 3, 2, 2), dtype=np.float32)
    f[0, 0] = [[0, 1], [2, 3]]
    f[0, 1] = [[100, 100], [100, 300]]                                # a different range: still 0 .. 1
    f[0, 2] = 7.0                                                     # constant: drawn as 0
    grid = lookinside.feature_mosaic(f, [1, 0, 2])
    assert grid.shape == (2 * 3 - 1, 2 * 3 - 1)                       # 2 x 2 tiles with a one-pixel gap
    np.testing.assert_allclose(grid[0:2, 0:2], [[0, 0], [0, 1]])     # channel 1 first
    np.testing.assert_allclose(grid[0:2, 3:5], [[0, 1 / 3], [2 / 3, 1]])
    np.testing.assert_allclose(grid[3:5, 0:2], 0)
    assert np.isnan(grid[2]).all() and np.isnan(grid[3:5, 3:5]).all()


@pytest.mark.slow
def test_beside_curve_keeps_the_resized_image_on_the_left_and_the_curve_on_the_right():
    img = _image(2, 48, 64)
    out = lookinside.beside_curve(img, _rows(7, 20), 20, height=96)
    assert out.dtype == np.float32 and out.shape[0] == 96 and out.shape[2] == 3
    assert out.shape[1] > 128
    np.testing.assert_array_equal(out[:, :128], images.resize_to(img, 96, 128))
    panel = out[:, 128:]
    assert panel.min() >= 0 and panel.max() <= 1 and panel.std() > 0.01
    # the x axis is fixed: two frames of one run have panels of one size, and a later frame draws more
    later = lookinside.beside_curve(img, _rows(15, 20), 20, height=96)
    assert later.shape == out.shape and not np.array_equal(later[:, 128:], panel)


def test_beside_curve_at_256_px_has_exactly_that_height():
    out = lookinside.beside_curve(_image(3, 300, 200), _rows(3, 10), 10)
    assert out.shape[0] == 256 and out.shape[1] > round(200 * 256 / 300)


def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch, net, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'vggnumpy\[plot\]'"):
        lookinside.beside_curve(_image(0), _rows(2, 4), 4)
    with pytest.raises(ImportError, match=r"vggnumpy\[plot\]"):
        lookinside.write_features(net, [("content", _image(0))], LAYERS, str(tmp_path))
    assert os.listdir(tmp_path) == []
