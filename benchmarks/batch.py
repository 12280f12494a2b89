"""Throughput of `vggnumpy batch`: a grid of 8 jobs run one after another, then on a LocalCluster of 2 workers.

    pip install -e ".[dist]"
    python benchmarks/batch.py --out DIR                 # 2 photos x 2 paintings x 2 style weights at 256 px
    python benchmarks/batch.py --out DIR --size 128 --workers 2

Both runs are whole commands (`vggnumpy batch ... --sequential` and `--workers N`), timed from start to exit,
into separate folders; the script checks their PNGs are byte-identical, then prints jobs per minute, the ratio,
and the bytes each task sends (DIR/jobs.json: the pickled task less its input files, and the files).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "images")


def grid_args(size):
    c = [os.path.join(SHARED, "content", n) for n in ("tubingen.jpg", "golden_gate.jpg")]
    s = [os.path.join(SHARED, "style", n) for n in ("starry_night.jpg", "the_scream.jpg")]
    return ["--contents", *c, "--styles", *s, "--style-weight", "500,2000", "-s", str(size), "--no-progress"]


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def pngs(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))
            if n.endswith(".png") and n != "sheet.png"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    args, extra = p.parse_known_args(argv)
    seq, par = os.path.join(args.out, "sequential"), os.path.join(args.out, f"workers{args.workers}")
    base = ["vggnumpy", "batch", *grid_args(args.size), *extra]
    t_seq = timed(base + ["-o", seq, "--sequential"])
    t_par = timed(base + ["-o", par, "--workers", str(args.workers)])
    a, b = pngs(seq), pngs(par)
    same = a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    with open(os.path.join(par, "jobs.json")) as f:
        recs = json.load(f)["jobs"]
    n = len(recs)
    task = max(r["sent_bytes"]["task"] for r in recs)
    files = max(r["sent_bytes"]["files"] for r in recs)
    print("\n| run | jobs | seconds | jobs per minute |\n|---|---|---|---|")
    print(f"| one after another (this process, all cores) | {n} | {t_seq:.1f} | {60 * n / t_seq:.2f} |")
    print(f"| LocalCluster, {args.workers} workers x 1 thread | {n} | {t_par:.1f} | {60 * n / t_par:.2f} |")
    print(f"\nthroughput ratio {t_seq / t_par:.2f}x; outputs byte-identical: {same}; per task sent: "
          f"{task} bytes besides the input files (largest), input files {files} bytes (largest task)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
