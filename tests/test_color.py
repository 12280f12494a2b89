"""Colour control: histogram matching gives the target's colour statistics; luminance-only keeps the content's \
chroma."""
import numpy as np
import pytest

from conftest import shared_image
from vggnumpy.style import color
from vggnumpy.files import images

RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])


def _stats(img):
    x = img.reshape(-1, 3).astype(np.float64)
    return x.mean(0), np.cov(x.T, bias=True)


@pytest.mark.parametrize("mode", color.MODES)
def test_the_matched_image_has_the_targets_mean_and_covariance(mode):
    """Real paintings recoloured to a real photo: mean and covariance within 1e-6 (unclipped, float64)."""
    src = images.load_image(shared_image("style", "starry_night.jpg"), 96)
    dst = images.load_image(shared_image("content", "tubingen.jpg"), 96)
    out = color.match_histogram(src, dst, mode)
    (m, c), (mt, ct) = _stats(out), _stats(dst)
    assert np.abs(m - mt).max() < 1e-6
    assert np.abs(c - ct).max() < 1e-6
    assert np.abs(_stats(src)[1] - ct).max() > 1e-3             # it had another covariance to begin with


def test_the_three_transforms_differ_but_each_maps_one_covariance_to_the_other(rng):
    a = rng.standard_normal((3, 3))
    b = rng.standard_normal((3, 3))
    cs, ct = a @ a.T + 0.1 * np.eye(3), b @ b.T + 0.1 * np.eye(3)
    ts = {m: color.transform(cs, ct, m) for m in color.MODES}
    for m, t in ts.items():
        np.testing.assert_allclose(t @ cs @ t.T, ct, atol=1e-9, err_msg=m)
    assert np.abs(ts["chol"] - ts["pca"]).max() > 1e-3 and np.abs(ts["pca"] - ts["sym"]).max() > 1e-3
    np.testing.assert_allclose(ts["sym"], ts["sym"].T, atol=1e-9)           # sym: the symmetric solution
    assert np.allclose(np.triu(ts["chol"], 1), 0)                        # chol: lower triangular


def test_a_grey_style_can_be_matched_without_blowing_up():
    """A style with no colour at all (singular covariance) still gives finite pixels."""
    src = np.repeat(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8, 1), 3, axis=2)
    dst = images.load_image(shared_image("content", "tubingen.jpg"), 32)
    out = color.match_histogram(src, dst)
    assert np.isfinite(out).all() and np.abs(out).max() < 10


def test_luminance_matching_takes_the_contents_mean_and_spread():
    src = images.load_image(shared_image("style", "the_scream.jpg"), 80)
    dst = images.load_image(shared_image("content", "tubingen.jpg"), 80)
    g = color.match_luminance(src, dst)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    y, yc = g[..., 0].astype(np.float64), color.luminance(dst).astype(np.float64)
    assert abs(y.mean() - yc.mean()) < 0.01 and abs(y.std() - yc.std()) < 0.01      # clipping moves it a little


@pytest.mark.slow
def test_luminance_transfer_leaves_the_contents_chroma_unchanged(tmp_path):
    """A run with --color-transfer luminance: the output's I and Q (YIQ) equal the content's at its size, within
    1e-5, wherever no channel was clipped; its Y is not the content's Y (the style went somewhere)."""
    from vggnumpy import stylize
    from vggnumpy.weights.file import random_weights
    content = shared_image("content", "tubingen.jpg")
    res = stylize(content, [shared_image("style", "starry_night.jpg")], size=48, scales=1, iterations=8,
                  progress=False, weights=random_weights("vgg19", 0), color_transfer="luminance", log=lambda m: None)
    out = res.image.astype(np.float64)
    c = images.load_image(content, 48).astype(np.float64)
    yo, yc = out @ RGB2YIQ.T, c @ RGB2YIQ.T
    free = ((out > 1e-6) & (out < 1 - 1e-6)).all(axis=2)
    assert free.mean() > 0.5
    assert np.abs(yo[free][:, 1:] - yc[free][:, 1:]).max() < 1e-5
    assert np.abs(yo[..., 0] - yc[..., 0]).mean() > 0.01


def test_prepare_feeds_grey_images_or_recoloured_styles():
    c = images.load_image(shared_image("content", "tubingen.jpg"), 40)
    s = images.load_image(shared_image("style", "starry_night.jpg"), 40)
    gc, (gs,) = color.prepare("luminance", c, [s])
    assert np.array_equal(gc[..., 0], gc[..., 2]) and np.array_equal(gs[..., 0], gs[..., 2])
    hc, (hs,) = color.prepare("histogram:chol", c, [s])
    assert hc is c and np.abs(hs.reshape(-1, 3).mean(0) - c.reshape(-1, 3).mean(0)).max() < 0.02     # clipped
    assert color.prepare(None, c, [s]) == (c, [s])
    with pytest.raises(ValueError, match="chol, pca, sym"):
        color.transform(np.eye(3), np.eye(3), "lab")


