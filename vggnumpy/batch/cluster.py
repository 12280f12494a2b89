"""Dask distributed for batch.py: a LocalCluster or a scheduler's address, the weights plugin, tasks in, results out."""
import os
import threading
import time

PLUGIN = "vggnumpy-weights"
LOOPBACK = "127.0.0.1"
DASHBOARD = f"{LOOPBACK}:0"          # the LocalCluster's dashboard: this machine only, a free port
CONNECT_TIMEOUT = 20.0               # seconds for --scheduler to answer ($VGGNUMPY_CONNECT_TIMEOUT)
WORKERS_PER_CORE = 4                 # --workers above this many per core is refused before any process starts

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


def connect_timeout():
    """Seconds a --scheduler gets to answer: $VGGNUMPY_CONNECT_TIMEOUT, else 20."""
    text = os.environ.get("VGGNUMPY_CONNECT_TIMEOUT", "")
    try:
        value = float(text)
    except ValueError:
        return CONNECT_TIMEOUT
    return value if 0 < value < 1e6 else CONNECT_TIMEOUT


def check_workers(workers):
    """Refuse, before any process starts, more LocalCluster workers than WORKERS_PER_CORE per usable core."""
    from .jobs import BatchError
    limit = WORKERS_PER_CORE * cores()
    if workers is not None and workers > limit:
        raise BatchError(f"--workers {workers}: this process may use {cores()} core{'s' if cores() > 1 else ''}, so at "
                         f"most {limit} worker processes ({WORKERS_PER_CORE} per core); give --workers {limit} or "
                         f"fewer, or leave it out for one per core")


def weights_plugin():
    """A WorkerPlugin holding a batch.WeightsCache on each worker (weights loaded once per worker)."""
    from distributed.diagnostics.plugin import WorkerPlugin
    from .jobs import WeightsCache

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


def check_dashboard(address):
    """--dashboard-address HOST:PORT as given (PORT 0: a free one), else BatchError naming it."""
    from .jobs import BatchError
    host, sep, port = (address or "").rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535 or "/" in host:
        raise BatchError(f"--dashboard-address {address}: give HOST:PORT, e.g. {DASHBOARD} (this machine only, a "
                         f"free port) or 0.0.0.0:8787 (every network this machine is on)")
    return address


