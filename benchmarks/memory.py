"""Peak resident memory and seconds per evaluation against image size, whole and tiled, beside PyTorch (issue 13).

    python benchmarks/memory.py                                   # 512 .. 4096 px, tiles as the run would plan them
    python benchmarks/memory.py --sizes 2048 --tiles 2G 1024 608  # tiling overhead at 2048 px, three tile sizes
    python benchmarks/memory.py --sizes 8192 --evals 1            # one evaluation at 8192 px (about half an hour)

One objective evaluation (VGG-19 to relu5_1 on random weights, the untrained defaults: content relu4_2, five style
layers, TV; loss and gradient at the pixels) of a size x size image, style targets from a 512 px style image.
Each (implementation, size, tiling) runs in its own subprocess, so VmHWM is that run's own peak, absolute
(interpreter and libraries included), over making the targets and the evaluations. Each subprocess is limited to
--limit bytes of address space (default 95% of the memory available), so a run that does not fit fails with a
memory error instead of waking the OOM killer; the table says "does not fit".

Tiled rows: `--tiles` takes tile sizes in pixels (1024) or budgets (2G: the tile `vggnumpy style --max-memory 2G`
would take for this size, with its default optimiser), or `plan` (the tile of the default budget, 80% of the
memory available; none where the whole image fits). Our whole-image row is run only where the memory model says
it fits in --limit. Before timing, tiled and untiled evaluations are checked equal (float64, 1e-9), and ours
against PyTorch at 64 px (1e-4); either disagreeing stops the benchmark.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
STYLE_SIDE = 512


def default_evals(size):
    return 3 if size <= 1024 else 2 if size <= 2048 else 1


def _objective(size, tile, dtype="float32"):
    """(objective, starting image) for a size x size random content and a 512 px random style."""
    import numpy as np
    import common
    from vggnumpy.config import NETWORK_DEFAULTS
    from vggnumpy.nn.network import Network
    from vggnumpy.style.objective import Objective
    from vggnumpy.weights.file import random_weights
    rng = np.random.default_rng(0)
    content = rng.random((3, size, size), dtype=np.float32).astype(dtype)
    style = rng.random((3, STYLE_SIDE, STYLE_SIDE), dtype=np.float32).astype(dtype)
    d = NETWORK_DEFAULTS["untrained"]
    cw, sw = common.layer_weights()
    obj = Objective(Network(random_weights("vgg19", seed=0), d["pooling"]), content, [style], [1.0], cw, sw,
                    d["content_weight"], d["style_weight"], d["tv_weight"], tile=tile or None)
    return obj, np.clip(content + 0.1 * rng.standard_normal(content.shape).astype(dtype), 0, 1)


def worker(impl, size, tile, evals, threads):
    """Runs in the subprocess: targets, optional warm-up, `evals` timed evaluations; one JSON line."""
    import numpy as np
    import common
    t0 = time.perf_counter()
    obj, x = _objective(size, tile)
    targets_s = time.perf_counter() - t0
    fn = common.torch_objective(obj, threads) if impl == "torch" else (lambda img: obj.evaluate(img)[:2])
    last = {}
    _, times = common.median_time(lambda: last.update(r=fn(x)), evals, warmup=1 if size <= 1024 else 0)
    loss, grad = last["r"]
    print(json.dumps(dict(times=times, loss=float(loss), peak_mb=common.peak_rss_mb(), targets_s=targets_s,
                          tiles=len(obj.tiles or []) or 1, grad_norm=float(np.linalg.norm(grad)))))


def _limit_memory(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_worker(impl, size, tile, evals, threads, limit):
    """The worker's JSON result, or {'error': ...} when it ran out of memory."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), VGGNUMPY_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--size", str(size), "--tile", str(tile),
           "--evals", str(evals), "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=_limit_memory(limit))
    if out.returncode != 0:
        tail = out.stderr[-2000:]
        if any(s in tail for s in ("MemoryError", "Unable to allocate", "not enough memory", "std::bad_alloc",
                                   "DefaultCPUAllocator")) or out.returncode < 0:
            return {"error": "does not fit"}
        raise SystemExit(f"{impl} at {size} px (tile {tile}) failed:\n{tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_tiled():
    """Tiled == untiled in float64 at 200 x 200 in 64 px tiles, or no timing."""
    import numpy as np
    whole, x = _objective(200, None, "float64")
    tiled, _ = _objective(200, 64, "float64")
    (l1, g1), (l2, g2) = whole.evaluate(x)[:2], tiled.evaluate(x)[:2]
    rl, rg = abs(l1 - l2) / abs(l1), float(np.abs(g1 - g2).max() / np.abs(g1).max())
    print(f"check tiled (64 px tiles, {len(tiled.tiles)} tiles) against untiled at 200 px in float64: loss rel. "
          f"diff {rl:.1e}, gradient {rg:.1e} (tolerance 1e-9)")
    if rl > 1e-9 or rg > 1e-9:
        raise SystemExit("the tiled evaluation disagrees with the untiled one: not timing")


def plan_tile(size, spec):
    """Tile size in pixels for a --tiles entry (0: the whole image), and how it was chosen."""
    from vggnumpy.nn import arch as archmod
    from vggnumpy import config
    from vggnumpy.run import memory
    from vggnumpy.nn import backend
    from vggnumpy.style import tiling
    import common
    if spec.isdigit():
        return int(spec), f"{spec} px"
    budget = int(0.8 * backend.cpu().available()) if spec == "plan" else config.parse_bytes(spec)
    layers = common.LAYERS["content"] + common.LAYERS["style"]
    shapes = archmod.feature_shapes("vgg19", size, size)
    content = sum(c * h * w for layer, (c, h, w) in shapes.items() if layer in common.LAYERS["content"])
    try:
        p = memory.plan("vgg19", "relu5_1", (size, size), content, "lbfgs", 20, budget, tiling.halo("vgg19", layers))
    except ValueError:
        return None, f"budget {budget / 2 ** 30:.1f}G: refused"
    return p.tile or 0, f"budget {budget / 2 ** 30:.1f}G"


def predicted_mb(size, tile):
    """The memory model's peak of one evaluation (network on the largest crop, whole-image arrays), MiB."""
    from vggnumpy.run import memory
    from vggnumpy.style import tiling
    import common
    layers = common.LAYERS["content"] + common.LAYERS["style"]
    halo = tiling.halo("vgg19", layers)[0]
    side = min(size, tile + 2 * halo) if tile else size
    return (memory.network_bytes("vgg19", side, side, "relu5_1")
            + memory.whole_image_bytes(size * size, 512 * (size // 8) ** 2)) / 2 ** 20


def _rows(a, limit, have_torch):
    """(size, mode, tile label, result, predicted MiB) for every run, in order."""
    rows = []
    for size in a.sizes:
        evals = a.evals or default_evals(size)
        if predicted_mb(size, 0) * 2 ** 20 <= limit:
            rows.append((size, "ours whole", "-", run_worker("ours", size, 0, evals, a.threads, limit),
                         predicted_mb(size, 0)))
        else:
            rows.append((size, "ours whole", "-", {"error": "model says it does not fit"}, predicted_mb(size, 0)))
        for spec in a.tiles:
            tile, how = plan_tile(size, spec)
            if not tile or tile >= size:
                continue
            r = run_worker("ours", size, tile, evals, a.threads, limit)
            rows.append((size, "ours tiled", f"{tile} ({how})", r, predicted_mb(size, tile)))
        if have_torch:
            rows.append((size, "torch whole", "-", run_worker("torch", size, 0, evals, a.threads, limit), None))
        print(f"  {size} px done", flush=True)
    return rows


def _table(rows):
    whole = {s: r for s, m, _, r, _ in rows if m == "ours whole" and "times" in r}
    torch = {s: r for s, m, _, r, _ in rows if m == "torch whole" and "times" in r}
    med = lambda r: statistics.median(r["times"])                                     # noqa: E731
    ratio = lambda r, ref: f"{med(r) / med(ref):.2f}" if ref and "times" in r else "-"  # noqa: E731
    print("| size | run | tile | tiles | s / evaluation | peak MiB | model MiB | time / ours whole | "
          "time / torch | peak / torch | targets s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, mode, tile, r, pred in rows:
        model = f"{pred:.0f}" if pred else "-"
        if "times" not in r:
            print(f"| {size} | {mode} | {tile} | - | {r['error']} | - | {model} | - | - | - | - |")
            continue
        t = torch.get(size)
        mem = f"{r['peak_mb'] / t['peak_mb']:.2f}" if t else "-"
        print(f"| {size} | {mode} | {tile} | {r['tiles']} | {med(r):.2f} | {r['peak_mb']:.0f} | {model} | "
              f"{ratio(r, whole.get(size))} | {ratio(r, t)} | {mem} | {r['targets_s']:.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    ap.add_argument("--tiles", nargs="+", default=["plan", "2G"],
                    help="tile sizes (px), budgets (2G) or 'plan' (default: plan 2G)")
    ap.add_argument("--evals", type=int, default=0, help="timed evaluations per run (default 3 up to 1024 px, "
                    "2 at 2048, 1 beyond; a warm-up first up to 1024 px)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", help="address-space limit of each run (default 95%% of the memory available)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tile", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.size, a.tile, a.evals, a.threads)
    from vggnumpy import config
    from vggnumpy.nn import backend
    limit = config.parse_bytes(a.limit) if a.limit else int(0.95 * backend.cpu().available())
    try:
        import torch
        have_torch = not a.no_torch
    except ImportError:
        have_torch = False
    print(f"python {sys.version.split()[0]}, numpy {__import__('numpy').__version__}"
          + (f", torch {torch.__version__}" if have_torch else ", no torch") + f", {a.threads} threads, "
          f"limit {limit / 2 ** 30:.1f} GiB per run, load average {os.getloadavg()[0]:.2f}")
    check_tiled()
    if have_torch:
        from bench_eval import check_against_torch
        check_against_torch(a.threads)
    rows = _rows(a, limit, have_torch)
    print()
    _table(rows)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
