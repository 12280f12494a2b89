"""A model of the memory a run needs (the network's features and the optimiser's history), and what the machine has.

Calibrated on one VGG-19 evaluation to relu5_1 (benchmarks/README.md, bench_eval.py peaks: 336, 584, 1579 and
5771 MiB at 256 to 2048 px): the peak is about FEATURE_SHARE of the bytes of every layer's float32 output (a ReLU runs
in place, so a conv and its ReLU share one array) plus BASE. scipy's L-BFGS-B keeps (2m + 5) float64 values per
pixel and channel, and SCIPY_EXTRA bytes more; the device L-BFGS 2m + DEVICE_VECTORS float32; Adam 6 float32.
"""
from dataclasses import dataclass

from ..nn import arch as archmod
from ..nn.backend import proc_bytes

FEATURE_SHARE = 0.57
BASE = 250 << 20
CALIBRATION_RESIDENT = 115 << 20   # resident before the calibration's targets: interpreter, NumPy, VGG-19's weights
# Bytes per value that scipy 1.17's L-BFGS-B and our float64 boundary (optim/scipy_lbfgs.py) hold beyond the (2m + 5)
# float64 history: measured 475 - 200 (scipy alone) and 550 - 200 (through optim.steps) bytes per value at n = 6e6,
# m = 10, and 488 - 120 at n = 3e6, m = 5, on an ill-conditioned quadratic (tests/test_optim.py measures it); less the
# 16 bytes whole_image_bytes counts. A 4096 px run planned without it was killed by the OOM killer at 23.3 GiB.
SCIPY_EXTRA = 400          # the measurements and a 10% margin (resident memory varies by a few percent run to run)
# The device L-BFGS holds 2m float32 history vectors and DEVICE_VECTORS more (x, g, the direction, the trial point
# and its gradient, temporaries): measured 133 bytes per value at m = 10 and 92 to 93 at m = 5 (with the test
# function's own temporaries).
DEVICE_VECTORS = 11       # likewise, with a margin


def features_bytes(arch, height, width, deepest):
    """Bytes of the float32 outputs of every layer up to `deepest`, for one image of height x width."""
    names = archmod.layer_names(arch)
    last = names.index(deepest)
    shapes = archmod.feature_shapes(arch, height, width)
    return 4 * sum(c * h * w for n, (c, h, w) in shapes.items() if names.index(n) <= last)


def optimiser_bytes(optimizer, pixels, memory):
    """Bytes the optimiser keeps for an image of `pixels` RGB pixels."""
    n = 3 * pixels
    if optimizer == "lbfgs":
        return (2 * memory + 5) * n * 8 + SCIPY_EXTRA * n
    if optimizer == "lbfgs-device":
        return (2 * memory + DEVICE_VECTORS) * n * 4
    return 6 * n * 4


def network_bytes(arch, height, width, deepest):
    """Peak bytes of one evaluation (forward to `deepest` and backward) of a height x width image or crop."""
    return int(FEATURE_SHARE * features_bytes(arch, height, width, deepest)) + BASE


def estimate(arch, height, width, deepest, optimizer, memory):
    """(total, network, optimiser) bytes of one untiled run at its largest scale."""
    net = network_bytes(arch, height, width, deepest)
    opt = optimiser_bytes(optimizer, height * width, memory)
    return net + opt, net, opt


def resident():
    """Bytes this process holds now (VmRSS), or 0 where the system does not say."""
    return proc_bytes("/proc/self/status", "VmRSS") or 0


@dataclass(frozen=True)
class Plan:
    """How a run fits in its budget: tile size (None: whole image), halo, tile count, optimiser, expected peak."""
    tile: object
    halo: int
    tiles: int
    optimizer: str
    memory: int            # the L-BFGS history length
    peak: int
    history: int
    pixels_run: float      # pixels a tiled evaluation runs through the network, per image pixel


def whole_image_bytes(pixels, content_elems):
    """Arrays kept at the whole image's size besides the optimiser: image, gradient, their copies, content target."""
    return 3 * pixels * 4 * 4 + content_elems * 4


def _crop(side, tile, halo):
    return min(side, tile + 2 * halo)


def _tile_pixels_run(h, w, tile, halo):
    total = 0
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            total += (min(h, y + tile + halo) - max(0, y - halo)) * (min(w, x + tile + halo) - max(0, x - halo))
    return total / (h * w)


def _fit(arch, deepest, shape, fixed, history, budget, halo, align):
    """(tile or None, peak, pixels run per pixel) of the largest tile that fits, or None when none does."""
    h, w = shape
    net = lambda ch, cw: network_bytes(arch, ch, cw, deepest)
    if fixed + history + net(h, w) <= budget:
        return None, fixed + history + net(h, w), 1.0
    for k in range(max(h, w) // align, 0, -1):
        t = k * align
        peak = fixed + history + net(_crop(h, t, halo), _crop(w, t, halo))
        if peak <= budget:
            return t, peak, _tile_pixels_run(h, w, t, halo)
    return None


MAX_PIXELS_RUN = 1.6       # a plan that runs more pixels than this per image pixel tries a smaller history first
MAX_TILED_COST = 4.0       # and none that runs more than this is taken: the budget is too small to be worth it


def plan(arch, deepest, shape, content_elems, optimizer, memory, budget, halo_align, host_lbfgs=False, held=0):
    """How a run fits in `budget` bytes: the largest tile (a multiple of the alignment; None when the whole image
    fits) beside the optimiser's history and the whole-image arrays. When the history leaves only small tiles, a
    shorter L-BFGS memory (10, 5), then the device L-BFGS's float32 history, then Adam's, are tried; the first plan
    running at most MAX_PIXELS_RUN pixels per pixel wins, else the one running fewest. ValueError: nothing fits.
    host_lbfgs: the budget is a GPU's, and scipy's L-BFGS history lives on the host, outside it. held: bytes the
    process already holds beyond what the calibration's BASE covers (libraries, the input images, larger weights).
    A tile costs what an untiled evaluation of its crop costs (tiling.py frees each tile's features before its
    backward and reads the cores' statistics in bands of rows)."""
    h, w = shape
    halo, align = halo_align
    fixed = whole_image_bytes(h * w, content_elems) + held
    opts = [optimizer] + [o for o in ("lbfgs-device", "adam") if o != optimizer and optimizer != "adam"]
    tried = []
    for opt in opts:
        for m in ([memory] + [v for v in (10, 5) if v < memory] if opt != "adam" else [memory]):
            history = optimiser_bytes(opt, h * w, m)
            if host_lbfgs and opt == "lbfgs":
                history = 0
            fit = _fit(arch, deepest, shape, fixed, history, budget, halo, align)
            if fit is None:
                continue
            tile, peak, run = fit
            p = Plan(tile, halo, -(-h // tile) * -(-w // tile) if tile else 1, opt, m, peak, history, run)
            if run <= MAX_PIXELS_RUN:
                return p
            tried.append(p)
    best = min(tried, key=lambda p: p.pixels_run) if tried else None
    if best is not None and best.pixels_run <= MAX_TILED_COST:
        return best
    if best is not None:
        raise ValueError(f"fits only in tiles of {best.tile} px, which would run the network over "
                         f"{best.pixels_run:.0f}x the pixels")
    least = (fixed + optimiser_bytes("adam", h * w, memory)
             + network_bytes(arch, _crop(h, align, halo), _crop(w, align, halo), deepest))
    raise ValueError(f"needs at least {least / 2 ** 30:.2f} GB even in the smallest tiles")
