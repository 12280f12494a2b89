"""Many pictures in one command: a job file or a grid of photos x paintings x settings, each job a small task.

The jobs are config.Job descriptions. Each becomes a Task: the job as JSON and the bytes of its input files
(photo, paintings, masks, init image), so a worker needs no shared folder; the weights are never sent, each
worker loads them once (WeightsCache) from the job's weights file or its own cache. run_task runs one Task
anywhere and returns the image and its figures; the client writes every output (a PNG whose metadata holds the
job's hash, so a rerun skips it) and DIR/jobs.json. cluster.py sends the tasks to Dask; without Dask they run
here, one after another, with the same result.
"""
import dataclasses
import hashlib
import itertools
import json
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass

from . import config, images

INPUTS = ("content", "styles", "init_image", "masks", "style_masks")    # the job's input files, in this order
NOT_FOR_BATCH = ("gif", "save_every", "trace", "plot", "frame_loss")
HASH_KEY = "settings"                    # PNG text key (vggnumpy:settings), as video frames use


class BatchError(ValueError):
    """A batch that cannot be run as given; the message names the file or option."""


def read_job_file(path):
    """A JSON (or YAML, with PyYAML) list of job descriptions, each as config.Job.to_json writes one."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise BatchError(f"{path}: job file cannot be read ({e.strerror or e})") from None
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise BatchError(f"{path}: a YAML job file needs PyYAML: pip install 'vggnumpy[dist]' (or pyyaml), "
                             f"or write the jobs as JSON") from None
        try:
            items = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise BatchError(f"{path}: not valid YAML ({e})") from None
    else:
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise BatchError(f"{path}: not valid JSON ({e})") from None
    if isinstance(items, dict) and isinstance(items.get("jobs"), list):       # an earlier batch's DIR/jobs.json
        items = [r.get("job") if isinstance(r, dict) else r for r in items["jobs"]]
    if not isinstance(items, list) or not items:
        raise BatchError(f"{path}: a job file holds a non-empty list of jobs, each with 'content' and 'styles' "
                         f"(or is the jobs.json an earlier batch wrote)")
    base = os.path.dirname(os.path.abspath(path))
    return [_job_of(item, k, path, base) for k, item in enumerate(items, start=1)]


def _job_of(item, k, path, base):
    """Job number k of a job file; relative input paths are read from the job file's folder."""
    try:
        job = config.Job.from_json(json.dumps(item))
    except (config.OptionError, TypeError) as e:
        raise BatchError(f"{path}: job {k}: {e}") from None
    at = lambda p: p if p is None or os.path.isabs(p) else os.path.join(base, p)
    o = job.options
    o = dataclasses.replace(o, init_image=at(o.init_image), weights=at(o.weights),
                            masks=tuple(map(at, o.masks)) if o.masks else None,
                            style_masks=tuple(map(at, o.style_masks)) if o.style_masks else None)
    return config.Job(at(job.content), tuple(at(s) for s in job.styles), job.output, o)


def grid(contents, styles, varied, fixed):
    """Jobs for every photo x style x combination of the varied options (their product), in that order.

    styles: a list of tuples of paths (a tuple of several: a blend); varied {option name: [values]};
    fixed {option name: value}, the same for every job."""
    names = list(varied)
    jobs = []
    at = os.path.abspath                # the jobs are kept (DIR/jobs.json) and may be run from elsewhere
    paths = {f.name for f in config.fields() if f.metadata["kind"] in ("path", "paths")}
    fixed = {k: (v if k not in paths or v is None else at(v) if isinstance(v, str) else tuple(map(at, v)))
             for k, v in fixed.items()}
    contents, styles = [at(c) for c in contents], [tuple(map(at, s)) for s in styles]
    for content, style in itertools.product(contents, styles):
        for values in itertools.product(*(varied[n] for n in names)):
            opts = dict(fixed, **dict(zip(names, values)))
            jobs.append(config.Job(content, tuple(style), None, config.make(**opts)))
    return jobs


def input_files(job):
    """[(what, path)] of every file a job reads (the weights excepted: workers load them themselves)."""
    o = job.options
    out = [("content image", job.content)] + [("style image", s) for s in job.styles]
    out += [("init image", o.init_image)] if o.init_image else []
    out += [("mask", m) for m in o.masks or ()] + [("style image mask", m) for m in o.style_masks or ()]
    return out


