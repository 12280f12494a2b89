"""Time `vggnumpy fast`'s forward pass (the style network on one photo) against PyTorch on the same network and
weights, side by side.

    python benchmarks/bench_fast.py                          # starry_night's shipped model on a 1200x630 photo
    python benchmarks/bench_fast.py --model M.h5 --size 512x512 --rounds 5
    python benchmarks/bench_fast.py --device gpu             # ours on CuPy against PyTorch on CUDA

With --device gpu each timed pass includes the photo's copy to the device and the painted image's copy back (what
`vggnumpy fast --device gpu` does per photo; the copy back waits for the device), and the peak is the device
memory each side's allocator held (CuPy's pool, PyTorch's reserved memory), not the process's resident memory.

Each implementation runs in its own subprocess (its own peak resident memory, ru_maxrss, absolute). Rounds
alternate ours and PyTorch; each round is one warm-up and --per-round timed passes; the table shows the medians.
Before timing, our output is compared with PyTorch's on the same photo: the benchmark refuses to time a network
that disagrees (more than 1e-4 of the output range).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
PHOTO = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "images", "content", "golden_gate.jpg")


def photo(w, h):
    """(1, 3, h, w) float32: the golden_gate photo resized to w x h."""
    import numpy as np
    from vggnumpy.files import images
    img = images.resize_to(images.load_image(PHOTO), h, w)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def torch_pass(m, x, threads, device):
    """The PyTorch pass on `device` ("cpu" or "cuda"): (function painting x, function giving its peak MiB)."""
    import numpy as np
    import torch
    import torchtransformer
    import common
    torch.set_num_threads(threads)
    torch.backends.cudnn.allow_tf32 = False                  # strict float32, as cuBLAS under CuPy
    torch.backends.cuda.matmul.allow_tf32 = False
    tnet = torchtransformer.build(m.params).to(device)
    h, w = x.shape[2:]

    def fn():
        with torch.no_grad():       # the same padding to a multiple of 4 as ours, then the network
            t = torch.from_numpy(np.pad(x, ((0, 0), (0, 0), (0, -h % 4), (0, -w % 4)), mode="reflect"))
            return tnet(t.to(device))[0, :, :h, :w].cpu().numpy()
    if device == "cuda":
        return fn, lambda: torch.cuda.max_memory_reserved() / 2 ** 20
    return fn, common.peak_rss_mb


def ours_pass(model, x, device):
    """Our pass (apply.stylize_array) on `device`: (function painting x, function giving its peak MiB)."""
    from vggnumpy.feedforward import apply, fast
    import common
    net, _ = fast.load_network(model, device)
    fn = lambda: apply.stylize_array(net, x[0].transpose(1, 2, 0))          # noqa: E731
    if device == "gpu":
        import cupy
        pool = cupy.get_default_memory_pool()
        return fn, lambda: pool.total_bytes() / 2 ** 20                    # the pool keeps what it took
    return fn, common.peak_rss_mb


def worker(impl, model, w, h, evals, threads, device="cpu"):
    from vggnumpy.feedforward import fast
    x = photo(w, h)
    if impl == "torch":
        fn, peak = torch_pass(fast.load_network(model, "cpu")[1], x, threads, "cuda" if device == "gpu" else "cpu")
    else:
        fn, peak = ours_pass(model, x, device)
    fn()
    times = []
    for _ in range(evals):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    print(json.dumps(dict(impl=impl, times=times, peak_mb=peak())))


def check_gpu_against_cpu(model, w, h):
    """Our GPU output against our CPU output on the timed photo: refuse to time a GPU path that disagrees."""
    import numpy as np
    from vggnumpy.feedforward import apply, fast
    x = photo(w, h)[0].transpose(1, 2, 0)
    a = apply.stylize_array(fast.load_network(model, "cpu")[0], x)
    b = apply.stylize_array(fast.load_network(model, "gpu")[0], x)
    err = float(np.abs(a - b).max())
    if err > 1e-4:
        raise SystemExit(f"bench_fast: our GPU output differs from our CPU output by {err:.3g}; refusing to time it")
    return err


def check_against_torch(model):
    """Ours against PyTorch on a 300x200 crop: refuse to benchmark when they disagree."""
    import numpy as np
    import torch
    import torchtransformer
    from vggnumpy.feedforward import apply, fast
    net, m = fast.load_network(model, "cpu")
    x = photo(300, 200)
    ours = apply.forward(net, x.copy())
    with torch.no_grad():
        ref = torchtransformer.build(m.params)(torch.from_numpy(x)).numpy()
    err = float(np.abs(ours - ref).max())
    if err > 1e-4:
        raise SystemExit(f"bench_fast: our network differs from PyTorch's by {err:.3g}; refusing to time it")
    return err


def run(impl, args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               VGGNUMPY_THREADS=str(args.threads))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--model", args.model, "--size", args.size,
           "--per-round", str(args.per_round), "--threads", str(args.threads), "--device", args.device]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{impl} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="starry_night")
    p.add_argument("--size", default="1200x630", help="WIDTHxHEIGHT (default 1200x630, as jcjohnson's README)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-round", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="gpu: ours on CuPy against PyTorch on CUDA (default: both on the CPU)")
    p.add_argument("--worker", default=None)
    a = p.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    if a.worker:
        return worker(a.worker, a.model, w, h, a.per_round, a.threads, a.device)
    if a.device == "gpu":
        from vggnumpy.nn.backend import gpu_status
        ok, what = gpu_status()
        if not ok:
            print(f"bench_fast: --device gpu: {what}; nothing timed")
            return
        print(f"bench_fast: GPU {what}")
    err = check_against_torch(a.model)
    if a.device == "gpu":
        gerr = check_gpu_against_cpu(a.model, w, h)
        print(f"bench_fast: our GPU output agrees with our CPU output within {gerr:.2g}")
    res = {"ours": [], "torch": []}
    peak = {}
    for _ in range(a.rounds):
        for impl in ("ours", "torch"):
            r = run(impl, a)
            res[impl] += r["times"]
            peak[impl] = max(peak.get(impl, 0), r["peak_mb"])
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"bench_fast: {a.model}, {w}x{h}, {a.device}, {a.threads} threads, {a.rounds} rounds x {a.per_round}; "
          f"ours vs PyTorch max difference {err:.2g}")
    print(f"| implementation | median s | peak MB ({'device' if a.device == 'gpu' else 'resident'}) |\n|---|---|---|")
    for k in ("ours", "torch"):
        print(f"| {k} | {med[k]:.3f} | {peak[k]:.0f} |")
    print(f"ratio ours/PyTorch: {med['ours'] / med['torch']:.2f}x time, {peak['ours'] / peak['torch']:.2f}x memory")


if __name__ == "__main__":
    main()
