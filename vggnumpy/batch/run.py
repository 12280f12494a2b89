"""Running a batch: which jobs are already done, the tasks run (on Dask or here), the outputs, DIR/jobs.json, the \
sheet."""
import dataclasses
import json
import os
import time
from dataclasses import dataclass

from . import jobs as batch
from .. import config
from ..files import images
from ..files.paths import atomic_write, make_folder, same_file

RECORDS = "jobs.json"
SHEET = "sheet.png"


@dataclass
class Entry:
    """One job of the batch: the job, its output file, its record in jobs.json, and its task while it has one."""
    job: object
    path: str
    record: dict
    task: object = None


def varied_options(jobs):
    """The option names whose values differ between the jobs (what the file names and the sheet's columns say)."""
    names = [f.name for f in config.fields() if f.name not in ("progress", "print_every")]
    return [n for n in names if len({json.dumps(getattr(j.options, n), default=str) for j in jobs}) > 1]


def check_batch(jobs, max_jobs=None):
    """Refuse, before anything runs, options that write per-run files (one output per job is written), and more
    jobs than max_jobs (default batch.MAX_JOBS)."""
    batch._check_count(len(jobs), batch.MAX_JOBS if max_jobs is None else max_jobs, "the batch")
    for name in batch.NOT_FOR_BATCH:
        if any(getattr(j.options, name) for j in jobs):
            raise batch.BatchError(f"--{name.replace('_', '-')}: not available in a batch (each job writes its "
                                   f"output image; DIR/jobs.json records every job's figures)")


def plan(jobs, outdir, threads=None, max_jobs=None):
    """An Entry per job: done earlier with the same settings (kept), refused (recorded with its error), or to run.
    Every job's inputs and output are checked here, before the first job runs."""
    from ..run.pipeline import check_job
    check_batch(jobs, max_jobs)
    varied = varied_options(jobs)
    old = _old_records(outdir)
    entries, shared = [], {}                # shared: one copy of each distinct input file for all the tasks
    for k, (job, name) in enumerate(zip(jobs, batch.output_names(jobs, varied)), start=1):
        e = Entry(job, os.path.join(outdir, name), dict(output=name, job=json.loads(job.to_json()), status="to do"))
        try:
            _check_output(e, k)
            check_job(dataclasses.replace(job, output=None))
            e.task = batch.pack(job, threads, shared)
        except (ValueError, OSError) as err:
            e.record.update(status="failed", error=str(err))
        else:
            e.record.update(hash=e.task.hash, sent_bytes=e.task.sent_bytes())
            if images.settings_of(e.path) == e.task.hash:
                e.record.update(old.get(e.task.hash, {}), status="done", earlier=True)
                e.task = None
        entries.append(e)
    return entries, varied


RESERVED = {RECORDS: "the batch's records, DIR/jobs.json", SHEET: "the contact sheet, DIR/sheet.png"}
MAX_NAME_BYTES = 255                    # a file name, on every common file system


def _check_output(e, k=None):
    """A job's output must be a plain .png/.jpg/.jpeg file name in the batch's folder, not the records or the sheet,
    not one of the job's inputs, and not a file vggnumpy did not write (never overwritten); else BatchError
    naming the job and the output."""
    name = e.record["output"]
    say = f"job {k}: output {name!r}" if k is not None else f"output {name!r}"
    ext = os.path.splitext(name)[1].lower()
    if name.casefold() in RESERVED:
        raise batch.BatchError(f"{say}: that is {RESERVED[name.casefold()]}; give the job another output name")
    if (os.path.isabs(name) or "/" in name or (os.altsep and os.altsep in name) or os.sep in name
            or name in (".", "..")):
        raise batch.BatchError(f"{say}: not a plain file name; every output goes into the -o folder, so give a name "
                               f"such as out.png, without a folder")
    if ext not in images.WRITABLE or name.casefold() == ext:
        raise batch.BatchError(f"{say}: cannot write '{ext or 'no extension'}' files; end the output name in .png, "
                               f".jpg or .jpeg")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise batch.BatchError(f"{say}: the name is longer than {MAX_NAME_BYTES} bytes, more than file systems "
                               f"allow; give a shorter name")
    for what, path in batch.input_files(e.job):
        if same_file(path, e.path):
            raise batch.BatchError(f"{say}: {e.path} would overwrite the job's {what}; give another output name or "
                                   f"use another -o folder")
    if os.path.isdir(e.path):
        raise batch.BatchError(f"{say}: {e.path} is a folder; move it or give the job another output name")
    if os.path.lexists(e.path) and images.settings_of(e.path) is None:
        raise batch.BatchError(f"{say}: {e.path} exists and was not written by vggnumpy batch; move it or use "
                               f"another -o folder")


