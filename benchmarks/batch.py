"""Throughput of `vggnumpy batch`: a grid of 8 jobs run one after another, then on a LocalCluster of 2 workers.

    pip install -e ".[dist]"
    python benchmarks/batch.py --out DIR                 # 2 photos x 2 paintings x 2 style weights at 256 px
    python benchmarks/batch.py --out DIR --size 128 --workers 2

Both runs are whole commands (`vggnumpy batch ... --sequential` and `--workers N`), timed from start to exit,
into separate folders; the script checks their PNGs are byte-identical, then prints jobs per minute, the ratio,
and the bytes the client sends for the grid: every pickled task, plus each distinct input file once (Dask gets
them by client.scatter, keyed by sha256), against one copy of the files per task (as before).

    python benchmarks/batch.py --bytes-only --jobs 2000     # no runs: the bytes sent and the client's memory
                                                            # (tracemalloc) for 2000 tasks of the same 2 images
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


def grid_jobs(size, n=0):
    """The benchmark's grid as Jobs (the command line's), or n jobs of the same photo and painting."""
    from vggnumpy.cli import batch as batch_cli
    from vggnumpy.cli.main import build_parser
    argv = grid_args(size)
    if n:
        argv = ["--contents", argv[1], "--styles", argv[4], "--style-weight", ",".join(map(str, range(1, n + 1))),
                "-s", str(size), "--no-progress", "--max-jobs", str(max(n, 1000))]
    return batch_cli.jobs_of(build_parser().parse_args(["batch", *argv, "-o", "unused"]))


def sent_bytes(jobs, pack=None):
    """What the client sends for these jobs, and holds: {tasks: pickled tasks, files_once: each distinct input file
    once, sent: both, per_task_copies: tasks and one copy of the files per task, distinct, memory: bytes
    tracemalloc counts for the packed tasks}. pack: batch.pack, or another (an earlier version's)."""
    import hashlib
    import pickle
    import tracemalloc
    from vggnumpy.batch import jobs as batch
    pack = pack or batch.pack
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    shared = {}
    tasks = [pack(j, shared=shared) if pack is batch.pack else pack(j) for j in jobs]
    memory = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    task_bytes = sum(len(pickle.dumps(t)) for t in tasks)
    files = [data for t in tasks for _, data in t.files]
    distinct = {hashlib.sha256(d).hexdigest(): len(d) for d in files}
    own = sum(len(d) for d in files) if "files" in getattr(type(tasks[0]), "__dataclass_fields__", {}) else 0
    return dict(tasks=task_bytes, files_once=sum(distinct.values()), distinct=len(distinct), memory=memory,
                sent=task_bytes if own else task_bytes + sum(distinct.values()),
                per_task_copies=task_bytes - own + sum(len(d) for d in files))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bytes-only", action="store_true", help="only the bytes sent and the client's memory")
    p.add_argument("--jobs", type=int, default=0, help="with --bytes-only: that many jobs of 1 photo x 1 painting "
                   "(style weights 1..N) instead of the grid")
    args, extra = p.parse_known_args(argv)
    jobs = grid_jobs(args.size, args.jobs)
    sent = sent_bytes(jobs)
    print(f"bytes sent for {len(jobs)} jobs: {sent['sent']} (tasks {sent['tasks']}, {sent['distinct']} distinct "
          f"files {sent['files_once']}); one copy of the files per task would be {sent['per_task_copies']}; client "
          f"memory for the packed tasks (tracemalloc): {sent['memory']}")
    if args.bytes_only:
        return 0
    seq, par = os.path.join(args.out, "sequential"), os.path.join(args.out, f"workers{args.workers}")
    base = ["vggnumpy", "batch", *grid_args(args.size), *extra]
    t_seq = timed(base + ["-o", seq, "--sequential"])
    t_par = timed(base + ["-o", par, "--workers", str(args.workers)])
    a, b = pngs(seq), pngs(par)
    same = a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    with open(os.path.join(par, "jobs.json")) as f:
        recs = json.load(f)["jobs"]
    n = len(recs)
    print("\n| run | jobs | seconds | jobs per minute |\n|---|---|---|---|")
    print(f"| one after another (this process, all cores) | {n} | {t_seq:.1f} | {60 * n / t_seq:.2f} |")
    print(f"| LocalCluster, {args.workers} workers x 1 thread | {n} | {t_par:.1f} | {60 * n / t_par:.2f} |")
    print(f"\nthroughput ratio {t_seq / t_par:.2f}x; outputs byte-identical: {same}; sent: {sent['sent']} bytes "
          f"({sent['tasks']} in {n} tasks, {sent['files_once']} in {sent['distinct']} distinct files sent once)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
