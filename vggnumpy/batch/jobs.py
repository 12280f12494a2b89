"""Many pictures in one command: a job file or a grid of photos x paintings x settings, each job a small task.

The jobs are config.Job descriptions. Each becomes a Task: the job as JSON and the names and sha256 of its input
files (photo, paintings, masks, init image); their bytes are read once per distinct file and sent once to the
cluster beside the tasks, so a worker needs no shared folder; the weights are never sent, each
worker loads them once (WeightsCache) from the job's weights file or its own cache. run_task runs one Task
anywhere and returns the image and its figures; the client writes every output (a PNG whose metadata holds the
job's hash, so a rerun skips it) and DIR/jobs.json. cluster.py sends the tasks to Dask; without Dask they run
here, one after another, with the same result.
"""
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field

from .. import config
from ..files import images

INPUTS = ("content", "styles", "init_image", "masks", "style_masks")    # the job's input files, in this order
NOT_FOR_BATCH = ("gif", "save_every", "trace", "plot", "frame_loss")
HASH_KEY = "settings"                    # PNG text key (vggnumpy:settings), as video frames use


class BatchError(ValueError):
    """A batch that cannot be run as given; the message names the file or option."""


MAX_JOBS = 1000                          # jobs in a grid or a job file unless --max-jobs says more
MAX_JOB_FILE_BYTES = 10_000_000          # a job file's size: a job is a few hundred bytes
MAX_JOB_NODES = 20_000_000               # a job file's data once YAML aliases are expanded: values + characters
MAX_JOB_DEPTH = 32                       # nesting of a job file's data (a job needs 4)
JOB_FIELDS = ("content", "styles", "output", "options")


def read_job_file(path, max_jobs=None):
    """A JSON (or YAML, with PyYAML) list of job descriptions, each as config.Job.to_json writes one.

    Bounded before anything is expanded: the file's size (MAX_JOB_FILE_BYTES), its data once YAML aliases are
    expanded (MAX_JOB_NODES, counted on the node graph before it is constructed), its nesting and the number of
    jobs (max_jobs, default MAX_JOBS). Every field of every job is checked; errors name the file, the job and
    the field."""
    from ..files.paths import InputError, check_input
    max_jobs = MAX_JOBS if max_jobs is None else max_jobs
    try:
        check_input("job list", path)            # a named pipe would block open() for ever
        with open(path, "rb") as f:
            data = f.read(MAX_JOB_FILE_BYTES + 1)
    except InputError as e:
        raise BatchError(str(e)) from None
    except OSError as e:
        raise BatchError(f"{path}: job file cannot be read ({e.strerror or e})") from None
    except ValueError as e:                      # a NUL in the name
        raise BatchError(f"{path!r}: job file cannot be read ({e}); check the name") from None
    if len(data) > MAX_JOB_FILE_BYTES:
        raise BatchError(f"{path}: the job file is larger than {MAX_JOB_FILE_BYTES:,} bytes, the most a batch "
                         f"reads; split it into several job files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BatchError(f"{path}: the job file is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    if path.lower().endswith((".yaml", ".yml")):
        items = _load_yaml(text, path)
    else:
        try:
            items = json.loads(text)
        except RecursionError:
            raise BatchError(f"{path}: the job file is nested too deeply to read (more than {MAX_JOB_DEPTH} "
                             f"levels are never needed); fix the file") from None
        except ValueError as e:                  # JSONDecodeError, or an integer of too many digits
            raise BatchError(f"{path}: not valid JSON ({e})") from None
        _bound(items, path)
    if isinstance(items, dict) and isinstance(items.get("jobs"), list):       # an earlier batch's DIR/jobs.json
        items = [r.get("job") if isinstance(r, dict) else r for r in items["jobs"]]
    if not isinstance(items, list) or not items:
        raise BatchError(f"{path}: a job file holds a non-empty list of jobs, each with 'content' and 'styles' "
                         f"(or is the jobs.json an earlier batch wrote)")
    _check_count(len(items), max_jobs, f"{path}: the job file")
    base = os.path.dirname(os.path.abspath(path))
    return [_job_of(item, k, path, base) for k, item in enumerate(items, start=1)]


def _check_count(n, max_jobs, what):
    if n > max_jobs:
        raise BatchError(f"{what} makes {n} jobs, more than the {max_jobs} a batch runs unless --max-jobs says "
                         f"more (each job's input files are read into memory before the first runs); give "
                         f"--max-jobs {n} to run them all, or split the batch")


def _load_yaml(text, path):
    """The data of a YAML job file, refused before construction when its aliases expand past MAX_JOB_NODES."""
    try:
        import yaml
    except ImportError:
        raise BatchError(f"{path}: a YAML job file needs PyYAML: pip install 'vggnumpy[dist]' (or pyyaml), "
                         f"or write the jobs as JSON") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, path)
        return loader.construct_document(node)
    except BatchError:
        raise
    except yaml.YAMLError as e:
        raise BatchError(f"{path}: not valid YAML ({e})") from None
    except RecursionError:
        raise BatchError(f"{path}: the job file is nested too deeply to read (more than {MAX_JOB_DEPTH} levels "
                         f"are never needed); fix the file") from None
    except (ValueError, TypeError, OverflowError) as e:     # a value PyYAML cannot construct
        raise BatchError(f"{path}: not valid YAML ({e})") from None
    finally:
        loader.dispose()


