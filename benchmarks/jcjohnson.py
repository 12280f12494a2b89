"""jcjohnson/neural-style's recipe written in PyTorch, on our weights: the peer that bench_e2e.py times us against.

The recipe (neural_style.lua at its defaults, see ../shared/notes/peers.md):
- the image lives in the network's input space (Caffe: BGR, 0-255, minus the mean), starting at randn * 0.001;
- max pooling; content relu4_2, style relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, every style layer at full weight;
- content loss 5 * mean((F - P)^2) (nn.MSECriterion averages over C*H*W);
- Gram G = F F^T / (C*H*W); style loss 100 * mean((G - A)^2) over the C*C entries, i.e. / C^2;
- total variation 1e-3, gradient only: the gradient of 1e-3 / 2 * sum of squared right and down differences;
- L-BFGS without a line search: learning rate 1, 100 corrections, tolerances off, one evaluation per iteration;
  torch.optim.LBFGS with line_search_fn=None is the same algorithm as Lua's optim.lbfgs.
"""
import time

import numpy as np

from torchvgg import trunk
from vggnumpy.nn import arch as archmod

CONTENT, STYLE = ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 5.0, 100.0, 1e-3


def features(names, mods, x, wanted):
    """{name: (1, C, h, w)} at the wanted layers for x (1, 3, H, W)."""
    out = {}
    for name, m in zip(names, mods):
        x = m(x)
        if name in wanted:
            out[name] = x
    return out


def gram(f):
    _, c, h, w = f.shape
    fm = f.reshape(c, h * w)
    return fm @ fm.t() / (c * h * w)


class Convention:
    """RGB (H, W, 3) in [0, 1] <-> the network's input (1, 3, H, W), as the weights file says."""

    def __init__(self, torch, weights):
        self.order = [0, 1, 2] if weights.channel_order == "RGB" else [2, 1, 0]
        self.scale = weights.pixel_scale
        self.mean = torch.tensor(weights.mean, dtype=torch.float32).reshape(1, 3, 1, 1)
        self.std = torch.tensor(weights.std, dtype=torch.float32).reshape(1, 3, 1, 1)
        self.torch = torch

    def to_net(self, img):
        x = self.torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)[self.order]))[None]
        return (x * self.scale - self.mean) / self.std

    def to_image(self, x):
        rgb = ((x * self.std + self.mean) / self.scale)[0].detach().numpy()[np.argsort(self.order)]
        return np.clip(rgb.transpose(1, 2, 0), 0, 1).astype(np.float32)


def run(weights, content, style, iterations=1000, every=10, threads=2, seed=0):
    """jcjohnson's recipe: content, style (H, W, 3) RGB [0, 1] at the working sizes.

    Returns [(seconds since start, iteration, image (H, W, 3))] every `every` iterations and at the end; the clock
    starts before the targets are computed and stops for the snapshots' copies.
    """
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    start = time.perf_counter()
    conv = Convention(torch, weights)
    names, mods = trunk(weights, max(CONTENT + STYLE, key=archmod.layer_names(weights.arch).index))
    with torch.no_grad():
        ctarget = features(names, mods, conv.to_net(content), CONTENT)
        starget = {n: gram(f) for n, f in features(names, mods, conv.to_net(style), STYLE).items()}
    x = (torch.randn(1, 3, *content.shape[:2]) * 0.001).requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=100, tolerance_grad=-1, tolerance_change=-1)

    def closure():
        opt.zero_grad()
        feats = features(names, mods, x, set(CONTENT + STYLE))
        loss = sum(CONTENT_WEIGHT * torch.mean((feats[n] - ctarget[n]) ** 2) for n in CONTENT)
        loss = loss + sum(STYLE_WEIGHT * torch.mean((gram(feats[n]) - starget[n]) ** 2) for n in STYLE)
        dh, dw = x[:, :, 1:, :] - x[:, :, :-1, :], x[:, :, :, 1:] - x[:, :, :, :-1]
        loss = loss + TV_WEIGHT / 2 * ((dh ** 2).sum() + (dw ** 2).sum())
        loss.backward()
        return loss

    snaps, paused = [], 0.0
    for it in range(1, iterations + 1):
        opt.step(closure)                    # max_iter=1: one evaluation, one update, the state carried over
        if it % every == 0 or it == iterations:
            t = time.perf_counter()
            snaps.append((t - start - paused, it, conv.to_image(x)))
            paused += time.perf_counter() - t
    return snaps
