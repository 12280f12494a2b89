"""Exact tiled evaluation: tile by tile, the objective's value and gradient equal the untiled ones."""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_tiled_equals_untiled, shared_image
from vggnumpy import config
from vggnumpy.nn import arch, arch as archmod
from vggnumpy.style import terms, tiling
from vggnumpy.nn.network import Network
from vggnumpy.style.objective import Objective
from vggnumpy.weights.file import random_weights


def test_receptive_fields_and_halos():
    assert arch.receptive("vgg19", "relu5_1") == (16, -70, 156)        # pixels [16k - 70, 16k + 85]
    assert tiling.halo("vgg19", ["relu1_1", "relu4_2", "relu5_1"]) == (80, 16)
    assert tiling.halo("vgg16", ["relu1_1", "relu4_2", "relu5_1"]) == (64, 16)
    assert arch.receptive("nin", "relu0") == (4, 0, 11)                 # conv1: 11x11, stride 4, no pad


def test_the_tiles_cover_the_image_once():
    tiles = tiling.plan(150, 170, 48, "vgg19", ["relu5_1"])
    cover = np.zeros((150, 170), int)
    for t in tiles:
        y0, y1, x0, x1 = t.core
        cover[y0:y1, x0:x1] += 1
        assert y0 % 16 == 0 and x0 % 16 == 0 and t.crop[0] % 16 == 0 and t.crop[2] % 16 == 0
    assert (cover == 1).all()


def _objective(arch, dtype, size, rng, weights=(1.0, 5.0, 0.5), styles=2):
    layers = archmod.DEFAULT_LAYERS[arch]
    net = Network(random_weights(arch, 0), "avg" if arch != "nin" else "max")
    h, w = size
    content = rng.random((3, h, w)).astype(dtype)
    style_imgs = [rng.random((3, h - 20, w + 10)).astype(dtype) ** (k + 1) for k in range(styles)]
    obj = Objective(net, content, style_imgs, [1.0, 3.0][:styles], {layer: 1.0 for layer in layers["content"]},
                    {layer: 1.0 / len(layers["style"]) for layer in layers["style"]}, *weights)
    return obj, rng.random((3, h, w)).astype(dtype), layers["content"] + layers["style"]


@pytest.mark.parametrize("arch, size, tile", [("vgg19", (150, 170), 48), ("vgg16", (120, 100), 32),
                                              ("nin", (230, 200), 64)])
@pytest.mark.slow
def test_tiled_equals_untiled_in_float64(arch, size, tile, rng):
    """Value and gradient to 1e-10 relative, with two blended styles, content, TV and a video's temporal term."""
    obj, x, layers = _objective(arch, np.float64, size, rng)
    obj.terms.append(terms.TemporalTerm(30.0, rng.random((1, 3) + size), (rng.random(size) > 0.2).astype(float)))
    assert_tiled_equals_untiled(obj, x, tiling.plan(*size, tile, arch, layers))


@pytest.mark.slow
def test_tiled_equals_untiled_in_float32_and_through_the_objective(rng):
    """float32: loss to 1e-5 relative, gradient to 1e-4 of its largest value (summation order only)."""
    obj, x, layers = _objective("vgg19", np.float32, (100, 120), rng)
    loss, grad, _ = obj.evaluate(x)
    obj.tiles = tiling.plan(100, 120, 32, "vgg19", layers)
    tl, tg, _ = obj.evaluate(x)
    assert tl == pytest.approx(loss, rel=1e-5)
    assert np.abs(tg - grad).max() <= 1e-4 * np.abs(grad).max()
    assert obj.evaluate(x, with_grad=False)[0] == pytest.approx(tl, rel=1e-6)


@pytest.mark.slow
def test_content_only_needs_no_first_pass(rng):
    obj, x, layers = _objective("vgg19", np.float64, (90, 80), rng, weights=(1.0, 0.0, 0.0), styles=1)
    loss, grad, _ = obj.evaluate(x)
    tl, tg, _ = tiling.evaluate(obj, x, tiling.plan(90, 80, 32, "vgg19", layers))
    assert abs(tl - loss) <= 1e-10 * loss and np.abs(tg - grad).max() <= 1e-10 * np.abs(grad).max()


@dataclasses.dataclass(eq=False)
class MeanTerm(terms.Term):
    """A term written here, not in the package: weight * sum over channels of (mean over positions of f - t)^2.
    Its statistics (the channel sums and the count) add over tiles."""
    layer: str
    weight: float
    target: object                              # (1, C)
    name: str = "mean"
    additive = True

    def stats(self, f):
        return f.sum(axis=(2, 3)), f.shape[2] * f.shape[3]

    def loss(self, stats):
        s, n = stats
        diff = s / n - self.target
        return self.weight * float(np.sum(diff * diff)), (2 * self.weight * diff, n)

    def feature_grad(self, dstats, f):
        dmean, n = dstats
        return np.broadcast_to((dmean / n)[:, :, None, None], f.shape).copy()

    def crop(self, index):
        return self


@dataclasses.dataclass(eq=False)
class EnergyTerm(terms.Term):
    """Another: weight * sum over positions of m_p |f_p|^2, m (h, w) a weight per unit; its loss adds over tiles."""
    layer: str
    weight: float
    m: object
    name: str = "energy"

    def loss(self, f):
        return self.weight * float(np.sum(self.m * f * f)), 2 * self.weight * self.m * f

    def feature_grad(self, dstats, f):
        return dstats

    def crop(self, index):
        return EnergyTerm(self.layer, self.weight, self.m[index[2:]], self.name)


