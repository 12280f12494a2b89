"""Each kernel against its loop reference, and float64 finite-difference checks of every backward pass."""
import numpy as np
import pytest

from conftest import fd_grad, rel_error
from vggnumpy.nn.kernels import conv, pool, relu
from vggnumpy.nn.kernels.engine import Engine

# (C, O, K, stride, pad, H, W): VGG's 3x3/1/1, NIN's 11x11/4, 5x5/1/2 and 1x1, odd cases, and the style
# network's 9x9/1/4 (4 -> 3: through the FFT by default) and 3x3/2/0 on odd sizes (on the input's phases).
CONV_CASES = [(3, 4, 3, 1, 1, 7, 9), (3, 5, 11, 4, 0, 27, 23), (4, 3, 5, 1, 2, 8, 6), (4, 6, 1, 1, 0, 5, 5),
              (2, 3, 3, 2, 1, 9, 8), (2, 2, 3, 1, 0, 6, 7), (3, 2, 3, 1, 3, 4, 5), (5, 4, 2, 2, 0, 6, 6),
              (4, 3, 9, 1, 4, 13, 10), (3, 4, 3, 2, 0, 10, 7)]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_reference(case, rng):
    c, o, k, s, p, h, w = case
    x = rng.standard_normal((2, c, h, w))
    wt, b = rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    y, cache = conv.forward(x, wt, b, s, p)
    yr, cache_r = conv.forward_ref(x, wt, b, s, p)
    assert y.shape == yr.shape
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-12)
    d = rng.standard_normal(y.shape)
    np.testing.assert_allclose(conv.backward(d, cache), conv.backward_ref(d, cache_r), rtol=1e-12, atol=1e-12)


def test_conv_float32_matches_reference(rng):
    """float32 inside: fast and loop versions agree to float32 rounding (rtol 1e-5)."""
    x = rng.standard_normal((1, 16, 12, 10)).astype(np.float32)
    wt = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    y, cache = conv.forward(x, wt, b, 1, 1)
    assert y.dtype == np.float32
    yr, _ = conv.forward_ref(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64), 1, 1)
    np.testing.assert_allclose(y, yr, rtol=1e-4, atol=1e-4)


def test_conv_chunks_do_not_change_result(rng, monkeypatch):
    """Tiny chunks force many column blocks; the answer must not move."""
    x = rng.standard_normal((1, 3, 20, 17))
    wt, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    full, _ = conv.forward(x, wt, b, 1, 1)
    full2, _ = conv.forward(x, wt, b, 2, 1)
    monkeypatch.setattr(conv, "CHUNK_ELEMS", 64)
    np.testing.assert_allclose(conv.forward(x, wt, b, 1, 1)[0], full, rtol=1e-12)
    np.testing.assert_allclose(conv.forward(x, wt, b, 2, 1)[0], full2, rtol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES[:5])
def test_conv_finite_differences(case, rng):
    c, o, k, s, p, h, w = case
    x = rng.standard_normal((1, c, h, w))
    wt, b = rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    y, cache = conv.forward(x, wt, b, s, p)
    r = rng.standard_normal(y.shape)
    dx = conv.backward(r, cache)
    idx = rng.choice(x.size, size=min(40, x.size), replace=False)
    num = fd_grad(lambda z: float(np.sum(conv.forward(z, wt, b, s, p)[0] * r)), x, idx)
    assert rel_error(num, dx.reshape(-1)[idx]) < 1e-6


WINOGRAD_CASES = [c for c in CONV_CASES if c[2] == 3 and c[3] == 1] + [(6, 5, 3, 1, 1, 11, 6), (4, 3, 3, 1, 2, 5, 8)]
PATHS = ["winograd"] + list(conv.DIRECT_WAYS) + ["fft"]


def force_path(path):
    """An engine whose stride-1 dispatcher picks `path` for every layer it can run."""
    return Engine(way=path)


