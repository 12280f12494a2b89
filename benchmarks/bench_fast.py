"""Time `vggnumpy fast`'s forward pass (the style network on one photo) against PyTorch on the same network and
weights, side by side.

    python benchmarks/bench_fast.py                          # starry_night's shipped model on a 1200x630 photo
    python benchmarks/bench_fast.py --model M.h5 --size 512x512 --rounds 5

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


def worker(impl, model, w, h, evals, threads):
    import numpy as np
    from vggnumpy.feedforward import apply, fast
    import common
    net, m = fast.load_network(model, "cpu")
    x = photo(w, h)
    if impl == "torch":
        import torch
        import torchtransformer
        torch.set_num_threads(threads)
        tnet = torchtransformer.build(m.params)

        def fn():
            with torch.no_grad():       # the same padding to a multiple of 4 as ours, then the network
                t = torch.from_numpy(np.pad(x, ((0, 0), (0, 0), (0, -h % 4), (0, -w % 4)), mode="reflect"))
                return tnet(t)[0, :, :h, :w].numpy()
    else:
        fn = lambda: apply.stylize_array(net, x[0].transpose(1, 2, 0))      # noqa: E731
    fn()
    times = []
    for _ in range(evals):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    print(json.dumps(dict(impl=impl, times=times, peak_mb=common.peak_rss_mb())))


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
           "--per-round", str(args.per_round), "--threads", str(args.threads)]
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
    p.add_argument("--worker", default=None)
    a = p.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    if a.worker:
        return worker(a.worker, a.model, w, h, a.per_round, a.threads)
    err = check_against_torch(a.model)
    res = {"ours": [], "torch": []}
    peak = {}
    for _ in range(a.rounds):
        for impl in ("ours", "torch"):
            r = run(impl, a)
            res[impl] += r["times"]
            peak[impl] = max(peak.get(impl, 0), r["peak_mb"])
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"bench_fast: {a.model}, {w}x{h}, {a.threads} threads, {a.rounds} rounds x {a.per_round}; "
          f"ours vs PyTorch max difference {err:.2g}")
    print("| implementation | median s | peak MB |\n|---|---|---|")
    for k in ("ours", "torch"):
        print(f"| {k} | {med[k]:.3f} | {peak[k]:.0f} |")
    print(f"ratio ours/PyTorch: {med['ours'] / med['torch']:.2f}x time, {peak['ours'] / peak['torch']:.2f}x memory")


if __name__ == "__main__":
    main()
