"""Time each VGG-19 convolution (to conv5_1) forward and backward on its own, against the machine's GEMM rate
and against PyTorch's CPU convolution in the same run.

    python benchmarks/bench_layers.py --size 512

Every kernel path is first compared with the loop reference (conv.forward_ref / backward_ref, float64) on a
small input with the layer's channel counts; a path that disagrees is not timed. All four stride-1 paths are
timed: Winograd F(4x4, 3x3) ("winograd") and the three direct ways of conv._conv_s1 ("rows", "slices",
"columns"). The fused conv+ReLU forward and its backward (ReLU mask, then the input gradient) are what Network
runs, and what the torch row times (conv2d + relu, and backward to the input only).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common                                     # noqa: E402
from vggnumpy.nn import arch as archmod              # noqa: E402
from vggnumpy.nn.kernels import conv, pool, relu     # noqa: E402
from vggnumpy.nn.kernels.engine import Engine        # noqa: E402


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
    engine = Engine(way=path)
    y, cache = conv.forward_relu(x, w, b, 1, 1, engine=engine)
    d = rng.standard_normal(y.shape)
    dx = conv.backward(d, cache, engine=engine)
    yr, cr = conv.forward_ref(x, w, b, 1, 1)
    mask = yr > 0
    dxr = conv.backward_ref(d * mask, cr)
    err = max(np.abs(y - np.maximum(yr, 0)).max() / np.abs(yr).max(), np.abs(dx - dxr).max() / np.abs(dxr).max())
    if not err < 1e-10:
        raise SystemExit(f"conv {c}->{o} ({path}) disagrees with the loop reference (rel. error {err:.1e}): "
                         "not timing")


PATHS = ("winograd",) + conv.DIRECT_WAYS


def torch_layer(x, w, b, repeats):
    """(forward s, backward s) of relu(conv2d(x)) and its input gradient in PyTorch, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "0")) or os.cpu_count())
    xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    with torch.no_grad():
        tf, _ = common.median_time(lambda: torch.relu(torch.nn.functional.conv2d(xt, wt, bt, padding=1)), repeats)
    xg = xt.clone().requires_grad_(True)
    y = torch.relu(torch.nn.functional.conv2d(xg, wt, bt, padding=1))
    g = torch.randn_like(y)

    def back():                                   # the same graph's backward, kept for every repeat
        y.backward(g, retain_graph=True)
        xg.grad = None
    tb, _ = common.median_time(back, repeats)
    return tf, tb


def small_kernels(shapes, rng, repeats):
    """ReLU alone and VGG's pooling (average, the default, and max), for the largest activation of each block."""
    engine = Engine()
    print("\n| kernel | shape | fwd s | bwd s |")
    print("|---|---|---|---|")
    for name, mode in (("relu1_2", None), ("relu3_4", None), ("pool1", "avg"), ("pool1", "max"),
                       ("pool3", "avg"), ("pool3", "max")):
        cc, h, w = shapes[name] if name.startswith("relu") else shapes[name.replace("pool", "relu") + "_2"]
        x = rng.standard_normal((1, cc, h, w), dtype=np.float32)
        if name.startswith("relu"):
            tf, _ = common.median_time(lambda: relu.forward(x), repeats)
            y, cache = relu.forward(x)
            tb, _ = common.median_time(lambda: relu.backward(y, cache), repeats)
        else:
            tf, _ = common.median_time(lambda: pool.forward(x, mode=mode, engine=engine), repeats)
            y, cache = pool.forward(x, mode=mode, engine=engine)
            tb, _ = common.median_time(lambda: pool.backward(y, cache, engine=engine), repeats)
        print(f"| {name}{' ' + mode if mode else ''} | {cc}x{h}x{w} | {tf:.3f} | {tb:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gemm", type=int, default=4096, help="side of the square sgemm that sets the machine rate")
    a = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; default rule: Winograd when min(C, O) >= "
          f"{conv.WINOGRAD_MIN_CHANNELS} and Ho*Wo >= {conv.WINOGRAD_MIN_PIXELS}, columns when 9*C <= "
          f"{conv.COLUMNS_MAX_K}, slices when 9*O <= {conv.COLUMNS_MAX_K}, else rows")
    peak = gemm_rate(a.gemm, a.repeats)
    print(f"sgemm {a.gemm}^3: {peak:.0f} GFLOP/s")
    shapes = archmod.feature_shapes("vgg19", a.size, a.size)
    layers = [(n, p) for n, k, p in archmod.get_table("vgg19")[:archmod.layer_names("vgg19").index("conv5_1") + 1]
              if k == "conv"]
    checked = set()
    engines = {path: Engine(way=path) for path in PATHS}           # each forces its path; threads read once
    rng = np.random.default_rng(1)
    print("\n| layer | C->O | HxW | GFLOP | path | fwd s | fwd GFLOP/s | bwd s | bwd GFLOP/s | % of sgemm | vs torch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    totals = dict.fromkeys(PATHS + ("default", "torch"), 0.0)
    for name, p in layers:
        c, o = p["cin"], p["cout"]
        _, h, w = shapes[name]
        x = rng.random((1, c, h, w), dtype=np.float32)
        wt = (rng.standard_normal((o, c, 3, 3), dtype=np.float32) * np.float32(np.sqrt(2 / (9 * c))))
        b = np.zeros(o, np.float32)
        gflop = 2 * o * c * 9 * h * w / 1e9
        default_f = conv.stride1_path(c, o, 3, 3, h * w)            # forward: C -> O
        default_b = conv.stride1_path(o, c, 3, 3, h * w)            # input gradient: O -> C
        tt = torch_layer(x, wt, b, a.repeats)
        if tt is not None:
            totals["torch"] += sum(tt)
            print(f"| {name} | {c}->{o} | {h}x{w} | {gflop:.1f} | torch | {tt[0]:.3f} | {gflop / tt[0]:.0f} | "
                  f"{tt[1]:.3f} | {gflop / max(tt[1], 1e-9):.0f} | {100 * 2 * gflop / sum(tt) / peak:.0f} | 1.00 |")
        for path in PATHS:
            if (c, o, path) not in checked:
                check(c, o, path)
                checked.add((c, o, path))
            e = engines[path]
            tf, _ = common.median_time(lambda: conv.forward_relu(x, wt, b, 1, 1, engine=e), a.repeats)
            y, cache = conv.forward_relu(x, wt, b, 1, 1, engine=e)
            d = rng.standard_normal(y.shape, dtype=np.float32)
            tb, _ = common.median_time(lambda: conv.backward(d, cache, engine=e), a.repeats)
            totals[path] += tf + tb
            totals["default"] += (tf if path == default_f else 0) + (tb if path == default_b else 0)
            mark = {(True, True): " *", (True, False): " * fwd", (False, True): " * bwd"}.get(
                (path == default_f, path == default_b), "")
            ratio = f"{(tf + tb) / sum(tt):.2f}" if tt is not None else "-"
            print(f"| {name} | {c}->{o} | {h}x{w} | {gflop:.1f} | {path}{mark} | "
                  f"{tf:.3f} | {gflop / tf:.0f} | {tb:.3f} | {gflop / tb:.0f} | "
                  f"{100 * 2 * gflop / (tf + tb) / peak:.0f} | {ratio} |")
    print("\n(* = the path conv.stride1_path picks by default for both directions, * fwd / * bwd for one; "
          "'vs torch' = (fwd + bwd) / torch's in this run)")
    print("all convs, fwd+bwd: " + ", ".join(f"{k} {v:.2f} s" for k, v in totals.items() if v))

    small_kernels(shapes, rng, a.repeats)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
