"""Time one objective evaluation (VGG-19 to relu5_1, losses, backward to the pixels) against PyTorch, side by side.

    python benchmarks/bench_eval.py                  # 256, 512, 1024 px, ours and PyTorch, 3 rounds
    python benchmarks/bench_eval.py --big            # also one 2048 px evaluation of ours (long)

Each (implementation, size) runs in its own subprocess, so each reports its own peak resident memory
(ru_maxrss after the evaluations, absolute, including the interpreter and libraries). Rounds alternate ours and
PyTorch so that both see the same machine load; each round runs one warm-up and `--per-round` timed evaluations;
the table shows the median over all timed evaluations. Before timing, ours is checked against PyTorch at 64 px.
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


def worker(impl, size, evals, threads):
    """Runs in the subprocess: build, warm up, time `evals` evaluations, print one JSON line."""
    import common
    import numpy as np
    obj = common.our_objective(size)
    _, _, x = common.images(size)
    if impl == "torch":
        fn = common.torch_objective(obj, threads)
    else:
        fn = lambda img: obj.evaluate(img)[:2]   # noqa: E731
    fn(x)                                        # warm-up
    times = []
    for _ in range(evals):
        t = time.perf_counter()
        loss, grad = fn(x)
        times.append(time.perf_counter() - t)
    print(json.dumps(dict(impl=impl, size=size, times=times, loss=float(loss), peak_mb=common.peak_rss_mb(),
                          grad_norm=float(np.linalg.norm(grad)))))


def run_worker(impl, size, evals, threads):
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("VGGNUMPY_THREADS", str(threads))       # our elementwise passes (kernels/parallel.py)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--size", str(size), "--per-round",
           str(evals), "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{impl} at {size}px failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_against_torch(threads):
    """Our loss and gradient against PyTorch's at 64 px; refuse to benchmark if they disagree."""
    import numpy as np
    import common
    obj = common.our_objective(64)
    _, _, x = common.images(64)
    loss, grad, _ = obj.evaluate(x)
    tl, tg = common.torch_objective(obj, threads)(x)
    rl = abs(loss - tl) / abs(tl)
    rg = float(np.abs(grad - tg).max() / np.abs(tg).max())
    print(f"check at 64 px: loss rel. diff {rl:.2e}, gradient max-abs rel. diff {rg:.2e} (tolerance 1e-4)")
    if rl > 1e-4 or rg > 1e-4:
        raise SystemExit("vggnumpy disagrees with PyTorch: not timing")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per size (default 3)")
    ap.add_argument("--per-round", type=int, default=1, help="timed evaluations per round after a warm-up")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--big", action="store_true", help="also run ours once at 2048 px (memory check)")
    ap.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.size, a.per_round, a.threads)

    import common
    try:
        import torch
        have_torch = not a.no_torch
    except ImportError:
        have_torch = False
    print(f"python {sys.version.split()[0]}, numpy {__import__('numpy').__version__}"
          + (f", torch {torch.__version__} ({a.threads} threads)" if have_torch else ", no torch"))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    if have_torch:
        check_against_torch(a.threads)
    impls = ["ours", "torch"] if have_torch else ["ours"]
    rows = []
    for size in a.sizes:
        res = {i: [] for i in impls}
        peak, last = {}, {}
        for _ in range(a.rounds):
            for impl in impls:
                r = run_worker(impl, size, a.per_round, a.threads)
                res[impl] += r["times"]
                peak[impl] = max(peak.get(impl, 0), r["peak_mb"])
                last[impl] = r
        gflop = common.flops_per_eval(size) / 1e9
        rows.append((size, gflop, {i: statistics.median(res[i]) for i in impls}, peak, last))
        print(f"  {size} px done: " + ", ".join(f"{i} {statistics.median(res[i]):.2f} s" for i in impls), flush=True)
    if a.big:
        r = run_worker("ours", 2048, 1, a.threads)
        rows.append((2048, common.flops_per_eval(2048) / 1e9, {"ours": r["times"][0]}, {"ours": r["peak_mb"]},
                     {"ours": r}))
    print()
    print("| size | GFLOP | ours s | ours GFLOP/s | ours peak MiB | torch s | torch GFLOP/s | torch peak MiB "
          "| time ours/torch | memory ours/torch | loss rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, gflop, t, peak, last in rows:
        o = t["ours"]
        line = f"| {size} | {gflop:.0f} | {o:.2f} | {gflop / o:.0f} | {peak['ours']:.0f} |"
        if "torch" in t:
            tt = t["torch"]
            dl = abs(last["ours"]["loss"] - last["torch"]["loss"]) / abs(last["torch"]["loss"])
            line += (f" {tt:.2f} | {gflop / tt:.0f} | {peak['torch']:.0f} | {o / tt:.2f} | "
                     f"{peak['ours'] / peak['torch']:.2f} | {dl:.1e} |")
        else:
            line += " - | - | - | - | - | - |"
        print(line)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
