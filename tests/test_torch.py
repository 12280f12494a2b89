"""VGG-19 features and input gradient against PyTorch on the same random weights (skipped without torch)."""
import numpy as np
import pytest

from vggnumpy.nn.network import Network
from vggnumpy.weights.file import random_weights

torch = pytest.importorskip("torch")
from torchvgg import trunk  # noqa: E402  (benchmarks/torchvgg.py, the builder the benchmarks use)

pytestmark = pytest.mark.slow


def torch_vgg(weights, pooling, upto):
    """The same layer table built from torch.nn modules, sharing our weights."""
    return torch.nn.Sequential(*trunk(weights, upto, pooling)[1])


@pytest.mark.parametrize("path", ["default", "winograd", "columns"])
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_relu5_1_features_and_input_gradient_match_pytorch(pooling, path, rng):
    """float32 both sides; relative error (max abs difference / max abs value) under 1e-4, with the default
    choice of convolution routine per layer and with Winograd F(4x4, 3x3) or the column block forced everywhere.

    With a routine forced on all 16 layers the float32 input gradient can differ by a few percent where a ReLU or
    max-pool decision near a tie goes the other way in float32 rounding (ours and torch's both differ from float64
    there), so for those the gradient is compared in float64 on both sides, to 1e-10: the same sums, exactly."""
    torch.set_num_threads(2)
    w = random_weights("vgg19", seed=7)
    net = Network(w, pooling, way=None if path == "default" else path)
    x = rng.standard_normal((1, 3, 64, 80)).astype(np.float32)
    feats, cache = net.forward(x, ["relu5_1"])
    r = rng.standard_normal(feats["relu5_1"].shape).astype(np.float32)
    dx = net.backward({"relu5_1": r}, cache)

    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch_vgg(w, pooling, "relu5_1")(tx)
    (ty * torch.from_numpy(r)).sum().backward()
    ty = ty.detach().numpy()
    tdx = tx.grad.numpy()
    rel = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())
    assert feats["relu5_1"].shape == ty.shape
    assert rel(feats["relu5_1"], ty) < 1e-4
    if path == "default":
        assert rel(dx, tdx) < 1e-4
        return
    x64, r64 = x.astype(np.float64), r.astype(np.float64)
    feats64, cache64 = net.forward(x64, ["relu5_1"])
    dx64 = net.backward({"relu5_1": r64}, cache64)
    tx64 = torch.from_numpy(x64).requires_grad_(True)
    ty64 = torch_vgg(w, pooling, "relu5_1").double()(tx64)
    (ty64 * torch.from_numpy(r64)).sum().backward()
    assert rel(feats64["relu5_1"], ty64.detach().numpy()) < 1e-10
    assert rel(dx64, tx64.grad.numpy()) < 1e-10


def test_the_benchmarks_pytorch_objective_matches_ours(rng):
    """benchmarks/common.torch_objective (the PyTorch peer every benchmark times) computes our objective's loss and
    gradient from its terms: content, blended Gram styles, TV; float32, relative 1e-4."""
    import common
    from vggnumpy.style.objective import Objective
    w = random_weights("vgg19", seed=0)
    content, s1, s2 = (rng.uniform(0, 1, (3, 48, 40)).astype(np.float32) for _ in range(3))
    obj = Objective(Network(w, "avg"), content, [s1, s2], [0.3, 0.7], {"relu4_2": 1.0},
                    {"relu1_1": 0.5, "relu3_1": 0.25, "relu5_1": 0.25}, 1.0, 5.0, 0.5)
    x = np.clip(content + 0.1 * rng.standard_normal(content.shape), 0, 1).astype(np.float32)
    loss, grad, _ = obj.evaluate(x.copy())
    tl, tg = common.torch_objective(obj, threads=2)(x)
    assert abs(tl - loss) <= 1e-4 * loss
    assert float(np.abs(tg - grad).max() / np.abs(grad).max()) <= 1e-4
