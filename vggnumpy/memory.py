"""A model of the memory a run needs (the network's features and the optimiser's history), and what the machine has.

Calibrated on one VGG-19 evaluation to relu5_1 (benchmarks/README.md, bench_eval.py peaks: 336, 584, 1579 and
5771 MiB at 256 to 2048 px): the peak is about FEATURE_SHARE of the bytes of every layer's float32 output (a ReLU runs
in place, so a conv and its ReLU share one array) plus BASE. scipy's L-BFGS-B keeps (2m + 5) float64 values per
pixel and channel; the device L-BFGS 2m float32; Adam 3 float32.
"""
from . import arch as archmod

FEATURE_SHARE = 0.57
BASE = 250 << 20


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
        return (2 * memory + 5) * n * 8 + n * 4 * 4       # its history and bounds in float64, our float32 copies
    if optimizer == "lbfgs-device":
        return (2 * memory + 4) * n * 4
    return 6 * n * 4


def estimate(arch, height, width, deepest, optimizer, memory):
    """(total, network, optimiser) bytes of one run at its largest scale."""
    net = int(FEATURE_SHARE * features_bytes(arch, height, width, deepest)) + BASE
    opt = optimiser_bytes(optimizer, height * width, memory)
    return net + opt, net, opt


def available():
    """Bytes of memory available to a new process (MemAvailable), or None where the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
