"""Spatial control: guides on each layer's grid, guided Gram terms, tiles and masks, and the masks' bad inputs."""

import numpy as np
import pytest
from PIL import Image

from conftest import assert_tiled_equals_untiled, fd_grad, rel_error, shared_image
from vggnumpy.nn import arch as archmod
from vggnumpy.style import masks, tiling
from vggnumpy.cli.main import main
from vggnumpy.nn.network import Network
from vggnumpy.style.objective import EmptyRegion, Objective, gram_targets
from vggnumpy.weights.file import random_weights

STYLE = archmod.DEFAULT_LAYERS["vgg19"]["style"]


@pytest.mark.parametrize("arch, size", [("vgg19", (70, 53)), ("vgg16", (41, 66)), ("nin", (83, 61))])
@pytest.mark.parametrize("rule", ["inside", "all"])
def test_receptive_field_guides_equal_their_definition(arch, size, rule, rng):
    """The windowed min (max) through the layer table equals, unit by unit, the min (max) of the mask over the
    unit's receptive field inside the image (masks.guide_reference, a loop over units): exactly."""
    m = rng.random(size).astype(np.float32)
    layers = archmod.DEFAULT_LAYERS[arch]["style"]
    g = masks.layer_guides(m, arch, layers, rule)
    for layer in layers:
        assert g[layer].shape == archmod.feature_shapes(arch, *size)[layer][1:]
        assert np.array_equal(g[layer], masks.guide_reference(m, arch, layer, rule)), layer


def test_two_complementary_masks_cover_every_position(rng):
    """simple: the two guides sum to 1 at every unit of every layer (1e-6); all: at least 1; inside: at most 1,
    exactly 1 where a unit's receptive field is wholly in one region, 0 on the boundary."""
    m = np.zeros((64, 80), np.float32)
    m[:, :37] = 1
    m[50:, 60:] = 1
    s = {r: [masks.layer_guides(x, "vgg19", STYLE, r) for x in (m, 1 - m)] for r in masks.RULES}
    for layer in STYLE:
        np.testing.assert_allclose(s["simple"][0][layer] + s["simple"][1][layer], 1.0, atol=1e-6)
        assert (s["all"][0][layer] + s["all"][1][layer] >= 1).all()
        inside = s["inside"][0][layer] + s["inside"][1][layer]
        assert set(np.unique(inside)) <= {0.0, 1.0}
    assert (s["inside"][0]["relu1_1"] + s["inside"][1]["relu1_1"]).mean() > 0.9
    assert (s["inside"][0]["relu5_1"] + s["inside"][1]["relu5_1"] == 0).any()


def _net():
    return Network(random_weights("vgg19", 0), "avg")


@pytest.mark.slow
def test_an_all_ones_region_gives_the_plain_objective(rng):
    """One style with an all-ones region (and an all-ones style mask) gives the plain Gram objective: loss and
    gradient to 1e-6 relative (float32: only the order of sums may differ)."""
    net = _net()
    c, s, x = rng.random((3, 40, 48)).astype(np.float32), rng.random((3, 36, 44)).astype(np.float32), \
        rng.random((3, 40, 48)).astype(np.float32)
    args = (net, c, [s], [1.0], {"relu4_2": 1.0}, {layer: 0.2 for layer in STYLE}, 1.0, 5.0, 0.5)
    plain = Objective(*args)
    ones = Objective(*args, None, [np.ones((40, 48), np.float32)], [np.ones((36, 44), np.float32)])
    (l0, g0, _), (l1, g1, p1) = plain.evaluate(x), ones.evaluate(x)
    assert "style relu3_1 region 1" in p1
    assert l1 == pytest.approx(l0, rel=1e-6)
    assert np.abs(g1 - g0).max() <= 1e-6 * np.abs(g0).max()


