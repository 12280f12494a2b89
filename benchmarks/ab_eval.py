"""A/B timing of one objective evaluation between two checkouts, alternating, each in a fresh process.

    git worktree add /tmp/base HEAD~1
    python benchmarks/ab_eval.py /tmp/base . --size 512 --rounds 3 --reps 3

This host's speed drifts by up to 1.5x within minutes, so a change is judged by running the baseline and the
change one after the other, several rounds, and comparing the minima. Each run builds the random-weight
objective of that checkout's benchmarks/common.py, evaluates once to warm up, then times `reps` evaluations and
prints min, median, the loss (the two should agree to float32 rounding) and peak memory.

    python benchmarks/ab_eval.py /tmp/base . --size 512 --interleave 16

--interleave N instead loads every checkout's vggnumpy into ONE process (each copied under its own package name)
and alternates single evaluations N times, so a drift of the host's speed hits all of them alike; it prints each
one's min and median and the median of the per-round ratios against the first checkout.
"""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

WORKER = """
import sys, time, os
root, size, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, root); sys.path.insert(0, os.path.join(root, "benchmarks"))
from common import our_objective, images, peak_rss_mb
obj = our_objective(size); _, _, x = images(size)
obj.evaluate(x)
ts = []
for _ in range(reps):
    t = time.perf_counter(); loss = obj.evaluate(x)[0]; ts.append(time.perf_counter() - t)
ts.sort()
print(f"| {root} | {ts[0]:.2f} | {ts[len(ts) // 2]:.2f} | {loss:.10g} | {peak_rss_mb():.0f} |", flush=True)
"""


LAYOUT = {"weights": "weights.file", "network": "nn.network", "objective": "style.objective"}   # since issue 24


def _module(package, name):
    """A module of a copied checkout by its name before issue 24's layout, found in either layout."""
    try:
        return importlib.import_module(f"{package}.{LAYOUT[name]}")
    except ImportError:
        return importlib.import_module(f"{package}.{name}")


def interleave(roots, size, rounds):
    """Every checkout's objective in this process; `rounds` rounds of one evaluation each, order alternating."""
    import numpy as np
    folder = tempfile.mkdtemp(prefix="ab_eval-")
    sys.path.insert(0, folder)
    rng = np.random.default_rng(0)
    content, style, x = (rng.random((3, size, size), dtype=np.float32) for _ in range(3))
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    objs, times = {}, {}
    for k, root in enumerate(roots):              # same objective as common.our_objective, built from each copy
        name = f"vggnumpy_ab{k}"
        shutil.copytree(os.path.join(root, "vggnumpy"), os.path.join(folder, name))
        mods = {m: _module(name, m) for m in ("weights", "network", "objective")}
        net = mods["network"].Network(mods["weights"].random_weights("vgg19", 0), "avg")
        objs[root] = mods["objective"].Objective(net, content, [style ** 2], [1.0], {"relu4_2": 1.0},
                                                 {n: 0.2 for n in layers}, 1.0, 5.0, 0.5)
        objs[root].evaluate(x)
        times[root] = []
    for r in range(rounds):
        for root in roots if r % 2 == 0 else roots[::-1]:
            t = time.perf_counter()
            loss = objs[root].evaluate(x)[0]
            times[root].append(time.perf_counter() - t)
            objs[root].loss = loss
    shutil.rmtree(folder)
    print("| checkout | min s | median s | loss | median of per-round ratios to the first |")
    print("|---|---|---|---|---|")
    first = np.array(times[roots[0]])
    for root in roots:
        t = np.array(times[root])
        print(f"| {root} | {t.min():.2f} | {np.median(t):.2f} | {objs[root].loss:.10g} | "
              f"{np.median(t / first):.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", help="checkouts to compare (repository roots)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3, help="timed evaluations per run")
    ap.add_argument("--interleave", type=int, default=0, metavar="N",
                    help="one process, N rounds of alternating single evaluations (see above)")
    a = ap.parse_args()
    for root in a.roots:
        if not os.path.isfile(os.path.join(root, "benchmarks", "common.py")):
            sys.exit(f"ab_eval: {root}: no benchmarks/common.py there; give the root of a vggnumpy checkout")
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {a.size} px\n")
    if a.interleave:
        interleave([os.path.abspath(r) for r in a.roots], a.size, a.interleave)
        print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
        return
    print("| checkout | min s | median s | loss | peak MiB |")
    print("|---|---|---|---|---|")
    for _ in range(a.rounds):
        for root in a.roots:
            subprocess.run([sys.executable, "-c", WORKER, os.path.abspath(root), str(a.size), str(a.reps)],
                           check=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