def test_the_palette_start_has_the_paintings_colours_and_the_photos_structure():
    """--init palette: a real photo takes a real painting's colour mean and covariance (1e-6, unclipped, float64)
    while every pixel moves by one affine map, so its luminance structure stays (correlation > 0.9)."""
    photo = images.load_image(shared_image("content", "tubingen.jpg"), 96)
    painting = images.load_image(shared_image("style", "the_scream.jpg"), 96)
    own, target = color._stats(photo), color._stats(painting)
    out = color._recolour(photo, *own, *target, "pca")
    (m, c), (mt, ct) = _stats(out), _stats(painting)
    assert np.abs(m - mt).max() < 1e-6 and np.abs(c - ct).max() < 1e-6
    start = color.palette(photo, [painting])
    assert start.dtype == np.float32 and start.min() >= 0 and start.max() <= 1
    np.testing.assert_allclose(start, np.clip(out, 0, 1), atol=1e-6)
    assert np.corrcoef(color.luminance(start).ravel(), color.luminance(photo).ravel())[0, 1] > 0.9
    assert np.abs(_stats(start)[0] - _stats(photo)[0]).max() > 0.05        # it did change the colours


def test_a_blend_of_paintings_gives_the_mixture_of_their_colours(rng):
    """Two equal-sized styles at equal weights: the mixture's statistics are those of their pixels pooled (1e-9);
    at weights 1, 0 the second style has no say."""
    a = rng.uniform(0.0, 0.5, (20, 30, 3))
    b = rng.uniform(0.3, 1.0, (20, 30, 3)) * np.array([1.0, 0.5, 0.2])
    mu, cov = color.mixture([color._stats(a), color._stats(b)], [1.0, 1.0])
    pooled = color._stats(np.concatenate([a, b]))
    np.testing.assert_allclose(mu, pooled[0], atol=1e-9)
    np.testing.assert_allclose(cov, pooled[1], atol=1e-9)
    photo = rng.uniform(0.4, 0.6, (16, 16, 3))
    np.testing.assert_array_equal(color.palette(photo, [a, b], [1.0, 0.0]), color.palette(photo, [a]))


def test_the_palette_start_follows_the_masks(rng):
    """--mask: the left half takes the first painting's colours, the right half the second's; --style-image-mask:
    a painting's colours are read only where its mask is white."""
    photo = rng.uniform(0.4, 0.6, (16, 16, 3))
    a, b = np.full((8, 8, 3), [0.8, 0.2, 0.2]), np.full((8, 8, 3), [0.1, 0.2, 0.9])
    a = a + rng.normal(0, 0.01, a.shape)
    b = b + rng.normal(0, 0.01, b.shape)
    left = np.zeros((16, 16))
    left[:, :8] = 1
    out = color.palette(photo, [a, b], None, [left, 1 - left])
    np.testing.assert_allclose(out[:, :8].mean((0, 1)), a.mean((0, 1)), atol=0.03)
    np.testing.assert_allclose(out[:, 8:].mean((0, 1)), b.mean((0, 1)), atol=0.03)
    two = np.concatenate([a, b], axis=1)                      # (8, 16, 3): red left, blue right
    only_blue = np.zeros((8, 16))
    only_blue[:, 8:] = 1
    np.testing.assert_allclose(color.palette(photo, [two], style_masks=[only_blue]).mean((0, 1)),
                               b.mean((0, 1)), atol=0.03)


def test_a_pretrained_run_starts_from_the_palette_unless_the_colours_are_kept(wfile):
    """The default start with pretrained weights is the palette start (0 iterations return it, 1e-6), the content
    with --original-colors; --init palette with --color-transfer is refused naming both."""
    from vggnumpy import config
    from vggnumpy.run.pipeline import stylize
    assert config.make().resolved(True).init == "palette" and config.make().resolved(False).init == "content"
    assert config.make(original_colors=True).resolved(True).init == "content"
    assert config.make(color_transfer="histogram").resolved(True).init == "content"
    with pytest.raises(config.OptionError, match="--init palette.*--color-transfer"):
        config.make(init="palette", color_transfer="histogram")
    photo = images.load_image(shared_image("content", "tubingen.jpg"), 48)
    painting = images.load_image(shared_image("style", "the_scream.jpg"), 48)
    res = stylize(photo, painting, weights=wfile, size=48, scales=1, iterations=0, init="palette", progress=False,
                  log=lambda *a: None)
    np.testing.assert_allclose(res.image, color.palette(photo, [painting]), atol=1e-6)
    assert np.abs(res.image - photo).max() > 0.1