def _old_records(outdir):
    """{hash: record} from an earlier run's jobs.json (figures of the jobs a rerun skips), else {}."""
    try:
        with open(os.path.join(outdir, RECORDS), encoding="utf-8") as f:
            rows = json.load(f).get("jobs", [])
        return {r["hash"]: {k: r[k] for k in ("seconds", "evaluations", "iterations", "loss", "weights", "trained")
                            if k in r} for r in rows if r.get("status") == "done" and "hash" in r}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}


def finish(e, result, error=None):
    """Write a finished job's output (PNG or JPEG, its settings hash in the metadata) and fill its record. An output
    that cannot be written fails that job (recorded); the others go on."""
    if error is not None:
        e.record.update(status="cancelled" if error == "cancelled" else "failed", error=error)
        return
    meta = dict(software="vggnumpy batch", settings=e.record["hash"], weights=result["weights"],
                trained=result["trained"], iterations=result["iterations"], evaluations=result["evaluations"],
                loss=f"{result['loss']:.6g}")
    try:
        images.save_image(e.path, result["image"].astype("float32") / 255, meta)     # the same 8-bit values
    except (OSError, ValueError) as err:
        e.record.update(status="failed", error=f"output {e.record['output']!r}: {err}")
        return
    e.record.update(status="done", seconds=round(result["seconds"], 3), evaluations=result["evaluations"],
                    iterations=result["iterations"], loss=float(result["loss"]), weights=result["weights"],
                    trained=result["trained"])


def write_records(outdir, entries, summary):
    """DIR/jobs.json: every job, its output and what became of it (written after each job, atomically)."""
    path = os.path.join(outdir, RECORDS)
    try:
        with atomic_write(path, suffix=".json") as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(dict(software="vggnumpy batch", **summary, jobs=[e.record for e in entries]), f, indent=1)
    except OSError as err:
        raise batch.BatchError(f"{path}: the batch's records cannot be written ({err.strerror or err}); free some "
                               f"space or fix the folder's permissions, then rerun the same command to go on") from None


def run_here(entries, stop, on_done):
    """Each task in turn in this process, retried once; the weights loaded once for all of them."""
    cache = batch.WeightsCache()
    for e in entries:
        if stop():
            finish(e, None, "cancelled")
            continue
        for attempt in (1, 2):
            try:
                result, error = batch.run_task(e.task, cache, stop), None
            except Exception as err:           # the job's own failure: recorded; the others go on
                result, error = None, (str(err) if isinstance(err, (ValueError, OSError))
                                       else f"{type(err).__name__}: {err}")
            if error is None or stop():
                break
        if result is not None and result.get("interrupted"):
            result, error = None, "cancelled"
        finish(e, result, error)
        on_done(e)


def run_dask(entries, client, log, stop, on_done):
    """The tasks sent to Dask (retried once there); results collected as they finish; Ctrl-C cancels the rest."""
    from . import cluster
    gpu = [e.job.options.device == "gpu" for e in entries]
    futures = dict(zip(cluster.submit(client, [e.task for e in entries], gpu, log), entries))
    pending = list(futures)
    while pending:
        if stop():
            client.cancel(pending)
            for f in pending:
                finish(futures[f], None, "cancelled")
            return
        for f in cluster.wait_some(pending):
            pending.remove(f)
            result, error = cluster.outcome(f)
            finish(futures[f], result, error)
            on_done(futures[f])
            f.release()


def summary_of(entries, seconds, how):
    count = lambda s: sum(e.record["status"] == s for e in entries)
    return dict(ran_on=how, seconds=round(seconds, 3), total=len(entries), done=count("done"),
                failed=count("failed"), cancelled=count("cancelled"))


def progress_bar(total, enabled):
    """A tqdm bar counting finished jobs with an ETA (None when off)."""
    if not enabled or not total:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="job", desc="vggnumpy batch", dynamic_ncols=True)


