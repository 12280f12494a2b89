"""Time each VGG-19 convolution (to conv5_1) forward and backward on its own, against the machine's GEMM rate.

    python benchmarks/bench_layers.py --size 512

Every kernel path is first compared with the loop reference (conv.forward_ref / backward_ref, float64) on a
small input with the layer's channel counts; a path that disagrees is not timed. Both 3x3 paths are timed: the
shifted-slice GEMMs ("direct") and Winograd F(2x2, 3x3); the fused conv+ReLU forward is what Network runs.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common                                     # noqa: E402
from vggnumpy import arch as archmod              # noqa: E402
from vggnumpy.kernels import conv, pool, relu     # noqa: E402


def gemm_rate(n, repeats):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    t, _ = common.median_time(lambda: np.matmul(a, a, out=out), repeats)
    return 2 * n ** 3 / t / 1e9


def check(c, o, path):
    """The path against the loop reference on a (1, C, 6, 7) input; raises if it disagrees."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, c, 6, 7))
    w, b = rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c), rng.standard_normal(o)
    with forced(path):
        y, cache = conv.forward_relu(x, w, b, 1, 1)
        d = rng.standard_normal(y.shape)
        dx = conv.backward(d, cache)
    yr, cr = conv.forward_ref(x, w, b, 1, 1)
    mask = yr > 0
    dxr = conv.backward_ref(d * mask, cr)
    err = max(np.abs(y - np.maximum(yr, 0)).max() / np.abs(yr).max(), np.abs(dx - dxr).max() / np.abs(dxr).max())
    if not err < 1e-10:
        raise SystemExit(f"conv {c}->{o} ({path}) disagrees with the loop reference (rel. error {err:.1e}): "
                         "not timing")


class forced:
    """Context manager forcing conv's 3x3 path: 'direct' or 'winograd'."""
    def __init__(self, path):
        self.value = None if path == "direct" else 1

    def __enter__(self):
        self.old, conv.WINOGRAD_MIN_CHANNELS = conv.WINOGRAD_MIN_CHANNELS, self.value

    def __exit__(self, *exc):
        conv.WINOGRAD_MIN_CHANNELS = self.old


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gemm", type=int, default=4096, help="side of the square sgemm that sets the machine rate")
    a = ap.parse_args()
    rule = (f"Winograd when min(C, O) >= {conv.WINOGRAD_MIN_CHANNELS}" if conv.WINOGRAD_MIN_CHANNELS
            else "direct everywhere (conv.WINOGRAD_MIN_CHANNELS is None)")
    print(f"load average at start: {os.getloadavg()[0]:.2f}; default path: {rule}")
    peak = gemm_rate(a.gemm, a.repeats)
    print(f"sgemm {a.gemm}^3: {peak:.0f} GFLOP/s")
    shapes = archmod.feature_shapes("vgg19", a.size, a.size)
    layers = [(n, p) for n, k, p in archmod.get_table("vgg19")[:archmod.layer_names("vgg19").index("conv5_1") + 1]
              if k == "conv"]
    checked = set()
    rng = np.random.default_rng(1)
    print("\n| layer | C->O | HxW | GFLOP | path | fwd s | fwd GFLOP/s | bwd s | bwd GFLOP/s | % of sgemm |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    totals = {"direct": 0.0, "winograd": 0.0, "default": 0.0}
    for name, p in layers:
        c, o = p["cin"], p["cout"]
        _, h, w = shapes[name]
        x = rng.random((1, c, h, w), dtype=np.float32)
        wt = (rng.standard_normal((o, c, 3, 3), dtype=np.float32) * np.float32(np.sqrt(2 / (9 * c))))
        b = np.zeros(o, np.float32)
        gflop = 2 * o * c * 9 * h * w / 1e9
        for path in ("direct", "winograd"):
            if (c, o, path) not in checked:
                check(c, o, path)
                checked.add((c, o, path))
            with forced(path):
                tf, _ = common.median_time(lambda: conv.forward_relu(x, wt, b, 1, 1), a.repeats)
                y, cache = conv.forward_relu(x, wt, b, 1, 1)
                d = rng.standard_normal(y.shape, dtype=np.float32)
                tb, _ = common.median_time(lambda: conv.backward(d, cache), a.repeats)
            totals[path] += tf + tb
            default = "winograd" if conv._use_winograd(3, 3, c, o) else "direct"
            if path == default:
                totals["default"] += tf + tb
            print(f"| {name} | {c}->{o} | {h}x{w} | {gflop:.1f} | {path}{' *' if path == default else ''} | "
                  f"{tf:.3f} | {gflop / tf:.0f} | {tb:.3f} | {gflop / tb:.0f} | {100 * 2 * gflop / (tf + tb) / peak:.0f} |")
    print("\n(* = the path the default WINOGRAD_MIN_CHANNELS picks)")
    print("all convs, fwd+bwd: " + ", ".join(f"{k} {v:.2f} s" for k, v in totals.items()))

    # ReLU alone and max pooling, for the largest activation of each block.
    print("\n| kernel | shape | fwd s | bwd s |")
    print("|---|---|---|---|")
    for name in ("relu1_2", "relu3_4", "pool1", "pool3"):
        cc, h, w = shapes[name] if name.startswith("relu") else shapes[name.replace("pool", "relu") + "_2"]
        x = rng.standard_normal((1, cc, h, w), dtype=np.float32)
        if name.startswith("relu"):
            tf, _ = common.median_time(lambda: relu.forward(x), a.repeats)
            y, cache = relu.forward(x)
            tb, _ = common.median_time(lambda: relu.backward(y, cache), a.repeats)
        else:
            tf, _ = common.median_time(lambda: pool.forward(x), a.repeats)
            y, cache = pool.forward(x)
            tb, _ = common.median_time(lambda: pool.backward(y, cache), a.repeats)
        print(f"| {name} | {cc}x{h}x{w} | {tf:.3f} | {tb:.3f} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
