"""The style network (nn/transformer.py) and its weight gradients: convgrad against its loop reference, float64
finite differences of every parameter tensor and the input through the whole network, the whole network's output
and every gradient against PyTorch on the same weights, the inference pass and exact tiling (feedforward/apply)."""
import numpy as np
import pytest

from conftest import fd_grad, rel_error
from vggnumpy.feedforward import apply
from vggnumpy.nn import transformer as T
from vggnumpy.nn.kernels import conv, convgrad

REF_RTOL = 1e-5          # float32 fast dW, db against the loop reference: relative to the largest value
FD_TOL = 1e-5            # float64 finite differences (h = 1e-6) through the whole network: rel_error below this
TORCH_RTOL = 2e-5        # float32 against PyTorch: each tensor relative to the largest gradient of all
TILE_ATOL = 1e-5         # tiled against whole, float32 outputs in [-0.1, 1.1]
CONV_CASES = [(2, 3, 7, 9, 4, 3, 1, 1), (2, 3, 8, 9, 4, 3, 2, 1), (1, 2, 6, 6, 3, 5, 1, 0), (1, 3, 12, 11, 2, 9, 1, 4),
              (2, 4, 9, 8, 3, 3, 2, 0), (1, 16, 70, 20, 3, 9, 1, 0)]        # (N, C, H, W, O, K, stride, pad)


def perturbed(width, seed, dtype=np.float32):
    """Parameters with norm scales and shifts away from 1 and 0, so that every gradient is exercised."""
    p = T.init_params(width, seed)
    rng = np.random.default_rng(seed + 1)
    for k in p:
        if not k.endswith(".w"):
            p[k] = p[k] + rng.standard_normal(p[k].shape).astype(np.float32) * 0.3
    return {k: v.astype(dtype) for k, v in p.items()}


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_weight_gradient_matches_reference(case, rng):
    n, c, h, w, o, k, s, pad = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    kshape = (o, c, k, k)
    out, _ = conv.forward(x, rng.standard_normal(kshape).astype(np.float32), np.zeros(o, np.float32), s, pad)
    d = rng.standard_normal(out.shape).astype(np.float32)
    dw, db = convgrad.weights(d, x, kshape, s, pad)
    rw, rb = convgrad.weights_ref(d, x, kshape, s, pad)
    assert dw.shape == kshape and dw.dtype == np.float32
    assert np.abs(dw - rw).max() <= REF_RTOL * np.abs(rw).max()
    assert np.abs(db - rb).max() <= REF_RTOL * np.abs(rb).max()


def test_conv_weight_gradient_finite_differences(rng):
    x = rng.standard_normal((2, 3, 9, 8))
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    r = rng.standard_normal(conv.forward_ref(x, w, b, 2, 1)[0].shape)
    f = lambda w_: float(np.sum(conv.forward_ref(x, w_, b, 2, 1)[0] * r))
    dw, db = convgrad.weights(r, x, w.shape, 2, 1)
    idx = rng.choice(w.size, 12, replace=False)
    assert rel_error(fd_grad(f, w, idx), dw.reshape(-1)[idx]) < 1e-6
    assert rel_error(db, r.sum(axis=(0, 2, 3))) < 1e-12


def test_layout_and_sizes():
    assert T.channels(1) == (32, 64, 128) and T.channels(0.5) == (16, 32, 64)
    assert sum(np.prod(s) for s in T.param_shapes(1).values()) == 1_677_635       # Johnson's "about 1.68 M"
    names = [u.name for u in T.layout(1)]
    assert names[:3] == ["conv1", "down1", "down2"] and names[-3:] == ["up1", "up2", "out"]
    assert sum(n.startswith("res") for n in names) == 2 * T.RES_BLOCKS
    net = T.Transformer(T.init_params(0.25))
    y, _ = net.forward(np.random.default_rng(0).random((2, 3, 24, 32), dtype=np.float32))
    assert y.shape == (2, 3, 24, 32) and y.min() >= 0.5 - T.OUT_GAIN and y.max() <= 0.5 + T.OUT_GAIN


def test_whole_network_finite_differences(rng):
    """Every parameter tensor (4 sampled entries each) and the input, float64, through all 16 units and the tanh."""
    p = perturbed(0.125, 0)
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    x = rng.random((2, 3, 16, 20))
    r = rng.standard_normal((2, 3, 16, 20))
    net = T.Transformer(p64, threads=1)
    y, cache = net.forward(x)
    grads, dx = net.backward(r, cache, input_grad=True)
    loss = lambda: float(np.sum(net.forward(x)[0] * r))
    for name, arr in p64.items():
        idx = rng.choice(arr.size, min(4, arr.size), replace=False)
        num = fd_grad(lambda a: loss(), arr, idx)
        if np.abs(num).max() < 1e-8:               # resN_2.beta: exactly zero (every path ends in a norm)
            assert np.abs(grads[name]).max() < 1e-8, name
            continue
        assert rel_error(num, grads[name].reshape(-1)[idx]) < FD_TOL, name
    idx = rng.choice(x.size, 8, replace=False)
    assert rel_error(fd_grad(lambda a: loss(), x, idx), dx.reshape(-1)[idx]) < FD_TOL


