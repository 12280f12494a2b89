"""Dask distributed for batch.py: a LocalCluster or a scheduler's address, the weights plugin, tasks in, results out."""
import os

PLUGIN = "vggnumpy-weights"


def require():
    """Raise ImportError with the install command when Dask distributed is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ImportError("Dask distributed is not installed; pip install 'vggnumpy[dist]' to run the jobs on "
                          "several cores or machines") from None


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def weights_plugin():
    """A WorkerPlugin holding a batch.WeightsCache on each worker (weights loaded once per worker)."""
    from distributed.diagnostics.plugin import WorkerPlugin
    from .batch import WeightsCache

    class WeightsPlugin(WorkerPlugin):
        name = PLUGIN

        def setup(self, worker):
            self.cache = WeightsCache()

    return WeightsPlugin()


def local_worker_plugin():
    """A WorkerPlugin for our own LocalCluster's worker processes: they ignore SIGINT. A Ctrl-C in the terminal
    reaches the whole process group; the client alone handles it (cancels the rest and closes the cluster), so
    the workers do not die printing tracebacks. Workers started by hand never get it."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreInterrupt(WorkerPlugin):
        name = "vggnumpy-local-worker"

        def setup(self, worker):
            import signal
            import threading
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupt()


def connect(scheduler=None, workers=None, processes=True, log=print):
    """(client, cluster or None): the scheduler at `scheduler`, else a LocalCluster of `workers` single-threaded
    worker processes (default one per core), each with its share of the cores for NumPy and BLAS."""
    from distributed import Client, LocalCluster
    import logging
    if scheduler:
        client = Client(scheduler, timeout="20s")
        log(f"vggnumpy batch: scheduler {scheduler}, {len(client.scheduler_info()['workers'])} worker(s)")
        return client, None
    n = workers or cores()
    share = str(max(1, cores() // n))
    env = {"VGGNUMPY_THREADS": share, "OMP_NUM_THREADS": share, "OPENBLAS_NUM_THREADS": share,
           "MKL_NUM_THREADS": share}
    kwargs = dict(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=":0",
                  silence_logs=logging.ERROR)
    if processes:
        kwargs["env"] = env
    cluster = LocalCluster(**kwargs)
    client = Client(cluster)
    if processes:
        client.register_plugin(local_worker_plugin())
    log(f"vggnumpy batch: LocalCluster of {n} worker{'s' if n > 1 else ''} x 1 thread ({share} core"
        f"{'s' if share != '1' else ''} each for NumPy), dashboard {client.dashboard_link}")
    return client, cluster


def submit(client, tasks, gpu, log=print):
    """One future per task (retried once on failure); gpu[i]: the task asks for a worker with resources GPU=1.
    When no worker declares a GPU, such tasks go to any worker (which then uses its GPU or says it has none),
    rather than wait for ever."""
    from .batch import run_task
    client.register_plugin(weights_plugin())
    have = any(w.get("resources", {}).get("GPU") for w in client.scheduler_info()["workers"].values())
    if any(gpu) and not have:
        log("vggnumpy batch: no worker declares a GPU (dask worker ... --resources GPU=1); the --device gpu jobs "
            "go to any worker")
    return [client.submit(run_task, t, key=t.key, retries=1, pure=False,
                          resources={"GPU": 1} if g and have else None) for t, g in zip(tasks, gpu)]


def wait_some(futures, timeout=0.5):
    """The futures of `futures` that are finished (waits at most `timeout` seconds for the first)."""
    from distributed import wait
    try:
        wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
    except Exception:              # distributed's TimeoutError: none finished yet
        pass
    return [f for f in futures if f.done()]


def outcome(future):
    """(result dict, None) or (None, error text) of a finished future."""
    if future.status == "finished":
        return future.result(), None
    if future.status == "cancelled":
        return None, "cancelled"
    e = future.exception()
    return None, f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e)
