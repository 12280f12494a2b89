"""The `vggnumpy batch` subcommand: a job file or a grid of photos x paintings x option values, into one folder."""
import os

from .. import config
from ..files.log import stderr
from .options import comma_list

GRID_KINDS = ("int", "float")          # options a grid may give as a list of values (--style-weight 2,5,10)


def _grid_type(f):
    """The type= of a grid option (a list of values, e.g. --style-weight 2,5,10), or None for another option."""
    if not _is_grid_field(f):
        return None
    choices = f.metadata["choices"]
    if choices:
        def choice(v):
            if v not in choices:
                raise ValueError(v)
            return v
        msg = f"choose from {', '.join(choices)} (several separated by commas)"
        return comma_list(choice, msg, empty=msg)
    return comma_list(int if f.metadata["kind"] == "int" else float, "expected a number, or several separated by "
                      "commas", empty="expected a number")


def add_parser(sub):
    from .options import add_style_options
    p = sub.add_parser("batch", help="make many pictures: a job file, or every photo x painting x option value; on "
                       "Dask when installed (all cores, or a cluster); rerun the same command to resume",
                       description="Run a grid of jobs (--contents x --styles x every list of option values, e.g. "
                       "--style-weight 100,1000) or the jobs of a JSON/YAML file, writing one PNG per job into -o DIR, "
                       "DIR/jobs.json (every job and its figures or error) and DIR/sheet.png (a contact sheet). "
                       "With Dask (pip install 'vggnumpy[dist]') the jobs run on a LocalCluster, one single-threaded "
                       "worker process per core, or on --scheduler ADDRESS.")
    p.add_argument("jobfile", nargs="?", help="a JSON or YAML list of jobs: {content, styles, options} as "
                   "vggnumpy.config.Job.to_json writes them; relative paths from the file's folder")
    p.add_argument("--contents", nargs="+", metavar="PHOTO", help="the photos: the sheet's rows")
    p.add_argument("--styles", nargs="+", metavar="STYLE", help="the paintings: one column each; A.jpg+B.jpg is a "
                   "blend of two")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder for the outputs, jobs.json and "
                   "sheet.png (made when missing)")
    g = p.add_argument_group("where the jobs run")
    g.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                   "(workers must have vggnumpy installed; they load the weights themselves)")
    g.add_argument("--workers", type=int, metavar="N", help="LocalCluster worker processes (default: one per core; "
                   "at most 4 per core)")
    g.add_argument("--dashboard-address", metavar="HOST:PORT", help="where the LocalCluster's Dask dashboard listens "
                   "(default 127.0.0.1:0: this machine only, a free port; its scheduler and workers always listen on "
                   "127.0.0.1). Another address, e.g. 0.0.0.0:8787, exposes to anyone who can reach it, without a "
                   "password: the scheduler's identity, the workers' folders, memory, logs and exceptions")
    g.add_argument("--sequential", action="store_true", help="run the jobs one after another in this process, "
                   "even when Dask is installed")
    g.add_argument("--no-sheet", dest="sheet", action="store_false", help="do not draw DIR/sheet.png")
    g.add_argument("--max-jobs", type=int, metavar="N", help="run at most N jobs; a grid or job file that makes more "
                   "is refused before anything runs (default 1000)")
    add_style_options(p, grid=_grid_type)           # the grid's options take a list of values
    p.set_defaults(func=cmd_batch)
    return p


def _field(name):
    return next((f for f in config.fields() if f.name == name), None)


def _styles(items):
    """Each --styles item as a tuple of paths: A+B is a blend when A+B itself is not a file."""
    out = []
    for s in items:
        parts = s.split("+")
        out.append(tuple(parts) if not os.path.exists(s) and len(parts) > 1 and all(parts) else (s,))
    return out


def jobs_of(args):
    """The jobs the command line asks for: the job file's, or the grid's."""
    from ..batch.jobs import BatchError, grid, read_job_file
    from .options import options_of
    opts = options_of(args)
    for k in ("progress",):
        opts.pop(k, None)
    if args.jobfile:
        if args.contents or args.styles or opts:
            raise BatchError(f"{args.jobfile}: with a job file, give the photos, paintings and options in the file, "
                             f"not on the command line "
                             f"({', '.join(['--contents'] * bool(args.contents) + list(opts))})")
        return read_job_file(args.jobfile, max_jobs=_max_jobs(args))
    if not args.contents or not args.styles:
        raise BatchError("give a job file, or --contents PHOTO... and --styles PAINTING...")
    varied = {k: v for k, v in opts.items() if isinstance(v, list) and _is_grid(k)}
    fixed = {k: v for k, v in opts.items() if k not in varied}
    return grid(args.contents, _styles(args.styles), varied, fixed, max_jobs=_max_jobs(args))


def _max_jobs(args):
    """--max-jobs N (at least 1), else None: batch.MAX_JOBS."""
    n = getattr(args, "max_jobs", None)
    if n is not None and n < 1:
        raise config.OptionError(f"--max-jobs {n}: give at least 1")
    return n


def _is_grid(name):
    return _is_grid_field(_field(name))


def _is_grid_field(f):
    """True for an option a grid may vary: a number, or a choice among names."""
    return f is not None and (f.metadata["kind"] in GRID_KINDS
                              or bool(f.metadata["choices"] and not f.metadata["kind"]))


def cmd_batch(args):
    from ..batch.run import run_batch
    from .signals import EXIT_CODES, Stopper
    from ..batch import cluster
    if args.workers is not None and args.workers < 1:
        raise config.OptionError(f"--workers {args.workers}: give at least 1")
    cluster.check_workers(args.workers)                  # before anything is read or started
    dashboard = args.dashboard_address and cluster.check_dashboard(args.dashboard_address)
    jobs = jobs_of(args)
    log = stderr
    with Stopper("cancelling the jobs not finished; rerun the same command to go on") as stop:
        entries, summary = run_batch(jobs, args.output, args.scheduler, args.workers, args.sequential, log=log,
                                     stop=stop, progress=getattr(args, "progress", True), sheet=args.sheet,
                                     max_jobs=_max_jobs(args), dashboard=dashboard)
    log(f"vggnumpy batch: {summary['done']} done, {summary['failed']} failed, {summary['cancelled']} cancelled, "
        f"{summary['seconds']:.1f} s on {summary['ran_on']}; see {os.path.join(args.output, 'jobs.json')}")
    for e in entries:
        if e.record["status"] == "failed":
            log(f"vggnumpy batch: failed: {e.record['output']}: {e.record['error']}")
    return EXIT_CODES[stop()] if stop() else (1 if summary["failed"] else 0)
