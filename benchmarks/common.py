"""Shared benchmark pieces: the random-weight objective in vggnumpy and the same objective written in PyTorch."""
import os
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vggnumpy.nn import arch as archmod                      # noqa: E402
from vggnumpy.nn.network import Network                      # noqa: E402
from vggnumpy.style.objective import Objective                  # noqa: E402
from vggnumpy.config import NETWORK_DEFAULTS              # noqa: E402
from vggnumpy.weights.file import random_weights               # noqa: E402

LAYERS = archmod.DEFAULT_LAYERS["vgg19"]


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB.

    On Linux, VmHWM of /proc/self/status: ru_maxrss (getrusage) survives fork+exec, so a worker started by a
    parent that had imported torch would report the parent's peak. Elsewhere ru_maxrss (KiB on Linux, bytes on
    macOS) is all there is.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def median_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def images(size, seed=0):
    """Content, style and starting images (3, size, size) float32 in [0, 1], from a seed."""
    rng = np.random.default_rng(seed)
    return [rng.random((3, size, size), dtype=np.float32) for _ in range(3)]


def layer_weights():
    cl, sl = LAYERS["content"], LAYERS["style"]
    return {n: 1.0 / len(cl) for n in cl}, {n: 1.0 / len(sl) for n in sl}


def our_objective(size, seed=0, weights=None, content=None, style=None):
    """vggnumpy's Objective with the untrained network's default loss weights on random VGG-19 weights (or the given
    ones)."""
    d = NETWORK_DEFAULTS["untrained"]
    w = weights or random_weights("vgg19", seed=0)
    c, s, _ = images(size, seed)
    content = c if content is None else content
    style = s if style is None else style
    cw, sw = layer_weights()
    return Objective(Network(w, d["pooling"]), content, [style], [1.0], cw, sw,
                     d["content_weight"], d["style_weight"], d["tv_weight"])


def flops_per_eval(size):
    """Multiply-adds x 2 of the convolutions to the deepest layer, forward plus input-gradient backward."""
    shapes = archmod.feature_shapes("vgg19", size, size)
    last = archmod.layer_names("vgg19").index(max(LAYERS["content"] + LAYERS["style"],
                                                  key=archmod.layer_names("vgg19").index))
    total = 0
    for name, kind, p in archmod.get_table("vgg19")[:last + 1]:
        if kind == "conv":
            c, h, w = shapes[name]
            fwd = 2 * h * w * c * p["cin"] * p["k"] * p["k"]
            total += 2 * fwd                                # forward, and the input gradient (same size)
    return total


# ---------------------------------------------------------------- PyTorch: the same objective, same weights

def torch_objective(obj, threads=2):
    """A function img (3, H, W) numpy -> (loss, grad numpy) computing obj's loss terms with torch.nn modules.

    Reads the objective's terms (content, Gram without masks, TV), their weights, targets and energies."""
    import torch
    from vggnumpy.style import terms
    torch.set_num_threads(threads)
    net, weights = obj.net, obj.net.weights
    from torchvgg import trunk
    layers = [t.layer for t in obj.terms if t.layer != terms.PIXELS]
    names, mods = trunk(weights, max(layers, key=archmod.layer_names(weights.arch).index), net.pooling)
    order = [0, 1, 2] if weights.channel_order == "RGB" else [2, 1, 0]
    mean = torch.tensor(weights.mean, dtype=torch.float32).reshape(3, 1, 1) / weights.pixel_scale
    gain = torch.tensor([weights.pixel_scale / s for s in weights.std], dtype=torch.float32).reshape(3, 1, 1)
    by_layer = {}
    for t in obj.terms:
        if getattr(t, "mask", None) is not None:
            raise ValueError("torch_objective: masked Gram terms are not written here")
        by_layer.setdefault(t.layer, []).append((t, torch.from_numpy(t.target) if hasattr(t, "target") else None))

    def term_loss(t, target, h):
        if isinstance(t, terms.ContentTerm):
            return t.weight * t.scale * ((h - target) ** 2).sum()
        _, c, hh, ww = h.shape
        f = h.reshape(c, hh * ww)
        g = (f @ f.t() / (hh * ww))[None]
        return t.weight * t.scale * ((g - target) ** 2).sum()

    def loss_of(img):
        h = ((img[order] - mean) * gain)[None]
        total = 0.0
        for name, m in zip(names, mods):
            h = m(h)
            for t, target in by_layer.get(name, []):
                total = total + term_loss(t, target, h)
        for t, _ in by_layer.get(terms.PIXELS, []):
            dh = img[:, 1:, :] - img[:, :-1, :]
            dw = img[:, :, 1:] - img[:, :, :-1]
            total = total + t.weight * ((dh * dh).sum() + (dw * dw).sum()) / img.numel()
        return total

    def evaluate(img):
        t = torch.from_numpy(np.ascontiguousarray(img)).requires_grad_(True)
        loss = loss_of(t)
        loss.backward()
        return float(loss.detach()), t.grad.numpy()

    evaluate.loss_of = loss_of
    return evaluate