@pytest.mark.slow
def test_a_new_term_is_one_class(rng):
    """Two terms written above through terms.Term's protocol, one additive and one not, tile exactly with no
    change to tiling.py or objective.py: value, gradient and parts to 1e-10 (float64) of the untiled ones."""
    obj, x, _ = _objective("vgg19", np.float64, (100, 90), rng, weights=(1.0, 0.0, 0.0), styles=1)
    shapes = archmod.feature_shapes("vgg19", 100, 90)
    obj.terms = [MeanTerm("relu3_1", 3.0, rng.standard_normal((1, shapes["relu3_1"][0]))),
                 EnergyTerm("relu2_1", 0.5, rng.random(shapes["relu2_1"][1:])), terms.TVTerm(0.5)]
    assert_tiled_equals_untiled(obj, x, tiling.plan(100, 90, 32, "vgg19", ["relu2_1", "relu3_1"]))


@pytest.mark.slow
def test_a_halo_short_of_the_receptive_field_is_not_exact(rng):
    """With a 48 px halo (VGG-19 needs 80) the result moves: the test above can fail."""
    obj, x, layers = _objective("vgg19", np.float64, (150, 170), rng)
    loss, grad, _ = obj.evaluate(x)
    short = [dataclasses.replace(t, crop=(max(0, t.core[0] - 48), min(150, t.core[1] + 48),
                                          max(0, t.core[2] - 48), min(170, t.core[3] + 48)))
             for t in tiling.plan(150, 170, 48, "vgg19", layers)]
    tl, tg, _ = tiling.evaluate(obj, x, short)
    assert abs(tl - loss) > 1e-8 * abs(loss) or np.abs(tg - grad).max() > 1e-8 * np.abs(grad).max()


@pytest.mark.slow
def test_targets_made_tile_by_tile_equal_the_whole_images(rng):
    """Objective(..., tile=48): content features and style Grams tiled, evaluation tiled: all to 1e-10 (float64)."""
    arch, layers = "vgg19", archmod.DEFAULT_LAYERS["vgg19"]
    net = Network(random_weights(arch, 0), "avg")
    content, x = rng.random((3, 120, 140)), rng.random((3, 120, 140))
    styles = [rng.random((3, 130, 100)), rng.random((3, 90, 110)) ** 2]
    args = (net, content, styles, [1.0, 2.0], {"relu4_2": 1.0}, {name: 0.2 for name in layers["style"]}, 1.0, 5.0, 0.5)
    whole, tiled = Objective(*args), Objective(*args, tile=48)
    assert whole.tiles is None and len(tiled.tiles) == 9
    for a, b in zip(whole.terms, tiled.terms):
        if hasattr(a, "target"):
            assert np.abs(a.target - b.target).max() <= 1e-12 * np.abs(a.target).max()
    (l1, g1, _), (l2, g2, _) = whole.evaluate(x), tiled.evaluate(x)
    assert abs(l1 - l2) <= 1e-10 * l1 and np.abs(g1 - g2).max() <= 1e-10 * np.abs(g1).max()


def test_the_memory_plan_fits_its_budget_and_prefers_the_whole_image():
    from vggnumpy.run import memory
    halo = tiling.halo("vgg19", ["relu1_1", "relu4_2", "relu5_1"])
    whole = memory.plan("vgg19", "relu5_1", (512, 512), 512 * 64 * 64, "lbfgs", 20, 4 << 30, halo)
    assert whole.tile is None and whole.optimizer == "lbfgs" and whole.memory == 20
    for side, budget in [(2048, 2 << 30), (4096, 20 << 30), (8192, 20 << 30)]:
        p = memory.plan("vgg19", "relu5_1", (side, side), 512 * (side // 8) ** 2, "lbfgs", 20, budget, halo)
        assert p.tile is not None and p.tile % 16 == 0 and p.peak <= budget and p.pixels_run <= 1.6, p
    with pytest.raises(ValueError, match="tiles of 16 px"):
        memory.plan("vgg19", "relu5_1", (192, 256), 512 * 24 * 32, "lbfgs", 20, 300 << 20, halo)
    with pytest.raises(ValueError, match="needs at least"):
        memory.plan("vgg19", "relu5_1", (256, 256), 512 * 32 * 32, "lbfgs", 20, 260 << 20, halo)
    assert config.parse_bytes("4G") == 4 << 30 and config.parse_bytes("1500M") == 1500 << 20


PEAK_SCRIPT = """
import sys
from vggnumpy.cli.main import main
code = main(sys.argv[1:])
with open('/proc/self/status') as f:
    peak = [line for line in f if line.startswith('VmHWM:')][0].split()[1]
print(f'peak {int(peak) * 1024}', file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_a_run_stays_within_a_tiny_budget(tmp_path):
    """480x360 px with --max-memory 500M: the whole image would need about 730 MiB, so the plan tiles it; the
    process's own peak resident memory, libraries and weights included, stays within the budget (467 MiB when
    measured) and the image is written."""
    out = tmp_path / "o.png"
    p = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, "style", shared_image("content", "golden_gate.jpg"),
                        shared_image("style", "starry_night.jpg"), "-o", str(out), "-s", "480", "--scales", "1",
                        "-n", "1", "--no-progress", "--max-memory", "500M"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "tiles of" in p.stderr and out.exists()
    peak = int(p.stderr.split("peak ")[-1].split()[0])
    assert peak <= 500 << 20, f"peak {peak / 2 ** 20:.0f} MiB"