def test_default_paths_follow_the_rule():
    assert conv.stride1_path(3, 64, 3, 3, 512 * 512) == "columns"           # conv1_1: K = 27
    assert conv.stride1_path(64, 3, 3, 3, 512 * 512) == "slices"            # conv1_1's input gradient: M = 27
    assert conv.stride1_path(64, 64, 3, 3, 512 * 512) == "rows"
    assert conv.stride1_path(512, 512, 3, 3, 64 * 64) == "winograd"
    assert conv.stride1_path(512, 512, 3, 3, 16 * 16) == "rows"             # small maps: the kernel transform dominates
    assert conv.stride1_path(512, 512, 1, 1, 64 * 64) == "rows"             # Winograd is for 3x3 only
    assert conv.stride1_path(3, 64, 3, 3, 512 * 512, way="slices") == "slices"     # an engine's way wins
    assert conv.stride1_path(512, 512, 1, 1, 64 * 64, way="winograd") == "rows"    # ... where it can run
    assert conv.stride1_path(16, 3, 9, 9, 256 * 256) == "fft"               # the style network's last layer
    assert conv.stride1_path(3, 16, 9, 9, 256 * 256) == "rows"              # its first: O inverse FFTs cost more
    assert conv.stride1_path(64, 64, 3, 3, 64 * 64, way="fft") == "fft"
    assert conv.stride1_path(64, 64, 1, 3, 64 * 64, way="fft") == "rows"            # the FFT takes square kernels


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_conv_paths_match_reference(case, path, rng, monkeypatch):
    """Every stride-1 path forced on every 3x3 stride-1 case: forward and input gradient against the loops
    (float64, 1e-12), in several blocks of rows, and the gradient against finite differences."""
    e = force_path(path)
    monkeypatch.setattr(conv, "CHUNK_ELEMS", 200)                  # several row or tile-row blocks even here
    c, o, k, s, p, h, w = case
    x = rng.standard_normal((2, c, h, w))
    wt, b = rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    y, cache = conv.forward(x, wt, b, s, p, engine=e)
    yr, cache_r = conv.forward_ref(x, wt, b, s, p)
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-12)
    d = rng.standard_normal(y.shape)
    dx = conv.backward(d, cache, engine=e)
    np.testing.assert_allclose(dx, conv.backward_ref(d, cache_r), rtol=1e-12, atol=1e-12)
    idx = rng.choice(x.size, 30, replace=False)
    num = fd_grad(lambda z: float(np.sum(conv.forward(z, wt, b, s, p, engine=e)[0] * d)), x, idx)
    assert rel_error(num, dx.reshape(-1)[idx]) < 1e-6


@pytest.mark.parametrize("path", PATHS)
def test_conv_paths_float32(path, rng):
    """float32 against the float64 loops. Winograd F(4x4, 3x3) rounds more than direct convolution (its
    transforms scale by up to 8 and by fractions like 1/6), so the tolerance is stated per path: 1e-5 relative to
    the output's largest value for the direct paths and the FFT (seen: about 3e-7), 1e-4 for Winograd (seen:
    about 1e-5)."""
    e = force_path(path)
    x = rng.standard_normal((1, 32, 19, 22))
    wt, b = rng.standard_normal((24, 32, 3, 3)), rng.standard_normal(24)
    y32, cache = conv.forward(x.astype(np.float32), wt.astype(np.float32), b.astype(np.float32), 1, 1, engine=e)
    yr, cache_r = conv.forward_ref(x, wt, b, 1, 1)
    assert y32.dtype == np.float32
    tol = 1e-4 if path == "winograd" else 1e-5
    assert np.abs(y32 - yr).max() / np.abs(yr).max() < tol
    d = rng.standard_normal(yr.shape)
    dx32 = conv.backward(d.astype(np.float32), cache, engine=e)
    dxr = conv.backward_ref(d, cache_r)
    assert dx32.dtype == np.float32
    assert np.abs(dx32 - dxr).max() / np.abs(dxr).max() < tol


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_relu_fused_matches_reference(case, path, rng, monkeypatch):
    """forward_relu = relu(conv); its backward applies the ReLU mask, then the conv's input gradient."""
    e = force_path(path)
    monkeypatch.setattr(conv, "CHUNK_ELEMS", 64)                   # one output row per block: halo rows tested
    c, o, k, s, p, h, w = case
    x = rng.standard_normal((2, c, h, w))
    wt, b = rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    y, cache = conv.forward_relu(x, wt, b, s, p, engine=e)
    yr, cache_r = relu.forward_ref(conv.forward_ref(x, wt, b, s, p)[0])
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-12)
    d = rng.standard_normal(y.shape)
    expect = conv.backward_ref(relu.backward_ref(d, cache_r), conv.forward_ref(x, wt, b, s, p)[1])
    np.testing.assert_allclose(conv.backward(d, cache, engine=e), expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [(16, 8, 3, 2, 1, 13, 10), (3, 5, 5, 2, 2, 11, 12), (4, 3, 2, 2, 0, 7, 9)])
