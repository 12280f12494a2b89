"""ReLU forward and backward. The cache is a one-byte mask (out > 0), a quarter of the float32 output's memory:
without weight gradients nothing else of the activation is needed by backward."""
import numpy as np


def forward(x, inplace=False):
    """x (any shape) -> max(x, 0). With inplace=True x is overwritten, saving a full activation of memory."""
    out = np.maximum(x, 0, out=x if inplace else None)
    return out, out > 0


def backward(dout, cache):
    mask = cache
    return np.where(mask, dout, 0).astype(dout.dtype, copy=False)


def forward_ref(x):
    out = x.copy()
    for idx in np.ndindex(x.shape):
        out[idx] = x[idx] if x[idx] > 0 else 0
    return out, out > 0


def backward_ref(dout, cache):
    dx = np.zeros_like(dout)
    for idx in np.ndindex(dout.shape):
        dx[idx] = dout[idx] if cache[idx] > 0 else 0
    return dx
