"""The perceptual loss of a batch (Johnson et al. 2016): the content and Gram style terms of style/, through our VGG,
for the network's outputs against their own input photos and one painting, and its gradient at the outputs."""
from ..nn.backend import xp_of
from ..nn.preprocess import preprocess_batch, preprocess_batch_backward
from ..style import objective, terms


class Perceptual:
    """evaluate(y, photos) -> (loss, dy, parts) for outputs y and the photos they were made from, (N, 3, H, W) RGB.

    loss = content_weight * sum_l c_l ||F_l(y) - F_l(photo)||^2 / ||F_l(photo)||^2 (over the whole batch)
         + style_weight * mean over images of sum_l s_l ||G_l(y_i) - A_l||^2 / ||A_l||^2 + tv_weight * TV(y),
    the terms of `vggnumpy style` (terms.py) taken over a batch; A_l are the painting's Gram matrices, made once.
    parts: {"content", "style", "tv"} (weighted).
    """

    def __init__(self, net, style_img, content_layers, style_layers, content_weight, style_weight, tv_weight):
        self.net = net
        self.content_layers, self.style_layers = dict(content_layers), dict(style_layers)
        self.weights = (content_weight, style_weight, tv_weight)
        grams = objective.gram_targets(net, style_img, list(self.style_layers))           # {layer: (1, C, C)}
        self.style_terms = [terms.GramTerm(n, style_weight * s, grams[n]) for n, s in self.style_layers.items()]

    def evaluate(self, y, photos):
        n = y.shape[0]
        cw, sw, tvw = self.weights
        content = []
        if cw:
            xc, _ = preprocess_batch(photos, self.net.weights)
            feats, _ = self.net.forward(xc, list(self.content_layers))
            content = [terms.ContentTerm(name, cw * s, feats[name]) for name, s in self.content_layers.items()]
        all_terms = content + (self.style_terms if sw else []) + ([terms.TVTerm(tvw)] if tvw else [])
        layers = list(dict.fromkeys(t.layer for t in all_terms if t.layer != terms.PIXELS))
        x, pcache = preprocess_batch(y, self.net.weights)
        feats, ncache = self.net.forward(x, layers)
        feats[terms.PIXELS] = y
        parts, grads = {"content": 0.0, "style": 0.0, "tv": 0.0}, {}
        for t in all_terms:
            f = feats[t.layer]
            value, dstats = t.loss(t.stats(f))
            share = 1.0 / n if isinstance(t, terms.GramTerm) else 1.0   # a Gram term sums over the images
            kind = "style" if isinstance(t, terms.GramTerm) else "content" if isinstance(t, terms.ContentTerm) else "tv"
            parts[kind] += value * share
            g = t.feature_grad(dstats, f)
            if share != 1.0:
                g *= g.dtype.type(share)
            grads[t.layer] = g if t.layer not in grads else grads[t.layer] + g
        feats = None
        dpix = grads.pop(terms.PIXELS, None)
        dy = preprocess_batch_backward(self.net.backward(grads, ncache), pcache) if grads else xp_of(y).zeros_like(y)
        if dpix is not None:
            dy = dy + dpix
        return sum(parts.values()), dy, parts