def test_stride2_runs_on_the_input_phases_as_im2col_would(case, rng, monkeypatch):
    """Stride 2 as a stride-1 convolution of the input's four phases (phases.py): the same outputs and input
    gradients, with and without the fused ReLU, as the im2col route (float64, 1e-12); and that route was taken."""
    from vggnumpy.nn.kernels import phases
    c, o, k, s, p, h, w = case
    x = rng.standard_normal((2, c, h, w))
    wt, b = rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    calls = []
    monkeypatch.setattr(phases, "to_phases", lambda *a, f=phases.to_phases: calls.append(1) or f(*a))
    y, cache = conv.forward_relu(x, wt, b, s, p)
    d = rng.standard_normal(y.shape)
    dx = conv.backward(d, cache)
    assert len(calls) == 2                                             # one per image
    monkeypatch.setattr(conv, "PHASE_STRIDES", ())
    y2, cache2 = conv.forward_relu(x, wt, b, s, p)
    np.testing.assert_allclose(y, y2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, conv.backward(d, cache2), rtol=1e-12, atol=1e-12)


def test_phases_copy_back_is_the_transpose_of_the_copy(rng):
    """<to_phases(x), d> = <x, from_phases(d)>: the input gradient's copy is exactly the forward copy's transpose."""
    from vggnumpy.nn.kernels import phases
    x = rng.standard_normal((3, 9, 8))
    d = rng.standard_normal((12, 6, 5))
    lhs = np.sum(phases.to_phases(x, 2, 1, 6, 5) * d)
    assert abs(lhs - np.sum(x * phases.from_phases(d, 2, 1, 9, 8))) < 1e-12


def test_winograd_bias_position_adds_to_every_output():
    """The bias goes into one position of the transformed tile (winograd._BIAS_AT): A^T e e^T A must be all ones."""
    from vggnumpy.nn.kernels import winograd
    e = np.zeros(36)
    e[winograd._BIAS_AT] = 1
    np.testing.assert_array_equal(np.kron(winograd.AT, winograd.AT) @ e, np.ones(16))


def test_relu_reference_and_finite_differences(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    x[np.abs(x) < 1e-3] = 0.5                       # keep finite differences away from the kink
    y, cache = relu.forward(x)
    yr, cache_r = relu.forward_ref(x)
    np.testing.assert_array_equal(y, yr)
    d = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(relu.backward(d, cache), relu.backward_ref(d, cache_r))
    idx = rng.choice(x.size, 30, replace=False)
    num = fd_grad(lambda z: float(np.sum(relu.forward(z)[0] * d)), x, idx)
    assert rel_error(num, relu.backward(d, cache).reshape(-1)[idx]) < 1e-6


def test_relu_inplace_overwrites_and_matches(rng):
    x = rng.standard_normal((1, 2, 3, 3))
    expect = np.maximum(x, 0)
    y, _ = relu.forward(x, inplace=True)
    assert y is x
    np.testing.assert_array_equal(x, expect)


# (k, stride, pad, ceil, H, W): VGG's 2x2/2, NIN's 3x3/2 ceil, padding, odd sizes.
POOL_CASES = [(2, 2, 0, False, 8, 8), (2, 2, 0, False, 9, 7), (3, 2, 0, True, 13, 13), (3, 2, 0, True, 14, 11),
              (2, 2, 0, True, 7, 9), (3, 2, 1, False, 9, 9), (3, 2, 1, True, 10, 9), (3, 1, 1, False, 5, 6),
              (3, 3, 0, True, 10, 8)]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_matches_reference(case, mode, rng):
    k, s, p, ceil, h, w = case
    x = rng.standard_normal((2, 3, h, w))
    y, cache = pool.forward(x, k, s, p, ceil, mode)
    yr, cache_r = pool.forward_ref(x, k, s, p, ceil, mode)
    assert y.shape == yr.shape
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-12)
    d = rng.standard_normal(y.shape)
    np.testing.assert_allclose(pool.backward(d, cache), pool.backward_ref(d, cache_r), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES[:6])
