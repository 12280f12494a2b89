"""The style-transfer objective: preprocessing, network, losses and their gradient with respect to the pixels."""
import numpy as np

from . import losses
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


def gram_targets(net, img, layers):
    """Gram matrices of one image at the given layers: {name: (1, C, C)}."""
    x, _ = preprocess_forward(img, net.weights)
    feats, _ = net.forward(x, layers)
    return {name: losses.gram_forward(feats[name])[0] for name in layers}


class Objective:
    """loss(img) and its gradient for img (3, H, W) RGB in [0, 1]. Targets are computed once, in __init__.

    content_img (3, H, W) at the output's size; style_imgs a list of (3, h, w) with blend weights;
    layer weights are dicts name -> weight. Call evaluate(img) -> (loss, grad, parts).
    """

    def __init__(self, net, content_img, style_imgs, blend, content_layers, style_layers,
                 content_weight=1.0, style_weight=1.0, tv_weight=0.0):
        self.net = net
        self.content_layers = dict(content_layers)
        self.style_layers = dict(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.layers = list(dict.fromkeys(list(self.content_layers) + list(self.style_layers)))
        self.content_targets = {}
        if self.content_layers and content_weight:
            x, _ = preprocess_forward(content_img, net.weights)
            feats, _ = net.forward(x, list(self.content_layers))
            self.content_targets = {n: feats[n].copy() for n in self.content_layers}
        # Blend several styles by mixing their Gram matrices (jcjohnson's -style_blend_weights).
        total = float(sum(blend))
        self.style_targets = {}
        if self.style_layers and style_weight:
            for img, b in zip(style_imgs, blend):
                grams = gram_targets(net, img, list(self.style_layers))
                for n, g in grams.items():
                    g = g * g.dtype.type(b / total)
                    self.style_targets[n] = g if n not in self.style_targets else self.style_targets[n] + g
        self.evaluations = 0

    def evaluate(self, img, with_grad=True):
        """img (3, H, W) -> (loss, dimg (3, H, W) or None, parts {term: weighted loss})."""
        self.evaluations += 1
        x, pcache = preprocess_forward(img, self.net.weights)
        layers = [n for n in self.layers if n in self.content_targets or n in self.style_targets]
        parts, dfeats, total = {}, {}, 0.0
        if layers:
            feats, ncache = self.net.forward(x, layers)
            for name, w in self.content_layers.items():
                if name not in self.content_targets:
                    continue
                k = self.content_weight * w
                loss, c = losses.content_forward(feats[name], self.content_targets[name])
                parts[f"content {name}"] = k * loss
                if with_grad:
                    _add(dfeats, name, losses.content_backward(k, c))
            for name, w in self.style_layers.items():
                if name not in self.style_targets:
                    continue
                k = self.style_weight * w
                loss, c = losses.style_forward(feats[name], self.style_targets[name])
                parts[f"style {name}"] = k * loss
                if with_grad:
                    _add(dfeats, name, losses.style_backward(k, c))
            del feats
        total = sum(parts.values())
        dimg = None
        if with_grad:
            dimg = preprocess_backward(self.net.backward(dfeats, ncache), pcache) if dfeats else xp_of(img).zeros_like(img)
        if self.tv_weight:
            loss, c = losses.tv_forward(img[None])
            parts["tv"] = self.tv_weight * loss
            total += parts["tv"]
            if with_grad:
                dimg = dimg + losses.tv_backward(self.tv_weight, c)[0]
        return total, dimg, parts


def _add(d, name, g):
    d[name] = g if name not in d else d[name] + g