def job_hash(job, digests):
    """A hash of what decides a job's pixels: its options (not the progress ones), input names and contents."""
    opts = {k: v for k, v in dataclasses.asdict(job.options).items() if k not in ("progress", "print_every")}
    for k in ("init_image", "masks", "style_masks"):
        opts.pop(k)
    text = json.dumps(dict(options=opts, inputs=digests), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _slug(text):
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-")[:60] or "x"


def output_names(jobs, varied):
    """One file name per job that says its settings: CONTENT__STYLE[+STYLE]__option=value...png; the job's own
    output name when its description gives one. Names that would repeat get a number."""
    stem = lambda p: os.path.splitext(os.path.basename(p))[0]
    names, seen = [], {}
    for job in jobs:
        if job.output:
            name = os.path.basename(job.output)
        else:
            parts = [_slug(stem(job.content)), _slug("+".join(stem(s) for s in job.styles))]
            parts += [_slug(f"{n.replace('_', '-')}={value_text(getattr(job.options, n))}") for n in varied]
            name = "__".join(parts) + ".png"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{os.path.splitext(name)[0]}__{seen[name]}.png")
    return names


def value_text(v):
    """An option's value as a file name or a label says it: 5 for 5.0, a list joined by commas."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return ",".join(map(value_text, v))
    return str(v)


@dataclass(frozen=True)
class Task:
    """What one job sends to a worker: its JSON, its input files' bytes (by position in input_files), the hash
    its output records and the threads it may use. Small: under 10 KB besides the files (benchmarks/batch.py)."""
    key: str
    job: str
    files: tuple                    # (file name, bytes) per input file
    hash: str
    threads: int = None


def pack(job, threads=None):
    """The Task of a job; its input files are read here (a missing one: ImageError naming it)."""
    files, digests = [], []
    for what, path in input_files(job):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise images.ImageError(f"{path}: {what} file not found; check the path") from None
        except OSError as e:
            raise images.ImageError(f"{path}: {what} cannot be read ({e.strerror or e})") from None
        files.append((os.path.basename(path), data))
        digests.append(hashlib.sha256(data).hexdigest())
    h = job_hash(job, digests)
    return Task(key=f"vggnumpy-{h}", job=job.to_json(), files=tuple(files), hash=h, threads=threads)


def _unpack(task, folder):
    """The Task's job with its inputs written into `folder` (as k_NAME), and a map back to the original paths."""
    job = config.Job.from_json(task.job)
    originals = [p for _, p in input_files(job)]
    local = []
    for k, (name, data) in enumerate(task.files):
        path = os.path.join(folder, f"{k}_{name}")
        with open(path, "wb") as f:
            f.write(data)
        local.append(path)
    it = iter(local)
    o = job.options
    content, styles = next(it), tuple(next(it) for _ in job.styles)
    o = dataclasses.replace(o, init_image=next(it) if o.init_image else None,
                            masks=tuple(next(it) for _ in o.masks) if o.masks else None,
                            style_masks=tuple(next(it) for _ in o.style_masks) if o.style_masks else None,
                            progress=False)
    return config.Job(content, styles, None, o), dict(zip(local, originals))


class WeightsCache:
    """Loaded weights by (file, arch): each worker loads a network once, however many jobs it runs."""

    def __init__(self):
        self.loaded = {}

    def get(self, path, arch, log=None):
        from .api import resolve_weights
        key = (path, arch)
        if key not in self.loaded:
            self.loaded[key] = resolve_weights(path, arch, log or (lambda m: None))
        return self.loaded[key]


def run_task(task, cache=None, stop=None):
    """Run one Task (on a worker, or here): {image (H, W, 3) uint8 (what the PNG holds), seconds, evaluations, iterations, loss,
    weights, trained, interrupted}. An error is raised with the job's own file names in its message.
    stop() -> a reason ends the job early (its result then says `interrupted`)."""
    from .api import run
    cache = cache if cache is not None else worker_cache()
    with tempfile.TemporaryDirectory(prefix="vggnumpy-job-") as tmp:
        job, names = _unpack(task, tmp)
        start = time.perf_counter()
        try:
            w = cache.get(job.options.weights, job.options.arch)
            with warnings.catch_warnings():          # the record says `trained`; the client warns once for all
                warnings.simplefilter("ignore", UserWarning)
                res = run(job, weights=w, log=lambda m: None, stop=stop, threads=task.threads or worker_threads())
        except (ValueError, OSError) as e:
            text = str(e)
            for local, original in names.items():
                text = text.replace(local, original)
            raise _same_kind(e, text) from None
    return dict(image=images.to_uint8(res.image), seconds=time.perf_counter() - start, evaluations=res.evaluations,
                iterations=res.iterations, loss=res.loss, weights=res.weights, trained=res.trained,
                interrupted=res.interrupted)


def _same_kind(e, text):
    """An exception of e's type with another message (a ValueError when the type takes other arguments)."""
    try:
        return type(e)(text)
    except TypeError:
        return ValueError(text)


def worker_threads():
    """Threads for the NumPy kernels in a Dask worker process: $VGGNUMPY_THREADS, else $OMP_NUM_THREADS (which
    Dask's nanny sets to 1 in each worker); None outside a worker (the usual: every usable core)."""
    try:
        from distributed import get_worker
        get_worker()
    except (ImportError, ValueError):
        return None
    for name in ("VGGNUMPY_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(name, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return None


def worker_cache():
    """The weights cache of the Dask worker this runs on (its plugin's), or a new one outside Dask."""
    try:
        from distributed import get_worker
        plugin = get_worker().plugins.get("vggnumpy-weights")
        if plugin is not None:
            return plugin.cache
    except (ImportError, ValueError):
        pass
    return WeightsCache()