def _masked_objective(rng, dtype=np.float64, size=(150, 170), rule="all"):
    net = _net()
    h, w = size
    content = rng.random((3, h, w)).astype(dtype)
    styles = [rng.random((3, h - 20, w + 10)).astype(dtype) ** (k + 1) for k in range(2)]
    left = np.zeros(size, np.float32)
    left[:, : w // 2 + 7] = 1
    smask = np.zeros((h - 20, w + 10), np.float32)
    smask[:, 12:] = 1
    obj = Objective(net, content, styles, [1.0, 3.0], {"relu4_2": 1.0}, {layer: 0.2 for layer in STYLE}, 1.0, 5.0, 0.5,
                    None, [left, 1 - left], [smask, None], rule)
    return obj, rng.random((3, h, w)).astype(dtype)


@pytest.mark.slow
def test_tiled_guided_grams_equal_untiled_in_float64(rng):
    """Each tile reads its slice of each guide (and of a style-image mask's target): value and gradient to 1e-10
    relative, every term."""
    obj, x = _masked_objective(rng, size=(80, 100))
    assert_tiled_equals_untiled(obj, x, tiling.plan(80, 100, 32, "vgg19", ["relu4_2"] + STYLE))


@pytest.mark.slow
def test_guided_objective_gradient_matches_finite_differences(rng):
    """The whole masked objective in float64 at 8 pixels: relative error below 1e-5 (h = 1e-5)."""
    obj, x = _masked_objective(rng, size=(40, 44))
    _, grad, _ = obj.evaluate(x)
    idx = rng.choice(x.size, 8, replace=False)
    num = fd_grad(lambda z: obj.evaluate(z, with_grad=False)[0], x.copy(), idx, h=1e-5)
    assert rel_error(num, grad.reshape(-1)[idx]) < 1e-5


@pytest.mark.slow
def test_a_style_mask_takes_the_style_from_its_region_only(rng):
    """The target of a style with a style-image mask is the Gram of that region alone: a style image whose left
    half is image A and right half a darker image B has, masked to its left half, nearly A's Gram (relative
    distance 0.04 inside, 0.07 simple, 0.28 all: the units on the seam see both), and unmasked 1.7 away."""
    net = _net()
    a = rng.random((3, 48, 40)).astype(np.float32)
    s = np.concatenate([a, 0.3 * rng.random((3, 48, 40)).astype(np.float32) ** 3], axis=2)     # (3, 48, 80)
    half = np.zeros((48, 80), np.float32)
    half[:, :40] = 1
    dist = lambda g, h: float(np.linalg.norm(g - h) / np.linalg.norm(h))
    want = gram_targets(net, a, ["relu2_1"])["relu2_1"]
    for rule, tol in (("inside", 0.05), ("simple", 0.1), ("all", 0.35)):
        assert dist(gram_targets(net, s, ["relu2_1"], mask=half, rule=rule)["relu2_1"], want) < tol, rule
    assert dist(gram_targets(net, s, ["relu2_1"])["relu2_1"], want) > 1
    with pytest.raises(EmptyRegion):
        gram_targets(net, s, ["relu5_1"], mask=np.pad(np.ones((4, 4), np.float32), ((0, 44), (0, 76))),
                     rule="inside")


def _save_mask(path, m):
    Image.fromarray((np.clip(m, 0, 1) * 255).astype(np.uint8)).save(path)
    return str(path)


def _flat(path, rgb, size=(60, 80)):
    img = np.ones(size + (3,), np.float32) * np.array(rgb, np.float32)
    img += 0.08 * np.random.default_rng(0).standard_normal(img.shape).astype(np.float32)
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return str(path)


@pytest.mark.slow
def test_two_styles_stay_in_their_regions(tmp_path):
    """End to end through the CLI (untrained VGG-19, 64 px): the left region takes the red painting's colour,
    the right the blue one's. Swapping the masks swaps them, so the test fails if the masks are ignored."""
    content = shared_image("content", "tubingen.jpg")
    red, blue = _flat(tmp_path / "red.png", (0.85, 0.2, 0.15)), _flat(tmp_path / "blue.png", (0.1, 0.25, 0.85))
    left = np.zeros((48, 64), np.float32)
    left[:, :32] = 1
    ml, mr = _save_mask(tmp_path / "l.png", left), _save_mask(tmp_path / "r.png", 1 - left)
    out = tmp_path / "out.png"
    args = ["style", content, red, blue, "-s", "64", "--scales", "1", "-n", "10", "--style-weight", "50",
            "--no-progress", "--weights", _weights(tmp_path), "-o", str(out)]
    assert main(args + ["--mask", ml, "--mask", mr]) == 0
    img = np.asarray(Image.open(out), dtype=np.float32) / 255
    redness = lambda a: float((a[..., 0] - a[..., 2]).mean())
    assert redness(img[:, :24]) > redness(img[:, 40:]) + 0.2
    assert main(args + ["--mask", mr, "--mask", ml]) == 0
    img = np.asarray(Image.open(out), dtype=np.float32) / 255
    assert redness(img[:, 40:]) > redness(img[:, :24]) + 0.2


def _weights(tmp_path):
    from vggnumpy.weights.file import save
    path = tmp_path / "w.h5"
    if not path.exists():
        save(random_weights("vgg19", 0), str(path))
    return str(path)


@pytest.mark.parametrize("case, expect", [
    ("count", "--mask is given 1 time(s) for 2 style image(s)"),
    ("empty", "black.png: mask is empty"),
    ("aspect", "wide.png: mask is 80x20, but the image it masks is 64x48"),
    ("missing", "nothere.png: mask file not found"),
    ("style_count", "--style-image-mask is given 1 time(s) for 2 style image(s)"),
    ("too_small", "dot.png: --mask: the region has no unit of relu2_1 at 64 px under --mask-rule inside"),
])
@pytest.mark.slow
def test_bad_masks_are_refused_with_the_file_named(case, expect, tmp_path, capsys):
    content = shared_image("content", "tubingen.jpg")
    s1, s2 = shared_image("style", "starry_night.jpg"), shared_image("style", "the_scream.jpg")
    half = np.zeros((48, 64), np.float32)
    half[:, :32] = 1
    good = [_save_mask(tmp_path / "a.png", half), _save_mask(tmp_path / "b.png", 1 - half)]
    dot = np.zeros((48, 64), np.float32)
    dot[20:26, 30:36] = 1
    masks_of = {"count": ["--mask", good[0]],
                "empty": ["--mask", _save_mask(tmp_path / "black.png", 0 * half), "--mask", good[1]],
                "aspect": ["--mask", _save_mask(tmp_path / "wide.png", np.ones((20, 80))), "--mask", good[1]],
                "missing": ["--mask", str(tmp_path / "nothere.png"), "--mask", good[1]],
                "style_count": ["--style-image-mask", good[0]],
                "too_small": ["--mask", _save_mask(tmp_path / "dot.png", dot), "--mask", good[1], "--mask-rule",
                              "inside"]}
    out = tmp_path / "out.png"
    code = main(["style", content, s1, s2, "-s", "64", "--scales", "1", "-n", "2", "--no-progress",
                 "--weights", _weights(tmp_path), "-o", str(out)] + masks_of[case])
    err = capsys.readouterr().err
    assert code == 1 and expect in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_mask_is_read_from_luminance_or_from_its_opacity(tmp_path):
    """Grey levels are weights; a mask painted on a transparent layer counts what is painted (its opacity), in
    any colour; a mask of the image's proportions at another size is resized."""
    grey = np.zeros((30, 40), np.uint8)
    grey[:, :20] = 255
    grey[:, 20:30] = 128
    Image.fromarray(grey).save(tmp_path / "g.png")
    m = masks.load_mask(str(tmp_path / "g.png"), (30, 40))
    assert m[0, 0] == pytest.approx(1) and m[0, 25] == pytest.approx(128 / 255, abs=1e-3) and m[0, 35] == 0
    rgba = np.zeros((60, 80, 4), np.uint8)
    rgba[..., 0] = 200                                    # red paint ...
    rgba[:30, :, 3] = 255                                 # ... on the top half only
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    m = masks.load_mask(str(tmp_path / "a.png"), (30, 40))
    assert m.shape == (30, 40) and (m[:15] == 1).all() and (m[15:] == 0).all()
