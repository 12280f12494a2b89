"""Check one hand-written gradient against central finite differences in float64: python -m vggnumpy.learn.gradcheck \
NAME."""
# Each check builds a small random input x, a scalar function fun(x) (a loss, or sum(r * out) with a fixed random
# r for a layer, which makes the layer's backward of dout = r the gradient of fun) and the analytic gradient the
# project computes, then compares both at SAMPLES random coordinates. docs/algorithm.md names the paper's equation
# behind each check. run(name, seed) -> (max_rel_error, tol, description); `python -m vggnumpy.learn.gradcheck --list`
# lists the names, `all` runs every check; the exit status is 0 when every check passes, 1 otherwise.
import argparse
import functools
import sys
from dataclasses import dataclass

import numpy as np

from ..files.log import stderr
from ..style import losses, objective, terms
from ..nn.arch import DEFAULT_LAYERS
from ..nn import preprocess
from ..nn.kernels import conv, convgrad, pool, relu
from ..nn.network import Network
from ..weights.file import CAFFE, Weights, random_weights

SAMPLES = 20           # random coordinates compared per check


def rel_error(num, ana):
    """Largest elementwise relative error |num - ana| / max(|num| + |ana|, floor) (tests/conftest.py's)."""
    num, ana = np.asarray(num, dtype=np.float64), np.asarray(ana, dtype=np.float64)
    floor = 1e-7 * max(np.abs(num).max(), np.abs(ana).max(), 1e-30)
    return float(np.max(np.abs(num - ana) / np.maximum(np.abs(num) + np.abs(ana), floor)))


@dataclass
class Case:
    """What a check builds: fun(x) -> float, the point x (float64), the analytic dfun/dx there, and words."""
    fun: object
    x: np.ndarray
    grad: np.ndarray
    checked: str                   # the functions under test
    shapes: str
    pattern: object = None         # pattern() -> bytes: the ReLU/max choices of the last fun call (None: smooth)


@dataclass
class Check:
    build: object                  # build(rng) -> Case
    h: float                       # the central differences' step
    tol: float
    source: str                    # the equation or layer it checks


def _shapes(**arrays):
    return ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())


def _linear(forward, backward, x, rng, checked, **extra):
    """A layer out = forward(x) checked through fun(x) = sum(r * out): its gradient is backward(r, cache)."""
    out, cache = forward(x)
    r = rng.standard_normal(out.shape)
    return Case(lambda z: float(np.sum(forward(z)[0] * r)), x, backward(r, cache), checked,
                _shapes(x=x, **extra, out=out))


def _recording(net):
    """Make net.forward keep its last call's ReLU masks and max-pool choices; returns pattern() -> those as bytes.

    A ReLU network is piecewise smooth: where a ReLU switches (or a max changes its winner) between x - h and
    x + h, the central difference mixes two pieces and disagrees with the exact gradient of either. Such
    coordinates are skipped, not failed: their pattern differs from the pattern at x.
    """
    last, forward = {}, net.forward

    def recorded(x, layers):
        feats, cache = forward(x, layers)
        last["caches"] = cache[0]
        return feats, cache

    def pattern():
        parts = []
        for c in last["caches"]:
            for a in (c if isinstance(c, tuple) else (c,)):   # relu: a mask; fused conv, max pool: one in a tuple
                if isinstance(a, np.ndarray) and a.dtype in (np.bool_, np.uint8):
                    parts.append(a.tobytes())
        return b"".join(parts)

    net.forward = recorded
    return pattern


@functools.lru_cache(maxsize=1)
def _vgg19():
    """The untrained VGG-19 of seed 0 (float32 weights; the Network casts them to the input's dtype)."""
    return random_weights("vgg19", 0)


def _term(term, x, checked, shapes):
    """A loss term checked as the objective runs it (terms.py's protocol): fun(x) = term.loss(term.stats(x))[0],
    its gradient term.feature_grad(ds, x)."""
    _, ds = term.loss(term.stats(x))
    return Case(lambda z: term.loss(term.stats(z))[0], x, term.feature_grad(ds, x), checked, shapes)


def _content(rng):
    f, p = rng.standard_normal((1, 4, 6, 5)), rng.standard_normal((1, 4, 6, 5))
    return _term(terms.ContentTerm("relu4_2", 1.7, p), f,
                 "terms.ContentTerm(weight 1.7): losses.content_forward, losses.content_backward", _shapes(f=f, p=p))


def _gram(rng):
    """The Gram matrix alone: G = S / n of gram_stats (gram_forward, a style target), through gram_stats_backward."""
    f = rng.standard_normal((1, 4, 6, 5))
    return _linear(losses.gram_forward, lambda dg, n: losses.gram_stats_backward(dg, n, f), f, rng,
                   "losses.gram_forward, losses.gram_stats_backward")


