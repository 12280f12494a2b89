"""Instance normalisation of NCHW with a learned per-channel scale gamma and shift beta
(torch.nn.InstanceNorm2d(C, affine=True)): each sample's channel is normalised by its own mean and biased
variance over H*W. backward uses the closed form dx = inv * (g - mean(g) - xhat * mean(g * xhat)), g = gamma*dout."""
import numpy as np

from ..backend import xp_of

AXES = (2, 3)
EPS = 1e-5                          # added to the variance, as torch.nn.InstanceNorm2d


def moments(x, eps=EPS):
    """x (N, C, H, W) -> mean (N, C, 1, 1), x - mean (N, C, H, W), 1 / sqrt(biased variance + eps) (N, C, 1, 1):
    the variance of the centred values, so no cancellation."""
    mu = x.mean(axis=AXES, keepdims=True)                       # (N, C, 1, 1)
    xc = x - mu
    var = (xc * xc).mean(axis=AXES, keepdims=True)              # (N, C, 1, 1), biased
    return mu, xc, 1 / xp_of(x).sqrt(var + x.dtype.type(eps))


def forward(x, gamma, beta, eps=EPS):
    """x (N, C, H, W), gamma (C,), beta (C,) -> out (N, C, H, W)."""
    _, xc, inv = moments(x, eps)
    xhat = xc * inv                                             # (N, C, H, W)
    out = xhat * gamma[:, None, None] + beta[:, None, None]
    return out, (xhat, inv, gamma)


def backward(dout, cache):
    """dout (N, C, H, W) -> dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    xhat, inv, gamma = cache
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    g = dout * gamma[:, None, None]                             # gradient at xhat
    dx = inv * (g - g.mean(axis=AXES, keepdims=True) - xhat * (g * xhat).mean(axis=AXES, keepdims=True))
    return dx, dgamma, dbeta


def forward_ref(x, gamma, beta, eps=1e-5):
    """Loop reference: mean and biased variance of every (sample, channel) by explicit sums."""
    n, c, h, w = x.shape
    m = h * w
    out = np.zeros_like(x)
    xhat = np.zeros_like(x)
    inv = np.zeros((n, c), dtype=x.dtype)
    for b in range(n):
        for ch in range(c):
            mu = sum(float(x[b, ch, i, j]) for i in range(h) for j in range(w)) / m
            var = sum((float(x[b, ch, i, j]) - mu) ** 2 for i in range(h) for j in range(w)) / m
            inv[b, ch] = 1 / np.sqrt(var + eps)
            for i in range(h):
                for j in range(w):
                    xhat[b, ch, i, j] = (float(x[b, ch, i, j]) - mu) / np.sqrt(var + eps)
                    out[b, ch, i, j] = gamma[ch] * xhat[b, ch, i, j] + beta[ch]
    return out, (xhat, inv, gamma)


def backward_ref(dout, cache):
    """Loop reference through the full Jacobian: d xhat_k / d x_l = inv * (delta_kl - 1/M - xhat_k xhat_l / M)."""
    xhat, inv, gamma = cache
    n, c, h, w = dout.shape
    m = h * w
    dx, dgamma, dbeta = np.zeros_like(dout), np.zeros_like(gamma), np.zeros_like(gamma)
    for b in range(n):
        for ch in range(c):
            xs, ds = xhat[b, ch].reshape(-1), dout[b, ch].reshape(-1)
            for k in range(m):
                dbeta[ch] += ds[k]
                dgamma[ch] += ds[k] * xs[k]
            for l in range(m):
                total = 0.0
                for k in range(m):
                    jac = inv[b, ch] * ((k == l) - 1 / m - float(xs[k]) * float(xs[l]) / m)
                    total += float(ds[k]) * float(gamma[ch]) * jac
                dx[b, ch, l // w, l % w] = total
    return dx, dgamma, dbeta
