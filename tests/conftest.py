"""Shared test fixtures: paths to ../shared/images, a seeded RNG, a tiny float64-ready network."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "images")
# benchmarks/ holds the one PyTorch VGG builder (torchvgg.py) the tests share with the benchmarks. Appended, so
# it never shadows an installed module.
if os.path.join(ROOT, "benchmarks") not in sys.path:
    sys.path.append(os.path.join(ROOT, "benchmarks"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """Tests never touch the network or the user's cache."""
    monkeypatch.setenv("VGGNUMPY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VGGNUMPY_OFFLINE", "1")


@pytest.fixture(scope="session")
def wfile(tmp_path_factory):
    """An untrained VGG-19 weights file (seed 0), written once for the tests that pass --weights."""
    from vggnumpy.weights.file import random_weights, save
    path = str(tmp_path_factory.mktemp("w") / "w.h5")
    save(random_weights("vgg19", 0), path)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def shared_image(kind, name):
    path = os.path.join(SHARED, kind, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not present (../shared/images is beside the project root)")
    return path


def fd_grad(f, x, idx, h=1e-6):
    """Central finite differences of scalar f at the flat indices idx of float64 array x."""
    out = []
    flat = x.reshape(-1)
    for i in idx:
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        out.append((fp - fm) / (2 * h))
    return np.array(out)


def rel_error(num, ana):
    """Largest elementwise relative error |num - ana| / max(|num| + |ana|, floor)."""
    num, ana = np.asarray(num, dtype=np.float64), np.asarray(ana, dtype=np.float64)
    floor = 1e-7 * max(np.abs(num).max(), np.abs(ana).max(), 1e-30)
    return float(np.max(np.abs(num - ana) / np.maximum(np.abs(num) + np.abs(ana), floor)))


def assert_tiled_equals_untiled(obj, x, tiles):
    """tiling.evaluate against obj.evaluate (float64): loss and gradient to 1e-10 relative, every term's part."""
    from vggnumpy.style import tiling
    loss, grad, parts = obj.evaluate(x)
    assert len(tiles) >= 4
    tl, tg, tp = tiling.evaluate(obj, x, tiles)
    assert abs(tl - loss) <= 1e-10 * abs(loss)
    assert np.abs(tg - grad).max() <= 1e-10 * np.abs(grad).max()
    for name in parts:
        assert tp[name] == pytest.approx(parts[name], rel=1e-10, abs=1e-14)