def probe(address, timeout):
    """The identity the Dask scheduler at `address` gives within `timeout` seconds, else BatchError naming
    --scheduler. The whole exchange (connect, Dask's handshake, the identity call) has that deadline: something
    else listening there (a web server) may never answer, or answer bytes Dask cannot read. The exchange runs in
    a daemon thread; this one only waits, so a signal (Ctrl-C, SIGTERM) ends the wait at once."""
    import asyncio
    from .jobs import BatchError
    done = {}

    async def ask():
        from distributed.comm import connect as dask_connect
        from distributed.security import Security
        args = Security().get_connection_args("client")       # tls:// as the Client would (Dask's config)
        comm = await dask_connect(address, timeout=timeout, **args)
        done["connected"] = True
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    def exchange():
        try:
            done["reply"] = asyncio.run(asyncio.wait_for(ask(), timeout))
        except BaseException as e:      # this thread's own failure, reported below; never the main thread's signal
            done["error"] = e

    t = threading.Thread(target=exchange, name="vggnumpy-scheduler-probe", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout + 2
    while t.is_alive() and time.monotonic() < deadline:
        t.join(0.1)
    reply, error = done.get("reply"), done.get("error")
    if isinstance(reply, dict) and reply.get("type") == "Scheduler":
        return reply
    if isinstance(reply, dict) and reply.get("type") == "Worker" and reply.get("scheduler"):
        why = f"a Dask worker, not the scheduler; its scheduler is {reply['scheduler']}"
    elif any(isinstance(e, ConnectionRefusedError) for e in _chain(error)):
        why = "connection refused: nothing listens there"
    elif isinstance(error, (OSError, asyncio.TimeoutError)) or t.is_alive() or error is None and reply is None:
        why = f"no Dask answer within {timeout:g} s"
    elif not done.get("connected"):
        why = f"not an address Dask can connect to: {error}"
    else:
        why = "it answered, but not as a Dask scheduler does"
    raise BatchError(f"--scheduler {address}: {address} is not a Dask scheduler or did not answer ({why}); check "
                     f"the address (a scheduler prints it: 'Scheduler at: tcp://HOST:8786'), that the scheduler "
                     f"runs, and that this machine can reach it")


def _chain(error):
    """error, its cause, that one's cause...: Dask reports a refused connection as a timeout caused by it."""
    seen = []
    while error is not None and len(seen) < 10:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def connect(scheduler=None, workers=None, processes=True, log=print, dashboard=None):
    """(client, cluster or None): the scheduler at `scheduler`, else a LocalCluster of `workers` single-threaded
    worker processes (default one per core), each with its share of the cores for NumPy and BLAS.

    The LocalCluster's scheduler and workers listen on 127.0.0.1 only, and so does its dashboard unless
    `dashboard` (HOST:PORT, default 127.0.0.1:0) says otherwise."""
    from distributed import Client, LocalCluster
    from .jobs import BatchError
    import logging
    if scheduler:
        timeout = connect_timeout()
        probe(scheduler, timeout)
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
            n = len(client.scheduler_info()["workers"])
        except Exception as e:              # not BaseException: Ctrl-C and SIGTERM go on up
            raise BatchError(f"--scheduler {scheduler}: the Dask scheduler there answered, but the client could "
                             f"not connect ({type(e).__name__}: {e}); check that this Dask version matches the "
                             f"scheduler's") from None
        log(f"vggnumpy batch: scheduler {scheduler}, {n} worker(s)")
        return client, None
    check_workers(workers)
    dashboard = dashboard or DASHBOARD
    n = workers or cores()
    share = str(max(1, cores() // n))
    env = {"VGGNUMPY_THREADS": share, "OMP_NUM_THREADS": share, "OPENBLAS_NUM_THREADS": share,
           "MKL_NUM_THREADS": share}
    kwargs = dict(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=dashboard,
                  silence_logs=logging.ERROR)
    if processes:       # scheduler, nannies and workers on tcp://127.0.0.1 (their HTTP servers on the same host)
        kwargs.update(env=env, host=LOOPBACK)
    else:               # inproc: nothing to bind but each worker's HTTP server, which would take every interface
        kwargs.update(worker_dashboard_address=f"{LOOPBACK}:0")
    cluster = LocalCluster(**kwargs)
    client = Client(cluster)
    if processes:
        client.register_plugin(local_worker_plugin())
    log(f"vggnumpy batch: LocalCluster of {n} worker{'s' if n > 1 else ''} x 1 thread ({share} core"
        f"{'s' if share != '1' else ''} each for NumPy), dashboard {dashboard_link(cluster, dashboard, client)}")
    return client, cluster


def dashboard_link(cluster, address, client):
    """The dashboard's URL where it listens (Dask's own link names the machine's address even when it is bound to
    127.0.0.1)."""
    try:
        port = cluster.scheduler.http_server.port
    except AttributeError:
        return client.dashboard_link
    host = address.rpartition(":")[0].strip("[]")
    if host in ("", "0.0.0.0", "::"):
        import socket
        host = socket.gethostname()
    return f"http://{host}:{port}/status"


def scatter_files(client, tasks):
    """{sha256: future}: each distinct input file of the tasks sent to the cluster once (keyed by its digest)."""
    data = {}
    for t in tasks:
        data.update(t.file_data())
    if not data:
        return {}
    futures = client.scatter({f"vggnumpy-file-{d}": b for d, b in data.items()}, hash=False)
    return {d: futures[f"vggnumpy-file-{d}"] for d in data}


def submit(client, tasks, gpu, log=print, files=None):
    """One future per task (retried once on failure); gpu[i]: the task asks for a worker with resources GPU=1.
    files: {sha256: future} of scatter_files (scattered here when None); each task gets its input files' futures,
    so a file is sent once however many tasks read it. When no worker declares a GPU, such tasks go to any
    worker (which then uses its GPU or says it has none), rather than wait for ever."""
    from .jobs import run_task
    client.register_plugin(weights_plugin())
    files = scatter_files(client, tasks) if files is None else files
    have = any(w.get("resources", {}).get("GPU") for w in client.scheduler_info()["workers"].values())
    if any(gpu) and not have:
        log("vggnumpy batch: no worker declares a GPU (dask worker ... --resources GPU=1); the --device gpu jobs "
            "go to any worker")
    return [client.submit(run_task, t, key=t.key, retries=1, pure=False, files=[files[d] for _, d in t.inputs],
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
