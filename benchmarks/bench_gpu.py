"""GPU versus CPU: seconds per evaluation, GFLOP/s and peak device memory for our NumPy and CuPy paths and PyTorch.

One run, same random VGG-19 weights for every backend, the default objective (content relu4_2, style relu1_1 ..
relu5_1, TV), float32. Also times the host<->device crossing of the flat image and its gradient, 500 L-BFGS
iterations at 512 px with scipy (host) and with the device-resident L-BFGS, and whole default runs end to end.
Without CuPy and a CUDA device it says why and exits 0. See benchmarks/GPU.md.

    python benchmarks/bench_gpu.py --sizes 512 1024 2048 --cpu-sizes 512 --out benchmarks/gpu_results.md
"""
import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))               # torchvgg, also when imported

from vggnumpy.nn import arch as archmod  # noqa: E402
from vggnumpy.nn import backend  # noqa: E402
from vggnumpy.nn.backend import gpu_status, to_numpy  # noqa: E402
from vggnumpy.weights.file import load as load_weights, random_weights  # noqa: E402

CONTENT = {"relu4_2": 1.0}
STYLE = {n: 0.2 for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}
CW, SW, TV = 1.0, 10.0, 1.0


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048], help="square sides for the table")
    p.add_argument("--cpu-sizes", type=int, nargs="*", default=[512], help="sides at which the CPU backends run too")
    p.add_argument("--backends", nargs="+", default=["numpy", "cupy", "torch-cpu", "torch-cuda"])
    p.add_argument("--repeats", type=int, default=5, help="timed evaluations per GPU cell (median is reported)")
    p.add_argument("--lbfgs-iters", type=int, default=500, help="L-BFGS iterations at 512 px (0 to skip)")
    p.add_argument("--e2e", action="store_true", help="also run stylize() with all defaults on the GPU")
    p.add_argument("--e2e-cpu", action="store_true", help="and on the CPU (slow)")
    p.add_argument("--fit", type=int, default=4096, help="one evaluation at this side to show it fits (0 to skip)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 tensor cores in cuBLAS (CuPy) and cuDNN/cuBLAS "
                   "(PyTorch); default is strict float32 on both")
    p.add_argument("--weights", help="an .h5 weights file (default: random VGG-19 from seed 0)")
    p.add_argument("--out", help="also write the markdown tables to this file")
    return p.parse_args(argv)


