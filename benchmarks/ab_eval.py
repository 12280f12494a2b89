"""A/B timing of one objective evaluation between two checkouts, alternating, each in a fresh process.

    git worktree add /tmp/base HEAD~1
    python benchmarks/ab_eval.py /tmp/base . --size 512 --rounds 3 --reps 3

This host's speed drifts by up to 1.5x within minutes, so a change is judged by running the baseline and the
change one after the other, several rounds, and comparing the minima. Each run builds the random-weight
objective of that checkout's benchmarks/common.py, evaluates once to warm up, then times `reps` evaluations and
prints min, median, the loss (the two should agree to float32 rounding) and peak memory.
"""
import argparse
import os
import subprocess
import sys

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", help="checkouts to compare (repository roots)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3, help="timed evaluations per run")
    a = ap.parse_args()
    for root in a.roots:
        if not os.path.isfile(os.path.join(root, "benchmarks", "common.py")):
            sys.exit(f"ab_eval: {root}: no benchmarks/common.py there; give the root of a vggnumpy checkout")
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {a.size} px\n")
    print("| checkout | min s | median s | loss | peak MiB |")
    print("|---|---|---|---|---|")
    for _ in range(a.rounds):
        for root in a.roots:
            subprocess.run([sys.executable, "-c", WORKER, os.path.abspath(root), str(a.size), str(a.reps)],
                           check=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
