"""A whole default run (the README's example) against the PyTorch tutorial's L-BFGS loop on the same objective.

    python benchmarks/bench_e2e.py                   # tubingen + starry_night, DEFAULTS (512 px, 2 scales)
    python benchmarks/bench_e2e.py --size 128 --iterations 10 --initial-iterations 10   # a quick check

Ours: vggnumpy.transfer.stylize with DEFAULTS, i.e. `vggnumpy style CONTENT STYLE -o out.png`: wall time and the
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
from vggnumpy import arch as archmod, images, transfer         # noqa: E402
from vggnumpy.network import Network                           # noqa: E402
from vggnumpy.objective import Objective                       # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "images")


def final_objective(weights, content, style, size):
    """The objective stylize optimises at its last scale (DEFAULTS, one style, full size)."""
    d = transfer.DEFAULTS
    layers = archmod.DEFAULT_LAYERS[d["arch"]]
    min_side = archmod.min_input_size(weights.arch, layers["content"] + layers["style"])
    c = transfer._as_image(content, size, min_side, "content image")
    s = transfer._as_image(style, max(min_side, round(size * d["style_scale"])), min_side, "style image")
    s = images.resize(s, max(min_side, round(max(s.shape[:2]) * size / size)))
    chw = lambda a: np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)   # noqa: E731
    cw = {n: 1.0 / len(layers["content"]) for n in layers["content"]}
    sw = {n: 1.0 / len(layers["style"]) for n in layers["style"]}
    obj = Objective(Network(weights, d["pooling"]), chw(c), [chw(s)], [1.0], cw, sw,
                    d["content_weight"], d["style_weight"], d["tv_weight"])
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
    ap.add_argument("--size", type=int, default=transfer.DEFAULTS["size"])
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--initial-iterations", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    a = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    weights = transfer.resolve_weights(None, transfer.DEFAULTS["arch"], 0, log=print)
    res = transfer.stylize(a.content, a.style, size=a.size, iterations=a.iterations,
                           initial_iterations=a.initial_iterations, weights=weights, progress=False,
                           log=lambda m: None)
    obj, x0 = final_objective(weights, a.content, a.style, a.size)
    ours_img = np.ascontiguousarray(res.image.transpose(2, 0, 1))
    rows = [("vggnumpy stylize (DEFAULTS, all scales)", res.evaluations, res.seconds, obj.evaluate(ours_img)[0])]
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


if __name__ == "__main__":
    main()