def images(side, seed=0):
    """A smooth synthetic content and a noisy style image, (3, side, side) in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    content = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx * yy)]).astype(np.float32)
    style = np.clip(0.5 + 0.25 * rng.standard_normal((3, side, side)), 0, 1).astype(np.float32)
    return content, style


def flop_count(arch, side, deepest="relu5_1"):
    """FLOPs of one evaluation: conv forward + input gradient (2 MACs each way) and Gram forward + backward."""
    shapes, table, total = archmod.feature_shapes(arch, side, side), archmod.get_table(arch), 0
    prev = (3, side, side)
    for name, kind, p in table:
        if kind == "conv":
            c, h, w = shapes[name]
            total += 2 * (2 * c * prev[0] * p["k"] * p["k"] * h * w)
        prev = shapes[name]
        if name == deepest:
            break
    for name in STYLE:
        c, h, w = shapes[name]
        total += 2 * (2 * c * c * h * w)
    return total


# ---------------------------------------------------------------- our paths

def ours(be, weights, side):
    """evaluate(img) for our objective on the Backend be (backend.cpu() or backend.gpu(cupy)), returning
    (loss, grad on the device)."""
    from vggnumpy.nn.network import Network
    from vggnumpy.style.objective import Objective
    xp = be.xp
    content, style = images(side)
    net = Network(weights, "max", kernels=be.kernels)
    obj = Objective(net, xp.asarray(content), [xp.asarray(style)], [1.0], CONTENT, STYLE, CW, SW, TV)
    img = xp.asarray(np.clip(content + 0.1, 0, 1))
    return lambda x=img: obj.evaluate(x)[:2], img, obj


# ---------------------------------------------------------------- PyTorch, same weights and objective

def torch_objective(torch, weights, side, device):
    from torchvgg import trunk
    from vggnumpy.nn.preprocess import preprocess_forward
    layers = set(CONTENT) | set(STYLE)
    names, modules = trunk(weights, "relu5_1", "max")           # frozen parameters: only the input's gradient
    mods = [(name, m.to(device)) for name, m in zip(names, modules)]
    content, style = images(side)

    def feats(x):
        out = {}
        for name, m in mods:
            x = m(x)
            if name in layers:
                out[name] = x
        return out

    def prep(img):
        x, _ = preprocess_forward(img, weights)
        return x

    def pre_t(img):  # same maths as our preprocess, in torch so that autograd sees it
        order = [0, 1, 2] if weights.channel_order == "RGB" else [2, 1, 0]
        mean = torch.tensor(weights.mean, dtype=torch.float32, device=device).reshape(3, 1, 1)
        gain = torch.tensor([weights.pixel_scale / s for s in weights.std], dtype=torch.float32,
                            device=device).reshape(3, 1, 1)
        return ((img[order] - mean / weights.pixel_scale) * gain)[None]

    gram = lambda f: (lambda m: m @ m.transpose(1, 2) / (f.shape[2] * f.shape[3]))(
        f.reshape(f.shape[0], f.shape[1], -1))
    with torch.no_grad():
        pc = feats(torch.from_numpy(prep(content)).to(device))
        ps = feats(torch.from_numpy(prep(style)).to(device))
        ct = {n: pc[n].clone() for n in CONTENT}
        st = {n: gram(ps[n]) for n in STYLE}
    img0 = torch.from_numpy(np.clip(content + 0.1, 0, 1)).to(device)

    def evaluate(img=img0):
        img = img.detach().requires_grad_(True)
        f = feats(pre_t(img))
        loss = 0.0
        for n, w in CONTENT.items():
            loss = loss + CW * w * ((f[n] - ct[n]) ** 2).sum() / (ct[n] ** 2).sum()
        for n, w in STYLE.items():
            loss = loss + SW * w * ((gram(f[n]) - st[n]) ** 2).sum() / (st[n] ** 2).sum()
        dh, dw = img[:, 1:, :] - img[:, :-1, :], img[:, :, 1:] - img[:, :, :-1]
        loss = loss + TV * ((dh ** 2).sum() + (dw ** 2).sum()) / img.numel()
        loss.backward()
        return float(loss.detach()), img.grad
    return evaluate


# ---------------------------------------------------------------- timing

def timed(fn, repeats, sync):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def first_line(e, n):
    return (str(e).splitlines() or [""])[0][:n]


def fmt_bytes(b):
    return "n/a" if b is None else f"{b / 2 ** 30:.2f} GiB"


def main(argv=None):
    args = parse(argv)
    if args.tf32:
        os.environ["CUPY_TF32"] = "1"
    ok, what = gpu_status()
    if not ok:
        print(f"bench_gpu: no GPU benchmark: {what}. Nothing measured.")
        return 0
    gpu = backend.select("gpu")                  # the CUDA kernels built from the CuPy module
    cpu = backend.cpu()
    cp = gpu.xp
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
        torch.set_num_threads(os.cpu_count() or 1)
    warnings.simplefilter("ignore")
    weights = load_weights(args.weights) if args.weights else random_weights("vgg19", 0)
    pool = cp.get_default_memory_pool()
    sync_gpu = lambda: cp.cuda.Device().synchronize()
    lines = [f"GPU: {what}; CuPy {cp.__version__}; PyTorch {torch.__version__ if torch else 'absent'}; "
             f"NumPy {np.__version__}; CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} threads; "
             f"{'TF32 allowed' if args.tf32 else 'strict float32 (no TF32)'}; weights: "
             f"{weights.description or weights.source}",
             f"Command: python benchmarks/bench_gpu.py {' '.join(argv if argv is not None else sys.argv[1:])}", "",
             "| side | backend | s / evaluation | GFLOP/s | peak device memory | loss (rel. to ours) |",
             "|---:|---|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)

    def row(*cells):
        line = "| " + " | ".join(str(c) for c in cells) + " |"
        lines.append(line)
        print(line, flush=True)

    crossing = []
    for side in args.sizes:
        flops = flop_count(weights.arch, side)
        ref_loss = None
        for be in args.backends:
            if be in ("numpy", "torch-cpu") and side not in args.cpu_sizes:
                continue
            try:
                peak = None
                if be == "numpy":
                    fn, _, _ = ours(cpu, weights, side)
                    sec, (loss, _) = timed(fn, 1, lambda: None)
                elif be == "cupy":
                    pool.free_all_blocks()
                    fn, img, _ = ours(gpu, weights, side)
                    sec, (loss, g) = timed(fn, args.repeats, sync_gpu)
                    peak = pool.total_bytes()          # the pool never gave memory back: its high-water mark
                    flat = to_numpy(img).ravel()
                    h2d = timed(lambda: cp.asarray(flat), 20, sync_gpu)[0]
                    d2h = timed(lambda: to_numpy(g).ravel(), 20, sync_gpu)[0]
                    crossing.append((side, h2d, d2h, sec))
                    del fn, img, g
                    pool.free_all_blocks()
                elif torch is None:
                    continue
                elif be == "torch-cpu":
                    fn = torch_objective(torch, weights, side, "cpu")
                    sec, (loss, _) = timed(fn, 1, lambda: None)
                else:
                    if not torch.cuda.is_available():
                        continue
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                    fn = torch_objective(torch, weights, side, "cuda")
                    sec, (loss, _) = timed(fn, args.repeats, torch.cuda.synchronize)
                    peak = torch.cuda.max_memory_reserved()
                    del fn
                    torch.cuda.empty_cache()
                ref_loss = loss if ref_loss is None else ref_loss
                row(side, be, f"{sec:.4f}", f"{flops / sec / 1e9:.0f}", fmt_bytes(peak),
                    f"{loss / ref_loss:.6f}")
            except Exception as e:        # an out-of-memory at 2048 px is a result too
                row(side, be, "failed", "", "", f"{type(e).__name__}: {first_line(e, 60)}")
                pool.free_all_blocks()

    if crossing:
        lines += ["", "Host <-> device crossing per evaluation (flat image up, gradient down, float32):", "",
                  "| side | H2D image | D2H gradient | share of one GPU evaluation |", "|---:|---:|---:|---:|"]
        print("\n".join(lines[-5:]), flush=True)
        for side, h2d, d2h, sec in crossing:
            row(side, f"{h2d * 1e3:.3f} ms", f"{d2h * 1e3:.3f} ms", f"{(h2d + d2h) / sec:.1%}")

    if args.lbfgs_iters:
        lines += ["", f"{args.lbfgs_iters} L-BFGS iterations at 512 px on the GPU (evaluation on the device):", "",
                  "| optimiser | total s | evaluations | time in evaluations | host-side optimiser time | final loss |",
                  "|---|---:|---:|---:|---:|---:|"]
        print("\n".join(lines[-5:]), flush=True)
        from vggnumpy.optim import device_lbfgs as dev_lbfgs, lbfgs as host_lbfgs
        for name in ("scipy L-BFGS-B (host)", "device L-BFGS"):
            fn, img, obj = ours(gpu, weights, 512)
            spent = [0.0, 0]

            def fun(x, dev=name.startswith("device")):
                t = time.perf_counter()
                loss, g = fn(cp.asarray(x).reshape(img.shape))
                g = g.ravel() if dev else to_numpy(g).ravel()
                sync_gpu()
                spent[0] += time.perf_counter() - t
                spent[1] += 1
                return loss, g
            fun(to_numpy(img).ravel())                      # warm-up: kernels compiled, pool filled
            spent[:] = [0.0, 0]
            t = time.perf_counter()
            if name.startswith("device"):
                x, _ = dev_lbfgs(fun, img.ravel(), args.lbfgs_iters)
            else:
                x, _ = host_lbfgs(fun, to_numpy(img).ravel(), args.lbfgs_iters)
            total = time.perf_counter() - t
            final = float(fn(cp.asarray(x).reshape(img.shape))[0])
            row(name, f"{total:.2f}", spent[1], f"{spent[0]:.2f} s", f"{total - spent[0]:.2f} s", f"{final:.6g}")
            del fn, img, obj
            pool.free_all_blocks()

    if args.e2e or args.e2e_cpu:
        from vggnumpy import stylize
        lines += ["", "Whole default runs end to end (stylize() defaults: 512 px, 2 scales, 300 + 200 L-BFGS "
                  "iterations; synthetic images):", "", "| device | seconds | evaluations |", "|---|---:|---:|"]
        print("\n".join(lines[-5:]), flush=True)
        content, style = images(512)
        for dev in (["gpu"] if args.e2e else []) + (["cpu"] if args.e2e_cpu else []):
            res = stylize(content.transpose(1, 2, 0), [style.transpose(1, 2, 0)], weights=weights, device=dev,
                          progress=False, log=lambda m: None)
            row(dev, f"{res.seconds:.2f}", res.evaluations)

    if args.fit:
        lines += ["", f"One evaluation at {args.fit}x{args.fit} on the GPU (our CuPy path):", ""]
        pool.free_all_blocks()
        try:
            fn, _, _ = ours(gpu, weights, args.fit)
            sec, _ = timed(fn, 1, sync_gpu)
            lines.append(f"fits: {sec:.2f} s per evaluation, peak pool {fmt_bytes(pool.total_bytes())}")
        except Exception as e:
            lines.append(f"does not fit: {type(e).__name__}: {first_line(e, 120)}")
        print(lines[-1], flush=True)

    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