def run_batch(jobs, outdir, scheduler=None, workers=None, sequential=False, processes=True, log=print,
              stop=None, progress=True, sheet=True, max_jobs=None, dashboard=None):
    """Run every job into `outdir`: (entries, summary). Dask when installed (a LocalCluster, or `scheduler`),
    else (or with sequential) one after another here. Rerunning skips the jobs done with the same settings.
    The folder, and every job's inputs and output, are checked before the first job runs."""
    stop = stop or (lambda: "")
    check_outdir(outdir, sheet)
    entries, varied = plan(jobs, outdir, max_jobs=max_jobs)
    make_folder(outdir, "output folder (-o)")
    todo = [e for e in entries if e.task is not None]
    log(f"vggnumpy batch: {len(entries)} jobs: {len(todo)} to run, "
        f"{sum(e.record['status'] == 'done' for e in entries)} done before, "
        f"{sum(e.record['status'] == 'failed' for e in entries)} refused")
    how, client, cl = _engine(todo, scheduler, workers, sequential, processes, log, dashboard)
    start, bar = time.perf_counter(), progress_bar(len(todo), progress)

    def on_done(e):
        if bar is not None:
            bar.update(1)
        write_records(outdir, entries, summary_of(entries, time.perf_counter() - start, how))

    try:
        if client is None:
            run_here(todo, stop, on_done)
        else:
            run_dask(todo, client, log, stop, on_done)
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()
            if cl is not None:
                cl.close()
    summary = summary_of(entries, time.perf_counter() - start, how)
    write_records(outdir, entries, summary)
    untrained = sum(e.record.get("trained") is False for e in entries)
    if untrained:
        log(f"vggnumpy batch: WARNING: {untrained} job(s) ran an UNTRAINED network (random weights), not pretrained "
            f"VGG; see 'vggnumpy weights download'")
    if sheet:
        draw_sheet(entries, varied, os.path.join(outdir, SHEET))
    return entries, summary


def check_outdir(outdir, sheet=True):
    """Refuse, before anything is read or run, an output folder that is a file, is not writable (or would be made
    in a folder that is not), or holds a folder where jobs.json (or sheet.png) goes."""
    say = f"-o {outdir}"
    if os.path.lexists(outdir) and not os.path.isdir(outdir):
        raise batch.BatchError(f"{say}: that is an existing file, not a folder; give a folder for the outputs "
                               f"(it is made when missing)")
    if os.path.isdir(outdir):
        if not os.access(outdir, os.W_OK | os.X_OK):
            raise batch.BatchError(f"{say}: the output folder {outdir} is not writable; choose a folder you can "
                                   f"write to, or change its permissions")
        for name in (RECORDS, SHEET) if sheet else (RECORDS,):
            path = os.path.join(outdir, name)
            if os.path.lexists(path) and not os.path.isfile(path):     # a named pipe would block reading it
                raise batch.BatchError(f"{path}: a folder or another non-regular file is in the way of "
                                       f"{RESERVED[name]}; move it or use another -o folder")
        return
    parent = os.path.dirname(os.path.abspath(outdir))
    while not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise batch.BatchError(f"{say}: {parent} is a file, not a folder, so the output folder cannot be made "
                               f"there; give another -o folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise batch.BatchError(f"{say}: the output folder would be made in {parent}, which is not writable; "
                               f"choose a folder you can write to")


def _engine(todo, scheduler, workers, sequential, processes, log, dashboard=None):
    """('dask ...' or 'sequential', client or None, cluster or None) for the tasks to run; dashboard: HOST:PORT of
    the LocalCluster's dashboard (default 127.0.0.1:0, this machine only)."""
    if not todo:
        return "nothing to run", None, None
    if sequential:
        return "sequential (this process)", None, None
    from . import cluster
    try:
        cluster.require()
    except ImportError as e:
        if scheduler:
            raise batch.BatchError(f"--scheduler {scheduler}: {e}") from None
        log(f"vggnumpy batch: {e}; running the jobs one after another in this process")
        return "sequential (this process; Dask not installed)", None, None
    client, cl = cluster.connect(scheduler, workers, processes, log, dashboard)
    return (f"dask scheduler {scheduler}" if scheduler else f"dask LocalCluster, {len(cl.workers)} workers"), client, cl


def draw_sheet(entries, varied, path):
    """DIR/sheet.png: the photos as rows, the paintings and settings as columns, each output in its cell."""
    from .sheet import contact_sheet
    stem = lambda p: os.path.splitext(os.path.basename(p))[0]
    rows, cols, cells = [], [], {}
    for e in entries:
        col_key = (e.job.styles, tuple(json.dumps(getattr(e.job.options, n), default=str) for n in varied))
        if e.job.content not in [r[1] for r in rows]:
            rows.append((stem(e.job.content), e.job.content))
        if col_key not in [c[2] for c in cols]:
            label = "+".join(stem(s) for s in e.job.styles)
            label += "".join(f", {n.replace('_', ' ')} {batch.value_text(getattr(e.job.options, n))}" for n in varied)
            cols.append((label, list(e.job.styles), col_key))
        r = [x[1] for x in rows].index(e.job.content)
        c = [x[2] for x in cols].index(col_key)
        st = e.record["status"]
        cells[(r, c)] = e.path if st == "done" else (None if st == "to do" else f"{st}: {e.record.get('error', '')}")
    contact_sheet(path, rows, [(label, styles) for label, styles, _ in cols], cells)