def _too_big(path):
    return BatchError(f"{path}: the job file's data expands to more than {MAX_JOB_NODES:,} values and characters "
                      f"(YAML aliases repeat what they name; a billion-laughs file), the most a batch reads; write "
                      f"the jobs out or split the file")


def _too_deep(path):
    return BatchError(f"{path}: the job file is nested more than {MAX_JOB_DEPTH} levels deep (a job needs 4), or "
                      f"a YAML alias refers to itself; fix the file")


def _expanded_size(root, path):
    """The size of a YAML node graph with every alias expanded (nodes + scalar characters) and its nesting, each
    node counted once (memoised), without recursion; BatchError past MAX_JOB_NODES or MAX_JOB_DEPTH, or on a
    cycle (an alias inside what it names)."""
    import yaml
    size, height, open_ = {}, {}, set()
    stack = [root]
    while stack:
        node = stack.pop()
        key = id(node)
        if key in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[key], height[key] = 1 + len(node.value), 1
            continue
        children = [c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode) else list(node.value)
        if key not in open_:                         # first visit: its children first, then this node again
            open_.add(key)
            stack.append(node)
            stack.extend(c for c in children if id(c) not in size)
            continue
        if any(id(c) not in size for c in children):     # a child still open: the graph has a cycle
            raise _too_deep(path)
        size[key] = 1 + sum(size[id(c)] for c in children)
        height[key] = 1 + max((height[id(c)] for c in children), default=0)
        if size[key] > MAX_JOB_NODES:
            raise _too_big(path)
        if height[key] > MAX_JOB_DEPTH:
            raise _too_deep(path)
    return size[id(root)]