def _style(rng):
    f = rng.standard_normal((1, 4, 6, 5))
    a = losses.gram_forward(rng.standard_normal((1, 4, 7, 8)))[0]
    return _term(terms.GramTerm("relu1_1", 1.7, a), f,
                 "terms.GramTerm(weight 1.7): losses.gram_stats, losses.style_forward, losses.style_backward, "
                 "losses.gram_stats_backward", _shapes(f=f, A=a))


def _guided_gram(rng):
    """GramTerm with a soft guide: gram_stats(f, m) -> style_forward, style_backward -> gram_stats_backward(..., m).

    The guide is in [0.25, 1], soft but bounded away from 0: where m is 1e-2 a component of the gradient is
    1e4 times smaller and the differences' rounding (~1e-10) alone would dominate its relative error.
    """
    f = rng.standard_normal((1, 4, 6, 5))
    m = 0.25 + 0.75 * rng.random((6, 5))
    a = losses.gram_forward(rng.standard_normal((1, 4, 7, 8)))[0]
    return _term(terms.GramTerm("relu1_1", 1.7, a, mask=m), f,
                 "terms.GramTerm(weight 1.7, mask): losses.gram_stats(f, mask), losses.style_forward, "
                 "losses.style_backward, losses.gram_stats_backward(mask)", _shapes(f=f, mask=m, A=a))


def _tv(rng):
    x = rng.random((1, 3, 7, 6))
    return _term(terms.TVTerm(1.7), x, "terms.TVTerm(weight 1.7): losses.tv_forward, losses.tv_backward",
                 _shapes(x=x))


def _temporal(rng):
    x, warped = rng.random((1, 3, 7, 6)), rng.random((1, 3, 7, 6))
    c = rng.random((7, 6)) * (rng.random((7, 6)) > 0.3)          # soft weights, 0 where the flow is not trusted
    return _term(terms.TemporalTerm(1.7, warped, c), x,
                 "terms.TemporalTerm(weight 1.7): losses.temporal_forward, losses.temporal_backward",
                 _shapes(x=x, warped=warped, c=c))


def _conv(rng):
    """A 3x3, stride 1, pad 1 convolution as in VGG, 8 -> 8 channels (the "rows" GEMM way, both directions)."""
    w, b = rng.standard_normal((8, 8, 3, 3)), rng.standard_normal(8)
    return _linear(lambda z: conv.forward(z, w, b, 1, 1), conv.backward, rng.standard_normal((1, 8, 7, 6)), rng,
                   "kernels.conv.forward(stride 1, pad 1), kernels.conv.backward", w=w)


def _convweights(rng):
    """The weight gradient of a 3x3, stride 1, pad 1 convolution, 5 -> 4 channels (kernels.convgrad: one GEMM per
    tap over the flattened input rows), what training a network needs and style transfer never does."""
    x, b = rng.standard_normal((2, 5, 7, 6)), rng.standard_normal(4)
    w = rng.standard_normal((4, 5, 3, 3))
    r = rng.standard_normal(conv.forward(x, w, b, 1, 1)[0].shape)
    dw, _ = convgrad.weights(r, x, w.shape, 1, 1)
    return Case(lambda z: float(np.sum(conv.forward(x, z, b, 1, 1)[0] * r)), w, dw,
                "kernels.convgrad.weights (stride 1, pad 1)", _shapes(x=x, w=w))


def _transformer(rng):
    """The weight gradient of res3_1.w, deep inside the style network (Johnson et al. 2016) at width 0.125:
    through instance norms, ReLUs, the residual connections, the upsamplings and the bounded output."""
    from ..nn import transformer
    params = {k: v.astype(np.float64) for k, v in transformer.init_params(0.125, seed=1).items()}
    net = transformer.Transformer(params, threads=1)
    x = rng.random((1, 3, 16, 12))
    r = rng.standard_normal(x.shape)
    grads, _ = net.backward(r, net.forward(x)[1])
    w = params["res3_1.w"]
    return Case(lambda z: float(np.sum(net.forward(x)[0] * r)), w, grads["res3_1.w"],
                "nn.transformer.Transformer.backward (res3_1.w)", _shapes(x=x, w=w))


def _relu(rng):
    x = rng.standard_normal((1, 3, 7, 6))
    x[np.abs(x) < 1e-2] = 0.5                                     # the kink at 0 ten steps away or more
    return _linear(relu.forward, relu.backward, x, rng, "kernels.relu.forward, kernels.relu.backward")


