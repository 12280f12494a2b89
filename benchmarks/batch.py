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
    python benchmarks/batch.py --out DIR --receipts --size 64 --iterations 2 --workers 2
                                    # runs the grid on a LocalCluster and checks each input file reached each worker
                                    # at most once (the scatter's copy plus each incoming transfer); exit 1 if not
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "images")


def grid_args(size, iterations=None):
    """The grid's command-line arguments (with -n N when iterations is given)."""
    c = [os.path.join(SHARED, "content", n) for n in ("tubingen.jpg", "golden_gate.jpg")]
    s = [os.path.join(SHARED, "style", n) for n in ("starry_night.jpg", "the_scream.jpg")]
    n = ["-n", str(iterations)] if iterations is not None else []
    return ["--contents", *c, "--styles", *s, "--style-weight", "500,2000", "-s", str(size), "--no-progress", *n]


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def pngs(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))
            if n.endswith(".png") and n != "sheet.png"}


def grid_jobs(size, n=0, iterations=None):
    """The benchmark's grid as Jobs (the command line's), or n jobs of the same photo and painting; iterations: -n."""
    from vggnumpy.cli import batch as batch_cli
    from vggnumpy.cli.main import build_parser
    argv = grid_args(size, iterations)
    if n:
        argv = ["--contents", argv[1], "--styles", argv[4], "--style-weight", ",".join(map(str, range(1, n + 1))),
                "-s", str(size), "--no-progress", "--max-jobs", str(max(n, 1000)),
                *(["-n", str(iterations)] if iterations is not None else [])]
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


FILE_KEY = "vggnumpy-file-"          # cluster.scatter_files' keys: FILE_KEY + sha256


def _incoming(dask_worker):
    """[{key: nbytes}] of each transfer this worker received from another (run on every worker by client.run)."""
    return [dict(e["keys"]) for e in dask_worker.transfer_incoming_log]


def count_receipts(placed, logs):
    """{worker: {sha256: times received}}: 1 where the scatter put a file (placed {key: workers}), plus one per
    incoming transfer of it (logs {worker: [{key: nbytes}]}). A key counts by the sha256 after FILE_KEY."""
    from collections import Counter
    counts = {w: Counter() for w in logs}
    for key, holders in placed.items():
        for w in holders:
            counts.setdefault(w, Counter())[key[len(FILE_KEY):][:64]] += 1
    for w, entries in logs.items():
        for keys in entries:
            for key in keys:
                if str(key).startswith(FILE_KEY):
                    counts[w][str(key)[len(FILE_KEY):][:64]] += 1
    return counts


def print_receipts(counts, sizes, failed, fetched):
    """The per-worker table and the verdict lines; True when no file reached any worker more than once."""
    print("\n| worker | files received | bytes of files received | most receipts of one file |\n|---|---|---|---|")
    for w in sorted(counts):
        c = counts[w]
        print(f"| {w} | {sum(c.values())} | {sum(sizes.get(d, 0) * k for d, k in c.items())} | "
              f"{max(c.values(), default=0)} |")
    ok = all(k <= 1 for c in counts.values() for k in c.values())
    if failed:
        print(f"\n{failed} task(s) failed")
    print(f"\nevery task's input files reached the worker that ran it beside the task: {fetched}")
    print(f"each input file reached each worker at most once: {ok}")
    return ok


def _gather(entries, futures):
    """Wait for every task as run.run_dask does, writing each output (run.finish): (failed, {task: worker that
    ran it})."""
    from vggnumpy.batch import cluster, run
    pending, by, ran = list(futures), dict(zip(futures, entries)), {}
    while pending:
        for f in cluster.wait_some(pending):
            pending.remove(f)
            ran.update({by[f].task: w for w in f.client.who_has([f]).get(f.key, ())})
            result, error = cluster.outcome(f)
            run.finish(by[f], result, error)
            f.release()
    return sum(e.record["status"] != "done" for e in entries), ran


def fetched_by_runner(ran, counts):
    """Whether each task's input files were received (scattered or transferred) by a worker that ran it: not so
    when the bytes travel inside the task, which the transfer log would not show."""
    return all(counts.get(w, {}).get(d, 0) >= 1 for t, w in ran.items() for _, d in t.inputs)


def per_worker_receipts(size, workers, iterations):
    """Run the grid on a LocalCluster of `workers` processes and check that each input file reached each worker at
    most once; prints a table per worker; 0 when so (every task ran, its files beside it), else 1."""
    import logging
    import tempfile
    from distributed import Client, LocalCluster
    from vggnumpy.batch import cluster, run
    jobs = grid_jobs(size, iterations=iterations)
    share = str(max(1, cluster.cores() // workers))
    env = {k: share for k in ("VGGNUMPY_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory(prefix="vggnumpy-receipts-") as outdir, \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host=cluster.LOOPBACK,
                         dashboard_address=None, env=env, silence_logs=logging.ERROR) as lc, Client(lc) as client:
        entries, _ = run.plan(jobs, outdir)          # packs each job as run_batch does (batch.pack, shared files)
        todo = [e for e in entries if e.task is not None]
        tasks = [e.task for e in todo]
        files = cluster.scatter_files(client, tasks)
        placed = {k: list(v) for k, v in client.who_has(list(files.values())).items()}
        gpu = [e.job.options.device == "gpu" for e in todo]
        futures = cluster.submit(client, tasks, gpu, log=print, files=files)
        failed, ran = _gather(todo, futures)
        failed += len(entries) - len(todo)
        logs = client.run(_incoming)
    sizes = {d: len(b) for t in tasks for d, b in t.file_data().items()}
    print(f"{len(jobs)} jobs, {len(sizes)} distinct input files ({sum(sizes.values())} bytes), {workers} workers")
    counts = count_receipts(placed, logs)
    fetched = fetched_by_runner(ran, counts)
    ok = print_receipts(counts, sizes, failed, fetched)
    return 0 if ok and fetched and not failed else 1     # a failed task proves nothing about its files: 1 too


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bytes-only", action="store_true", help="only the bytes sent and the client's memory")
    p.add_argument("--jobs", type=int, default=0, help="with --bytes-only: that many jobs of 1 photo x 1 painting "
                   "(style weights 1..N) instead of the grid")
    p.add_argument("--receipts", action="store_true", help="run the grid on a LocalCluster of --workers and check "
                   "each input file reaches each worker at most once")
    p.add_argument("--iterations", type=int, default=2, help="with --receipts: -n for every job (default 2)")
    args, extra = p.parse_known_args(argv)
    if args.receipts:
        return per_worker_receipts(args.size, args.workers, args.iterations)
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