def _bound(data, path):
    """JSON data: nesting at most MAX_JOB_DEPTH (its size is bounded by the file's)."""
    stack = [(data, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_JOB_DEPTH:
            raise _too_deep(path)
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def _kind_text(v):
    """What a wrong value is, as a message says it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"{str(v).lower()} (true/false)"
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the text {v[:60]!r}"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return f"a {type(v).__name__} ({str(v)[:40]})"


def _file_name(v):
    return isinstance(v, str) and v != "" and "\0" not in v


def _check_option(name, v, where):
    """One option of a job file, checked by config.check_field (the checks the command line and stylize use), else
    BatchError naming the file, the job and the option."""
    f = next(f for f in config.fields() if f.name == name)
    try:
        config.check_field(f, v)
    except (ValueError, TypeError) as e:        # OptionError; a value parse_bytes cannot read
        raise BatchError(f"{where}: option '{name}': {e}; fix the job file") from None


def _check_item(item, where):
    """A job file's job: an object of JOB_FIELDS with values of the right types, else BatchError naming the field."""
    if not isinstance(item, dict):
        raise BatchError(f"{where}: expected an object with 'content' and 'styles' (and 'output', 'options'), got "
                         f"{_kind_text(item)}; fix the job file")
    unknown = [k for k in item if k not in JOB_FIELDS]
    if unknown:
        raise BatchError(f"{where}: unknown field(s) {', '.join(map(repr, map(str, unknown)))}; a job has "
                         f"{', '.join(JOB_FIELDS)}")
    bad = lambda field, expected: BatchError(f"{where}: '{field}': expected {expected}, got "
                                             f"{_kind_text(item.get(field))}; fix the job file")
    if not _file_name(item.get("content")):
        raise bad("content", "the photo's file name")
    styles = item.get("styles")
    if not isinstance(styles, list) or not styles or not all(_file_name(s) for s in styles):
        raise bad("styles", "a non-empty list of the paintings' file names, e.g. [\"starry.jpg\"]")
    if item.get("output") is not None and not _file_name(item["output"]):
        raise bad("output", "a file name such as \"out.png\" (or null: a name that says the settings)")
    options = item.get("options")
    if options is None:
        return
    if not isinstance(options, dict):
        raise bad("options", "an object of option names and values, e.g. {\"size\": 512}")
    names = {f.name for f in config.fields()}
    unknown = [k for k in options if k not in names]
    if unknown:
        raise BatchError(f"{where}: unknown option(s) {', '.join(map(repr, map(str, unknown)))} in 'options'; "
                         f"the options are {', '.join(sorted(names))}")
    for name, v in options.items():
        _check_option(name, v, where)


def _job_of(item, k, path, base):
    """Job number k of a job file, every field checked; relative input paths are read from the job file's folder."""
    where = f"{path}: job {k}"
    _check_item(item, where)
    try:
        job = config.Job.from_json(json.dumps(item))
    except (ValueError, TypeError, OverflowError) as e:
        raise BatchError(f"{where}: {e}") from None
    at = lambda p: p if p is None or os.path.isabs(p) else os.path.join(base, p)
    o = job.options
    o = dataclasses.replace(o, init_image=at(o.init_image), weights=at(o.weights),
                            masks=tuple(map(at, o.masks)) if o.masks else None,
                            style_masks=tuple(map(at, o.style_masks)) if o.style_masks else None)
    return config.Job(at(job.content), tuple(at(s) for s in job.styles), job.output, o)


def grid(contents, styles, varied, fixed, max_jobs=None):
    """Jobs for every photo x style x combination of the varied options (their product), in that order.

    styles: a list of tuples of paths (a tuple of several: a blend); varied {option name: [values]};
    fixed {option name: value}, the same for every job. More than max_jobs (default MAX_JOBS): BatchError,
    before any job is made."""
    names = list(varied)
    n = len(contents) * len(styles)
    for name in names:
        n *= len(varied[name])
    what = " x ".join([f"{len(contents)} photo(s)", f"{len(styles)} painting(s)"]
                      + [f"{len(varied[k])} --{k.replace('_', '-')} values" for k in names])
    _check_count(n, MAX_JOBS if max_jobs is None else max_jobs, f"the grid ({what})")
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


MAX_NAME_BYTES = 200        # a made-up name longer than this is cut and given a hash (file systems allow 255)


def output_names(jobs, varied):
    """One file name per job that says its settings: CONTENT__STYLE[+STYLE]__option=value...png; the job's own
    output when its description gives one (as given: batch_run refuses one that is not a plain file name).

    No two names are the same, compared without case (a macOS or Windows folder): a name asked for again is
    numbered NAME__2.EXT, NAME__3.EXT..., skipping every name another job asks for or already has, so the same
    jobs get the same names on every run."""
    stem = lambda p: os.path.splitext(os.path.basename(p))[0]
    wanted = []
    for job in jobs:
        if job.output:
            name = job.output
        else:
            parts = [_slug(stem(job.content)), _slug("+".join(stem(s) for s in job.styles))]
            parts += [_slug(f"{n.replace('_', '-')}={value_text(getattr(job.options, n))}") for n in varied]
            name = "__".join(parts) + ".png"
            if len(name.encode()) > MAX_NAME_BYTES:
                digest = hashlib.sha256(name.encode()).hexdigest()[:12]
                name = name[:MAX_NAME_BYTES - 20] + "__" + digest + ".png"
        wanted.append(name)
    asked = {n.casefold() for n in wanted}
    taken, names = set(), []
    for name in wanted:
        if name.casefold() in taken:
            root, ext = os.path.splitext(name)
            k = 2
            while f"{root}__{k}{ext}".casefold() in asked or f"{root}__{k}{ext}".casefold() in taken:
                k += 1
            name = f"{root}__{k}{ext}"
        taken.add(name.casefold())
        names.append(name)
    return names


def value_text(v):
    """An option's value as a file name or a label says it: 5 for 5.0, a list joined by commas."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return ",".join(map(value_text, v))
    return str(v)


class Blob:
    """One input file's bytes, shared by every Task that reads the file (batch.pack keeps one per sha256)."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


@dataclass(frozen=True)
class Task:
    """What one job sends to a worker: its JSON, its input files' names and sha256 (by position in input_files),
    the hash its output records and the threads it may use. Pickled (sent) it is small, under 10 KB: the files'
    bytes are not in it. On the client `blobs` holds them, one Blob per distinct file for all the tasks; Dask
    gets each file once (cluster.scatter_files) and run_task its bytes beside the task."""
    key: str
    job: str
    inputs: tuple                   # (file name, sha256 hex) per input file
    hash: str
    threads: int = None
    blobs: tuple = field(default=None, compare=False, repr=False)     # Blob per input file, on the client only

    def __getstate__(self):
        state = dict(self.__dict__)
        state["blobs"] = None       # never sent: the files travel once each, beside the tasks
        return state

    @property
    def files(self):
        """((file name, bytes), ...) per input file, on the client (where the Task was packed)."""
        if self.blobs is None:
            raise ValueError("this Task's file bytes are not here (only on the client that packed it); pass them "
                             "to run_task(files=...)")
        return tuple((name, b.data) for (name, _), b in zip(self.inputs, self.blobs))

    def file_data(self):
        """{sha256: bytes} of this task's input files (on the client)."""
        return {d: data for (_, d), (_, data) in zip(self.inputs, self.files)}

    def sent_bytes(self):
        """{task: bytes of the pickled task, files: bytes of its input files (sent once per distinct file)}."""
        import pickle
        return dict(task=len(pickle.dumps(self)), files=sum(len(b.data) for b in self.blobs or ()))


def pack(job, threads=None, shared=None):
    """The Task of a job; its input files are read here (a missing one, or one that is not a regular file:
    ImageError naming it). shared: the caller's {sha256: Blob} of the batch's files, so that the bytes of a file
    packed before are shared, not copied: 5000 jobs of 2 photos hold 2 photos."""
    from ..files.paths import InputError, check_input
    inputs, blobs = [], []
    shared = {} if shared is None else shared
    for what, path in input_files(job):
        try:
            check_input(what, path)                  # a named pipe would block open() for ever
            with open(path, "rb") as f:
                data = f.read()
        except InputError as e:
            raise images.ImageError(str(e)) from None
        except OSError as e:
            raise images.ImageError(f"{path}: {what} cannot be read ({e.strerror or e})") from None
        digest = hashlib.sha256(data).hexdigest()
        blob = shared.get(digest)
        if blob is None:
            blob = shared[digest] = Blob(data)
        inputs.append((os.path.basename(path), digest))
        blobs.append(blob)
    h = job_hash(job, [d for _, d in inputs])
    return Task(key=f"vggnumpy-{h}", job=job.to_json(), inputs=tuple(inputs), hash=h, threads=threads,
                blobs=tuple(blobs))


def _unpack(task, folder, files=None):
    """The Task's job with its inputs written into `folder` (as k_NAME), and a map back to the original paths.
    files: the bytes of each input file in order (from the cluster), else the Task's own (on the client)."""
    job = config.Job.from_json(task.job)
    originals = [p for _, p in input_files(job)]
    datas = [data for _, data in task.files] if files is None else list(files)
    if len(datas) != len(task.inputs):
        raise ValueError(f"a task of {len(task.inputs)} input files got {len(datas)}")
    local = []
    for k, ((name, digest), data) in enumerate(zip(task.inputs, datas)):
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"{originals[k] if k < len(originals) else name}: the bytes received are not the "
                             f"file's (sha256 differs); rerun the batch")
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
        from ..run.pipeline import resolve_weights
        key = (path, arch)
        if key not in self.loaded:
            self.loaded[key] = resolve_weights(path, arch, log or (lambda m: None))
        return self.loaded[key]


def run_task(task, cache=None, stop=None, files=None):
    """Run one Task (on a worker, or here): {image (H, W, 3) uint8 (what the PNG holds), seconds, evaluations,
    iterations, loss, weights, trained, interrupted}. An error is raised with the job's own file names in its message.
    stop() -> a reason ends the job early (its result then says `interrupted`). files: the bytes of the task's
    input files in order (Dask passes the scattered ones); here, where it was packed, the Task's own."""
    from ..run.pipeline import run
    cache = cache if cache is not None else worker_cache()
    with tempfile.TemporaryDirectory(prefix="vggnumpy-job-") as tmp:
        job, names = _unpack(task, tmp, files)
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
