"""Loss terms as statistics: Gram statistics add over tiles, masks weight positions, gradients match differences."""
import numpy as np
import pytest

from conftest import fd_grad, rel_error
from vggnumpy.style import losses, terms


def test_gram_statistics_of_tiles_add_up_to_the_whole(rng):
    f = rng.standard_normal((1, 8, 12, 10))
    s, n = losses.gram_stats(f)
    parts = [losses.gram_stats(f[:, :, a:b]) for a, b in ((0, 5), (5, 9), (9, 12))]
    np.testing.assert_allclose(sum(p[0] for p in parts), s, rtol=1e-12)
    assert sum(p[1] for p in parts) == n == 120


def test_an_all_ones_mask_is_exactly_the_plain_gram(rng):
    f = rng.standard_normal((1, 6, 7, 9)).astype(np.float32)
    s, n = losses.gram_stats(f)
    sm, nm = losses.gram_stats(f, np.ones((7, 9), np.float32))
    assert np.array_equal(s, sm) and n == nm
    dg = rng.standard_normal((1, 6, 6)).astype(np.float32)
    assert np.array_equal(losses.gram_stats_backward(dg, n, f), losses.gram_stats_backward(dg, n, f, np.ones((7, 9))))


def test_complementary_masks_cover_every_position(rng):
    f = rng.standard_normal((1, 5, 6, 6))
    m = (rng.random((6, 6)) > 0.5).astype(np.float64)
    (a, na), (b, nb) = losses.gram_stats(f, m), losses.gram_stats(f, 1 - m)
    s, n = losses.gram_stats(f)
    np.testing.assert_allclose(a + b, s, rtol=1e-12)
    assert na + nb == n


@pytest.mark.parametrize("masked", [False, True])
def test_gram_term_gradient_matches_finite_differences(rng, masked):
    """float64, h = 1e-6: every component within 1e-7 of the largest (the masked term has components 1e4 times
    smaller than the largest, where the differences' rounding, ~1e-10, is all that differs)."""
    f = rng.standard_normal((1, 4, 5, 6))
    mask = rng.random((5, 6)) if masked else None
    target = losses.gram_stats(rng.standard_normal((1, 4, 5, 6)))[0] / 30
    term = terms.GramTerm("relu1_1", 2.5, target, mask=mask)
    value = lambda z: term.loss(term.stats(z))[0]
    _, dstats = term.loss(term.stats(f))
    ana = term.feature_grad(dstats, f).reshape(-1)
    num = fd_grad(value, f.copy(), range(f.size))
    assert np.abs(num - ana).max() < 1e-7 * np.abs(ana).max()
    assert rel_error(num, ana) < (1e-6 if not masked else 1e-3)


def test_terms_give_the_pairs_values(rng):
    """ContentTerm and GramTerm are the losses.py pairs times their weight (the objective's sum is unchanged)."""
    f, p = rng.standard_normal((1, 3, 4, 5)), rng.standard_normal((1, 3, 4, 5))
    c = terms.ContentTerm("relu4_2", 3.0, p)
    assert c.loss(c.stats(f))[0] == pytest.approx(3.0 * losses.content_forward(f, p)[0], rel=1e-12)
    a = losses.gram_forward(p)[0]
    g = terms.GramTerm("relu1_1", 7.0, a)
    assert g.loss(g.stats(f))[0] == pytest.approx(7.0 * losses.style_forward(*losses.gram_stats(f), a)[0], rel=1e-12)


def test_temporal_term_gradient_matches_finite_differences(rng):
    """float64, h = 1e-6: relative error below 1e-7 (the loss is quadratic; central differences are exact up to
    rounding). Pixels where c = 0 get no gradient."""
    x = rng.random((1, 3, 5, 7))
    warped = rng.random((1, 3, 5, 7))
    c = (rng.random((5, 7)) > 0.3).astype(np.float64)
    term = terms.TemporalTerm(4.0, warped, c)
    value = lambda z: term.loss(term.stats(z))[0]
    v, dstats = term.loss(term.stats(x))
    assert v == pytest.approx(4.0 * np.sum(c * (x - warped) ** 2) / x[0].size, rel=1e-12)
    ana = term.feature_grad(dstats, x)
    num = fd_grad(value, x.copy(), range(x.size))
    assert rel_error(num, ana.reshape(-1)) < 1e-7
    assert np.all(ana[..., c == 0] == 0)