def test_pool_finite_differences(case, mode, rng):
    k, s, p, ceil, h, w = case
    x = rng.standard_normal((1, 2, h, w))          # continuous values: no ties, so max is differentiable here
    y, cache = pool.forward(x, k, s, p, ceil, mode)
    d = rng.standard_normal(y.shape)
    idx = rng.choice(x.size, min(40, x.size), replace=False)
    num = fd_grad(lambda z: float(np.sum(pool.forward(z, k, s, p, ceil, mode)[0] * d)), x, idx)
    assert rel_error(num, pool.backward(d, cache).reshape(-1)[idx]) < 1e-6


@pytest.mark.parametrize("case", [(2, 2, 0, False, 8, 8), (3, 2, 0, True, 9, 9)])
def test_maxpool_ties_send_gradient_to_one_element(case, rng):
    """After ReLU whole windows are 0; each window's gradient must land on exactly one (the first) element."""
    k, s, p, ceil, h, w = case
    x = np.zeros((1, 1, h, w))
    y, cache = pool.forward(x, k, s, p, ceil, "max")
    d = np.ones_like(y)
    dx = pool.backward(d, cache)
    assert dx.sum() == pytest.approx(y.size)                 # nothing lost, nothing doubled
    if k == s:                                               # non-overlapping: one element per window
        assert np.count_nonzero(dx) == y.size
        assert np.all(dx[0, 0, ::s, ::s] == 1)               # the first element of each window
    np.testing.assert_array_equal(dx, pool.backward_ref(d, pool.forward_ref(x, k, s, p, ceil, "max")[1]))


def test_pool_too_small_raises():
    with pytest.raises(ValueError):
        pool.forward(np.zeros((1, 1, 1, 1)), 2, 2, 0, False, "max")


def test_threads_do_not_change_results(rng):
    """The copies and elementwise passes split over an engine's threads (kernels/parallel.py): 1 and 3 threads
    agree exactly."""
    x = rng.standard_normal((1, 300, 10, 12)).astype(np.float32)
    wt, b = rng.standard_normal((260, 300, 3, 3)).astype(np.float32), rng.standard_normal(260).astype(np.float32)
    results = []
    for n in (1, 3):
        with Engine(threads=n, way="winograd") as e:
            y, cache = conv.forward_relu(x, wt, b, 1, 1, engine=e)
            p, pc = pool.forward(y, mode="avg", engine=e)
            results.append((y, conv.backward(pool.backward(p, pc, engine=e), cache, engine=e)))
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


def test_threads_setting_is_checked_and_read_once(monkeypatch):
    """$VGGNUMPY_THREADS is read when an engine is built (engine.env_threads), not at every call."""
    monkeypatch.setenv("VGGNUMPY_THREADS", "two")
    with pytest.raises(ValueError, match="VGGNUMPY_THREADS"):
        Engine()
    monkeypatch.setenv("VGGNUMPY_THREADS", "3")
    e = Engine()
    monkeypatch.setenv("VGGNUMPY_THREADS", "two")
    assert e.threads == 3
    e.split(lambda a, b: None, 30)                                 # still runs: the setting is not read again
    assert Engine(threads=2).threads == 2
    for bad in (0, 1.5, "2"):
        with pytest.raises(ValueError, match="threads"):
            Engine(threads=bad)
    with pytest.raises(ValueError, match="way"):
        Engine(way="fastest")


def test_engines_are_independent(rng):
    """Each engine owns its forced way, its pool and its derived weights: nothing is shared at module level."""
    x = rng.standard_normal((1, 16, 9, 8)).astype(np.float32)
    wt, b = rng.standard_normal((24, 16, 3, 3)).astype(np.float32), rng.standard_normal(24).astype(np.float32)
    cols, rows = Engine(threads=2, way="columns"), Engine(threads=2)
    y1, c1 = conv.forward_relu(x, wt, b, 1, 1, engine=cols)
    y2, c2 = conv.forward_relu(x, wt, b, 1, 1, engine=rows)
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    assert {k for _, k in cols._derived} == {("columns", False)}
    assert {k for _, k in rows._derived} == {("rows", False)}    # 16 -> 24 channels: the default rule's way
    conv.backward(y1, c1, engine=cols)
    assert {k for _, k in cols._derived} == {("columns", False), ("columns", True)}
    derived = cols.derived(wt, ("columns", False), lambda w: 1 / 0)   # kept: not made again
    assert derived.shape == (24, 9 * 16)
    del wt, c1, c2
    assert not cols._derived and not rows._derived                # dropped with the kernel array
    cols.close()
    cols.split(lambda a, b: None, 10)                              # usable after close: the pool comes back