def _pool(mode, rng):
    """2x2 stride-2 pooling on an odd-sized map (the last row and column are in no window). For max pooling the
    input is a shuffle of evenly spaced values: no ties and gaps far above h, so the max is differentiable."""
    shape = (1, 3, 9, 7)
    size = int(np.prod(shape))
    x = (rng.permutation(size) / size * 4.0 - 2.0).reshape(shape)
    return _linear(lambda z: pool.forward(z, 2, 2, 0, False, mode), pool.backward, x, rng,
                   f"kernels.pool.forward(2x2, stride 2, {mode}), kernels.pool.backward")


def _preprocess(rng):
    """Caffe's convention (BGR, 0..255, minus the ImageNet mean): the channel flip and the gain both show."""
    w = Weights(arch="vgg19", params={}, **CAFFE)
    return _linear(lambda z: preprocess.preprocess_forward(z, w), preprocess.preprocess_backward, rng.random((3, 5, 6)),
                   rng, "preprocess.preprocess_forward, preprocess.preprocess_backward (Caffe convention)")


def _network(rng):
    """conv1_1 .. pool1 of the untrained VGG-19 (seed 0) in float64, max pooling, gradients at relu1_1 and pool1."""
    net = Network(_vgg19(), "max")
    pattern = _recording(net)
    x = rng.standard_normal((1, 3, 12, 10))
    feats, cache = net.forward(x, ["relu1_1", "pool1"])
    r = {name: rng.standard_normal(f.shape) for name, f in feats.items()}
    fun = lambda z: float(sum(np.sum(f * r[name]) for name, f in net.forward(z, ["relu1_1", "pool1"])[0].items()))
    return Case(fun, x, net.backward(r, cache), "network.Network.forward, network.Network.backward (VGG-19 to pool1)",
                _shapes(x=x, relu1_1=feats["relu1_1"], pool1=feats["pool1"]), pattern=pattern)


def _objective(rng):
    """A whole Objective as tests/test_objective.py builds it: the paper's layers, two styles, TV."""
    net = Network(_vgg19(), "avg")
    pattern = _recording(net)
    content, styles = rng.random((3, 18, 16)), [rng.random((3, 16, 16)), rng.random((3, 20, 17))]
    layers = DEFAULT_LAYERS["vgg19"]
    obj = objective.Objective(net, content, styles, [1.0, 2.0], {n: 1.0 for n in layers["content"]},
                              {n: 1.0 / len(layers["style"]) for n in layers["style"]},
                              content_weight=1.0, style_weight=10.0, tv_weight=0.5)
    img = rng.random((3, 18, 16))
    _, grad, _ = obj.evaluate(img)
    return Case(lambda z: obj.evaluate(z, with_grad=False)[0], img, grad,
                "objective.Objective.evaluate (content relu4_2, style relu1_1..relu5_1, TV; VGG-19, avg pooling)",
                _shapes(img=img, content=content, style1=styles[0], style2=styles[1]), pattern=pattern)


# Steps: a central difference is exact for a polynomial of degree 2 or less (every loss and layer here but the
# style losses, the network and the objective), up to rounding of order 1e-16 |f| / h: there a large step, 1e-3,
# keeps the rounding far below the tolerance even for the smallest components. The style losses are of degree 4
# in F: the difference's own error is h^2/6 times a third derivative, so they take 1e-5, with a 1e-5 tolerance.
# The network and the objective are piecewise smooth (ReLU, max): coordinates where a switch falls within the
# step are skipped (_recording). The objective's loss sums many terms, so its rounding is larger: 1e-5 left
# components 1e-4 times smaller than the largest with relative errors of 4e-6; 1e-4 keeps them below 1e-7.
CHECKS = {
    "content": Check(_content, 1e-3, 1e-6, "Gatys et al. 2015, eqs. (1)-(2)"),
    "gram": Check(_gram, 1e-3, 1e-6, "Gatys et al. 2015, eq. (3)"),
    "style": Check(_style, 1e-5, 1e-5, "Gatys et al. 2015, eqs. (4) and (6)"),
    "guided-gram": Check(_guided_gram, 1e-5, 1e-5, "Gatys et al. 2017, guided Gram matrix"),
    "tv": Check(_tv, 1e-3, 1e-6, "total variation (Mahendran & Vedaldi 2015, beta = 2)"),
    "temporal": Check(_temporal, 1e-3, 1e-6, "Ruder et al. 2016, eq. (7)"),
    "conv": Check(_conv, 1e-3, 1e-6, "convolution layer"),
    "convweights": Check(_convweights, 1e-3, 1e-6, "convolution layer, weight gradient"),
    "transformer": Check(_transformer, 1e-5, 1e-5, "the style network of Johnson et al. 2016, width 0.125"),
    "relu": Check(_relu, 1e-3, 1e-6, "ReLU layer"),
    "maxpool": Check(functools.partial(_pool, "max"), 1e-3, 1e-6, "max-pooling layer"),
    "avgpool": Check(functools.partial(_pool, "avg"), 1e-3, 1e-6, "average-pooling layer"),
    "preprocess": Check(_preprocess, 1e-3, 1e-6, "input preprocessing"),
    "network": Check(_network, 1e-5, 1e-6, "conv1_1 .. pool1 of VGG-19 in float64"),
    "objective": Check(_objective, 1e-4, 1e-6, "Gatys et al. 2015, eq. (7): the whole objective"),
}


