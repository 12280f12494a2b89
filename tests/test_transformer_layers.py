"""The transformer network's layers (reflection padding, instance norm, nearest upsampling) against their loop
references, float64 finite differences of every input and parameter, and PyTorch's layers and autograd."""
import numpy as np
import pytest

from conftest import fd_grad, rel_error
from vggnumpy.nn.kernels import instnorm, reflect, upsample

REF_RTOL = 1e-5          # float32 fast version against its loop reference: relative to the largest value
FD_TOL = 1e-6            # float64 finite differences, h = 1e-6: rel_error (conftest) below this
TORCH_RTOL = 1e-5        # float32 against PyTorch: relative to the largest value
REFLECT_CASES = [(2, 3, 5, 7, 1), (1, 2, 4, 6, 3), (2, 2, 6, 5, 4), (1, 1, 3, 3, 0)]    # (N, C, H, W, p)
UPSAMPLE_CASES = [(2, 3, 4, 5, 2), (1, 2, 3, 2, 3), (1, 1, 2, 2, 1)]                     # (N, C, H, W, s)
NORM_SHAPES = [(2, 3, 5, 6), (1, 4, 3, 7)]


def close(a, b, rtol):
    """Every element within rtol of the larger array's largest magnitude."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = max(np.abs(a).max(), np.abs(b).max(), 1e-30)
    assert np.abs(a - b).max() <= rtol * scale, np.abs(a - b).max() / scale


def norm_inputs(rng, shape, dtype):
    """x with an offset and scale per channel (so the mean and variance matter), gamma and beta away from 1, 0."""
    c = shape[1]
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3, (c, 1, 1)) + rng.uniform(-2, 2, (c, 1, 1))
    return x.astype(dtype), rng.uniform(0.5, 2, c).astype(dtype), rng.standard_normal(c).astype(dtype)


# --- fast against the loop reference (float32, REF_RTOL) ---

@pytest.mark.parametrize("case", REFLECT_CASES)
def test_reflect_matches_reference(case, rng):
    n, c, h, w, p = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    y, cache = reflect.forward(x, p)
    yr, cache_r = reflect.forward_ref(x, p)
    assert y.dtype == np.float32 and y.shape == (n, c, h + 2 * p, w + 2 * p)
    np.testing.assert_array_equal(y, yr)
    d = rng.standard_normal(y.shape).astype(np.float32)
    dx = reflect.backward(d, cache)
    assert dx.dtype == np.float32
    close(dx, reflect.backward_ref(d, cache_r), REF_RTOL)


@pytest.mark.parametrize("case", UPSAMPLE_CASES)
def test_upsample_matches_reference(case, rng):
    n, c, h, w, s = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    y, cache = upsample.forward(x, s)
    yr, cache_r = upsample.forward_ref(x, s)
    assert y.dtype == np.float32 and y.shape == (n, c, h * s, w * s)
    np.testing.assert_array_equal(y, yr)
    d = rng.standard_normal(y.shape).astype(np.float32)
    dx = upsample.backward(d, cache)
    assert dx.dtype == np.float32
    close(dx, upsample.backward_ref(d, cache_r), REF_RTOL)


@pytest.mark.parametrize("shape", NORM_SHAPES)
def test_instnorm_matches_reference(shape, rng):
    x, gamma, beta = norm_inputs(rng, shape, np.float32)
    y, cache = instnorm.forward(x, gamma, beta)
    yr, cache_r = instnorm.forward_ref(x, gamma, beta)
    assert y.dtype == np.float32
    close(y, yr, REF_RTOL)
    d = rng.standard_normal(shape).astype(np.float32)
    grads = instnorm.backward(d, cache)
    assert all(g.dtype == np.float32 for g in grads)
    for g, gr in zip(grads, instnorm.backward_ref(d, cache_r)):
        close(g, gr, REF_RTOL)


# --- float64 finite differences of sum(out * r), FD_TOL ---

def check_fd(forward, backward, inputs, rng):
    """Every input's analytic gradient of sum(forward(*inputs) * r) against central differences (all entries)."""
    out, cache = forward(*inputs)
    r = rng.standard_normal(out.shape)
    grads = backward(r, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for k, (a, g) in enumerate(zip(inputs, grads)):
        def f(v):
            args = list(inputs)
            args[k] = v
            return float(np.sum(forward(*args)[0] * r))
        num = fd_grad(f, a, range(a.size))
        assert rel_error(num, g.reshape(-1)) < FD_TOL, (k, rel_error(num, g.reshape(-1)))


@pytest.mark.parametrize("case", REFLECT_CASES)
def test_reflect_finite_differences(case, rng):
    n, c, h, w, p = case
    x = rng.standard_normal((n, c, h, w))
    check_fd(lambda v: reflect.forward(v, p), reflect.backward, [x], rng)


@pytest.mark.parametrize("case", UPSAMPLE_CASES)
def test_upsample_finite_differences(case, rng):
    n, c, h, w, s = case
    x = rng.standard_normal((n, c, h, w))
    check_fd(lambda v: upsample.forward(v, s), upsample.backward, [x], rng)


@pytest.mark.parametrize("shape", NORM_SHAPES)
def test_instnorm_finite_differences(shape, rng):
    """x, gamma and beta, all in float64."""
    check_fd(instnorm.forward, instnorm.backward, list(norm_inputs(rng, shape, np.float64)), rng)


# --- against PyTorch: forward and autograd gradients, float32, TORCH_RTOL ---

def torch_run(torch_layer, x, params, r):
    """Forward of torch_layer on x, then autograd of sum(out * r): (out, dx, [d param])."""
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    y = torch_layer(tx)
    (y * torch.tensor(r)).sum().backward()
    return y.detach().numpy(), tx.grad.numpy(), [p.grad.numpy() for p in params]


@pytest.mark.parametrize("case", REFLECT_CASES)
def test_reflect_matches_torch(case, rng):
    torch = pytest.importorskip("torch")
    n, c, h, w, p = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    y, cache = reflect.forward(x, p)
    r = rng.standard_normal(y.shape).astype(np.float32)
    ty, tdx, _ = torch_run(torch.nn.ReflectionPad2d(p), x, [], r)
    close(y, ty, TORCH_RTOL)
    close(reflect.backward(r, cache), tdx, TORCH_RTOL)


@pytest.mark.parametrize("case", UPSAMPLE_CASES)
def test_upsample_matches_torch(case, rng):
    torch = pytest.importorskip("torch")
    n, c, h, w, s = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    y, cache = upsample.forward(x, s)
    r = rng.standard_normal(y.shape).astype(np.float32)
    ty, tdx, _ = torch_run(torch.nn.Upsample(scale_factor=s, mode="nearest"), x, [], r)
    close(y, ty, TORCH_RTOL)
    close(upsample.backward(r, cache), tdx, TORCH_RTOL)


@pytest.mark.parametrize("shape", NORM_SHAPES)
def test_instnorm_matches_torch(shape, rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta = norm_inputs(rng, shape, np.float32)
    layer = torch.nn.InstanceNorm2d(shape[1], affine=True, eps=1e-5)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(gamma))
        layer.bias.copy_(torch.tensor(beta))
    y, cache = instnorm.forward(x, gamma, beta)
    r = rng.standard_normal(shape).astype(np.float32)
    ty, tdx, (tdgamma, tdbeta) = torch_run(layer, x, [layer.weight, layer.bias], r)
    close(y, ty, TORCH_RTOL)
    dx, dgamma, dbeta = instnorm.backward(r, cache)
    close(dx, tdx, TORCH_RTOL)
    close(dgamma, tdgamma, TORCH_RTOL)
    close(dbeta, tdbeta, TORCH_RTOL)


# --- bad input ---

@pytest.mark.parametrize("p, h, w", [(3, 3, 8), (4, 8, 4), (5, 3, 3)])
def test_reflect_rejects_padding_not_smaller_than_the_image(p, h, w):
    x = np.zeros((1, 1, h, w), dtype=np.float32)
    for f in (reflect.forward, reflect.forward_ref):
        with pytest.raises(ValueError, match=rf"padding {p}.*{h}x{w}"):
            f(x, p)
