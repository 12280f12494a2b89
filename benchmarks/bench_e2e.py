"""A whole default run (the README's example) against PyTorch: the tutorial's loop on our objective, and time to
quality against jcjohnson/neural-style's recipe.

    python benchmarks/bench_e2e.py                   # tubingen + starry_night, at the defaults (512 px)
    python benchmarks/bench_e2e.py --size 128 --iterations 20   # a quick check
    python benchmarks/bench_e2e.py --time-to-quality --size 256    # needs the [bench] extra (the judge)

Time to quality (--time-to-quality): our default run at --size, and jcjohnson's recipe (benchmarks/jcjohnson.py:
noise init, max pooling, content 5, style 100, TV 1e-3, L-BFGS with one evaluation per iteration, 1000
iterations) in PyTorch on the same weights and size. Every iterate of ours and every 10th of PyTorch's is kept with
its wall time; afterwards the judge of benchmarks/quality.py scores them all, and the table gives the first time
at which each run's iterate scores at least the other's final image on both style match and content SSIM.

Ours: vggnumpy.stylize at its defaults, i.e. `vggnumpy style CONTENT STYLE -o out.png`: wall time and the
objective evaluations it used over all scales. PyTorch: the tutorial's loop (torch.optim.LBFGS over the image,
clamped to [0, 1] before each evaluation) at the final size from the content image, on the same objective (same
weights, layers, loss weights and targets), for the same number of evaluations. Both results are then scored by
our objective at the final size.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common                                                  # noqa: E402
from vggnumpy.run import pipeline as api
from vggnumpy.nn import arch as archmod
from vggnumpy import config
from vggnumpy.files import images      # noqa: E402
from vggnumpy.nn.network import Network                           # noqa: E402
from vggnumpy.style.objective import Objective                       # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "images")


def final_objective(weights, content, style, size):
    """The objective stylize optimises at its last scale (its defaults for these weights, one style, full size)."""
    o = config.Options().resolved(weights.trained)
    layers = archmod.DEFAULT_LAYERS[weights.arch]
    min_side = archmod.min_input_size(weights.arch, layers["content"] + layers["style"])
    c = images.load_image(content, size, min_side, "content image")
    s = images.load_image(style, max(min_side, round(size * o.style_scale)), min_side, "style image")
    s = images.resize(s, max(min_side, round(max(s.shape[:2]) * size / size)))
    chw = lambda a: np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)   # noqa: E731
    cw = {n: 1.0 / len(layers["content"]) for n in layers["content"]}
    sw = {n: 1.0 / len(layers["style"]) for n in layers["style"]}
    obj = Objective(Network(weights, o.pooling), chw(c), [chw(s)], [1.0], cw, sw,
                    o.content_weight, o.style_weight, o.tv_weight)
    return obj, chw(c)


def torch_tutorial(obj, x0, budget, threads):
    """The PyTorch tutorial's loop: LBFGS([img]).step(closure) until `budget` closure calls."""
    import torch
    loss_of = common.torch_objective(obj, threads).loss_of
    img = torch.from_numpy(x0.copy()).requires_grad_(True)
    opt = torch.optim.LBFGS([img])
    calls = [0]

    def closure():
        with torch.no_grad():
            img.clamp_(0, 1)
        opt.zero_grad()
        loss = loss_of(img)
        loss.backward()
        calls[0] += 1
        return loss

    start = time.perf_counter()
    while calls[0] < budget:
        left = budget - calls[0]                      # the tutorial's loop, stopped at exactly `budget` calls
        opt.param_groups[0].update(max_iter=min(20, left), max_eval=left)
        opt.step(closure)
    with torch.no_grad():
        img.clamp_(0, 1)
    return img.detach().numpy().copy(), time.perf_counter() - start, calls[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("content", nargs="?", default=os.path.join(SHARED, "content", "tubingen.jpg"))
    ap.add_argument("style", nargs="?", default=os.path.join(SHARED, "style", "starry_night.jpg"))
    ap.add_argument("--size", type=int, default=config.Options.size)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--scale-iterations", type=lambda t: [int(v) for v in t.split(",")], default=None,
                    help="iterations per scale, coarsest first (as vggnumpy style --scale-iterations)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--time-to-quality", action="store_true", help="time to quality against jcjohnson's recipe")
    ap.add_argument("--peer-iterations", type=int, default=1000, help="jcjohnson's iterations (default 1000)")
    ap.add_argument("--weights", default=None, help="weights file (default: what `vggnumpy style` would use)")
    ap.add_argument("--keep", default=None, help="folder to write both final images to")
    a = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    weights = api.resolve_weights(a.weights, config.Options.arch, log=print)
    if a.time_to_quality:
        return time_to_quality(a, weights)
    res = api.stylize(a.content, a.style, size=a.size, iterations=a.iterations,
                           scale_iterations=a.scale_iterations, weights=weights, progress=False,
                           log=lambda m: None)
    obj, x0 = final_objective(weights, a.content, a.style, a.size)
    ours_img = np.ascontiguousarray(res.image.transpose(2, 0, 1))
    rows = [("vggnumpy stylize (defaults, all scales)", res.evaluations, res.seconds, obj.evaluate(ours_img)[0])]
    if not a.no_torch:
        try:
            img, secs, calls = torch_tutorial(obj, x0, res.evaluations, a.threads)
            rows.append((f"PyTorch tutorial LBFGS at {a.size} px", calls, secs, obj.evaluate(img)[0]))
        except ImportError:
            print("torch is not installed: PyTorch row skipped")
    start_loss = obj.evaluate(x0)[0]
    print(f"\nweights: {weights.description or weights.source}; final size {x0.shape[2]}x{x0.shape[1]}; "
          f"loss of the content image (the start): {start_loss:.4g}")
    print("\n| run | evaluations | wall s | s / evaluation | final loss (our objective, final size) |")
    print("|---|---|---|---|---|")
    for name, n, secs, loss in rows:
        print(f"| {name} | {n} | {secs:.1f} | {secs / n:.2f} | {loss:.4g} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


def first_reaching(snaps, scores, target):
    """(seconds, iteration) of the first snapshot scoring at least target on both measures, or None."""
    for (secs, it, _), (sm, ss) in zip(snaps, scores):
        if sm >= target[0] and ss >= target[1]:
            return secs, it
    return None


def time_to_quality(a, weights):
    """Our default run and jcjohnson's recipe at one size; when each first reaches the other's final scores."""
    import jcjohnson
    import quality
    judge = quality.Judge()
    start, ours = time.perf_counter(), []
    res = api.stylize(a.content, a.style, size=a.size, iterations=a.iterations,
                           scale_iterations=a.scale_iterations, weights=weights, progress=False,
                           log=lambda m: None,
                           on_step=lambda it, loss, img: ours.append((time.perf_counter() - start, it, img.copy())))
    ours.append((res.seconds, res.iterations, res.image))              # the image stylize returns
    content = images.resize(images.load_image(a.content), a.size)
    style = images.resize(images.load_image(a.style), a.size)
    peer = jcjohnson.run(weights, content, style, a.peer_iterations, threads=a.threads)
    runs = {}
    for name, snaps in (("vggnumpy defaults", ours), ("jcjohnson recipe (PyTorch)", peer)):
        runs[name] = (snaps, [judge.score(img, a.content, a.style) for _, _, img in snaps])
        if a.keep:
            images.save_image(os.path.join(a.keep, f"ttq_{name.split()[0]}_{a.size}.png"), snaps[-1][2])
    (n1, (s1, q1)), (n2, (s2, q2)) = runs.items()
    print(f"\nweights: {weights.description or weights.source}; size {a.size}; content {a.content}; style {a.style}")
    print("\n| run | iterations | wall s | final style match | final content SSIM | "
          "first reaches the other's final scores at |")
    print("|---|---|---|---|---|---|")
    for name, snaps, sc, other in ((n1, s1, q1, q2[-1]), (n2, s2, q2, q1[-1])):
        hit = first_reaching(snaps, sc, other)
        when = f"{hit[0]:.1f} s (iteration {hit[1]})" if hit else "never"
        print(f"| {name} | {snaps[-1][1]} | {snaps[-1][0]:.1f} | {sc[-1][0]:.3f} | {sc[-1][1]:.3f} | {when} |")
    mine, theirs = first_reaching(s1, q1, q2[-1]), first_reaching(s2, q2, q2[-1])
    if mine and theirs:
        print(f"\ntime to jcjohnson's final quality: ours {mine[0]:.1f} s, PyTorch {theirs[0]:.1f} s, "
              f"ratio {mine[0] / theirs[0]:.3f}")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