@dataclass
class Result:
    name: str
    source: str
    checked: str
    shapes: str
    sampled: int
    skipped: int                  # coordinates where a ReLU or max switched within +-h
    size: int
    h: float
    error: float
    tol: float

    @property
    def passed(self):
        return bool(self.error < self.tol)            # a NaN error fails

    def report(self):
        return "\n".join([
            f"gradcheck {self.name}: {self.source}",
            f"  checked    {self.checked}",
            f"  shapes     {self.shapes}",
            f"  sampled    {self.sampled} of {self.size} coordinates; central differences, h = {self.h:g}, float64"
            + (f"; {self.skipped} skipped (a ReLU or max switched within +-h)" if self.skipped else ""),
            f"  max relative error {self.error:.2e} (tolerance {self.tol:g}): {'PASS' if self.passed else 'FAIL'}"])


def differences(case, h, rng):
    """Central differences (f(x + h e_i) - f(x - h e_i)) / 2h, as tests/conftest.py's fd_grad, at SAMPLES random
    coordinates i; with case.pattern, only at those where no ReLU or max switches within +-h (see _recording).
    Returns (indices, differences, skipped)."""
    base = case.pattern() if case.pattern else None     # build() evaluated fun's network at x last
    flat = case.x.reshape(-1)
    idx, num, skipped = [], [], 0
    for i in rng.permutation(flat.size)[:10 * SAMPLES]:
        old, values, smooth = flat[i], [], True
        for step in (h, -h):
            flat[i] = old + step
            values.append(case.fun(case.x))
            smooth = smooth and (base is None or case.pattern() == base)
        flat[i] = old
        if not smooth:
            skipped += 1
            continue
        idx.append(i)
        num.append((values[0] - values[1]) / (2 * h))
        if len(idx) == SAMPLES:
            break
    return np.array(idx, dtype=np.int64), np.array(num), skipped


def check(name, seed=0):
    """Run check `name` with random inputs from `seed`: a Result."""
    if name not in CHECKS:
        raise KeyError(f"unknown check {name!r}; the checks are: {', '.join(CHECKS)}")
    spec = CHECKS[name]
    rng = np.random.default_rng(seed)
    case = spec.build(rng)
    idx, num, skipped = differences(case, spec.h, rng)
    ana = np.asarray(case.grad, dtype=np.float64).reshape(-1)[idx]
    err = rel_error(num, ana) if len(idx) else float("nan")
    return Result(name, spec.source, case.checked, case.shapes, len(idx), skipped, case.x.size, spec.h, err,
                  spec.tol)


def run(name, seed=0):
    """(max_rel_error, tol, description) of check `name`; it passes when max_rel_error < tol."""
    r = check(name, seed)
    skipped = f" ({r.skipped} more skipped: a ReLU or max switched)" if r.skipped else ""
    return r.error, r.tol, f"{r.checked}; {r.shapes}; {r.sampled} of {r.size} coordinates{skipped}, h = {r.h:g}"


def main(argv=None):
    """The command line: exit status 0 when every check asked for passes, 1 otherwise (and for an unknown name)."""
    ap = argparse.ArgumentParser(prog="python -m vggnumpy.learn.gradcheck", description=__doc__.splitlines()[0])
    ap.add_argument("name", nargs="?", help="a check (see --list), or 'all'")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random inputs and coordinates (default 0)")
    ap.add_argument("--list", action="store_true", help="list the checks and exit")
    args = ap.parse_args(argv)
    if args.list:
        for name, spec in CHECKS.items():
            print(f"{name:12s} {spec.source}")
        return 0
    if args.name is None:
        stderr("gradcheck: name a check, 'all', or --list")
        return 1
    if args.name != "all" and args.name not in CHECKS:
        stderr(f"gradcheck: unknown check {args.name!r}; the checks are: {', '.join(CHECKS)} (or 'all')")
        return 1
    names = list(CHECKS) if args.name == "all" else [args.name]
    results = []
    for n in names:
        results.append(check(n, args.seed))
        print(results[-1].report(), flush=True)
    if len(results) > 1:
        failed = [r.name for r in results if not r.passed]
        print(f"{len(results) - len(failed)} of {len(results)} checks passed" + (f"; failed: {', '.join(failed)}"
                                                                                 if failed else ""))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
