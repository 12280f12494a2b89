"""The network's input convention: an RGB image in [0, 1] to the channel order, scale, mean and std its weights were \
trained with, and back for the gradient."""
import numpy as np

from .backend import xp_of


def preprocess_forward(img, weights):
    """img (3, H, W) RGB in [0, 1] -> (1, 3, H, W) in the network's convention: ((img[order] * scale) - mean) / std."""
    xp = xp_of(img)
    order = [0, 1, 2] if weights.channel_order == "RGB" else [2, 1, 0]
    mean = xp.asarray(weights.mean, dtype=img.dtype).reshape(3, 1, 1)
    gain = xp.asarray([weights.pixel_scale / s for s in weights.std], dtype=img.dtype).reshape(3, 1, 1)
    return ((img[order] - mean / weights.pixel_scale) * gain)[None], (order, gain)


def preprocess_backward(dx, cache):
    """(1, 3, H, W) -> (3, H, W): undo the gain, then the channel order."""
    order, gain = cache
    dimg = dx[0] * gain
    return dimg[np.argsort(order)]


def preprocess_batch(x, weights):
    """x (N, 3, H, W) RGB in [0, 1] -> (N, 3, H, W) in the network's convention, as preprocess_forward per image."""
    xp = xp_of(x)
    order = [0, 1, 2] if weights.channel_order == "RGB" else [2, 1, 0]
    mean = xp.asarray(weights.mean, dtype=x.dtype).reshape(1, 3, 1, 1)
    gain = xp.asarray([weights.pixel_scale / s for s in weights.std], dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x[:, order] - mean / weights.pixel_scale) * gain, (order, gain)


def preprocess_batch_backward(dx, cache):
    """(N, 3, H, W) -> (N, 3, H, W): undo the gain, then the channel order."""
    order, gain = cache
    return (dx * gain)[:, np.argsort(order)]