@pytest.mark.slow
def test_whole_network_matches_torch(rng):
    torch = pytest.importorskip("torch")
    import torchtransformer
    p = perturbed(0.25, 2)
    net = T.Transformer(p)
    tnet = torchtransformer.build(p, requires_grad=True)
    x = rng.random((2, 3, 32, 40), dtype=np.float32)
    r = rng.standard_normal((2, 3, 32, 40)).astype(np.float32)
    y, cache = net.forward(x)
    grads, dx = net.backward(r, cache, input_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    ty = tnet(tx)
    (ty * torch.tensor(r)).sum().backward()
    assert np.abs(y - ty.detach().numpy()).max() <= TORCH_RTOL
    assert np.abs(dx - tx.grad.numpy()).max() <= TORCH_RTOL * np.abs(dx).max()
    scale = max(np.abs(g).max() for g in grads.values())
    for name in p:
        tg = torchtransformer.named_parameter(tnet, name).grad.numpy()
        assert np.abs(grads[name] - tg).max() <= TORCH_RTOL * scale, name


def test_bad_parameters_and_inputs_are_refused():
    p = T.init_params(0.25)
    with pytest.raises(ValueError, match="do not match the layout"):
        T.Transformer({k: v for k, v in p.items() if k != "res3_1.w"})
    bad = dict(p, **{"up1.w": p["up1.w"][:, :-1]})
    with pytest.raises(ValueError, match="up1.w"):
        T.Transformer(bad)
    with pytest.raises(ValueError, match="multiples of 4"):
        T.Transformer(p).forward(np.zeros((1, 3, 30, 32), np.float32))
    with pytest.raises(ValueError, match="width"):
        T.channels(0)


def test_inference_pass_equals_training_forward(rng):
    net = T.Transformer(perturbed(0.25, 4))
    x = rng.random((1, 3, 36, 44), dtype=np.float32)
    y, _ = net.forward(x)
    assert np.abs(apply.forward(net, x.copy()) - y).max() <= 1e-6


@pytest.mark.slow
def test_tiled_equals_whole(rng, core=48):
    """Instance norm makes every output depend on the whole image: the statistics passes must make it exact."""
    net = T.Transformer(perturbed(0.25, 5))
    x = rng.random((1, 3, 72, 100), dtype=np.float32)
    whole = apply.forward(net, x.copy())
    tiled = apply.tiled(net, x, core)
    assert len(apply.tiles(72, 100, core)) >= 4
    assert np.abs(tiled - whole).max() <= TILE_ATOL


@pytest.mark.slow
def test_tiling_fails_with_a_halo_smaller_than_the_receptive_field(rng, monkeypatch):
    """The check can fail: a halo of 8 px instead of the receptive radius changes the cores' edges."""
    net = T.Transformer(perturbed(0.25, 5))
    x = rng.random((1, 3, 72, 100), dtype=np.float32)
    whole = apply.forward(net, x.copy())
    monkeypatch.setattr(apply, "HALO", 8)
    assert np.abs(apply.tiled(net, x, 48) - whole).max() > 100 * TILE_ATOL


def test_receptive_radius_bounds_the_dependence(rng):
    """A pixel changed farther than the radius away does not change an output pixel (instance norm aside): the
    bound the halo relies on (an upper bound: the upsamplings' share of it is counted generously)."""
    r = T.receptive_radius(0.25)
    net = T.Transformer(perturbed(0.25, 6))
    net.engine.way = "rows"        # direct sums: the FFT's 9x9 layers mix a whole 64 px tile by rounding (~1e-7)
    x = rng.random((1, 3, 160, 160), dtype=np.float32)
    stats = {}
    for u in net.units:                          # freeze every norm's statistics, so only locality remains
        if u.norm:
            f = apply.forward(net, x.copy(), stats, collect=u.name)
            mean = f.mean(axis=(2, 3), keepdims=True)
            stats[u.name] = (mean, 1 / np.sqrt(((f - mean) ** 2).mean(axis=(2, 3), keepdims=True) + 1e-5))
    y = apply.forward(net, x.copy(), stats)
    x2 = x.copy()
    x2[:, :, 80 + r + 1:, :] = 0.5                 # everything beyond the radius below row 80
    y2 = apply.forward(net, x2, stats)
    assert np.abs(y2[:, :, :80] - y[:, :, :80]).max() == 0
    x3 = x.copy()
    x3[:, :, 80 + 16:, :] = 0.5                    # well within the radius: row 79 changes
    assert np.abs(apply.forward(net, x3, stats)[:, :, :80] - y[:, :, :80]).max() > 0
