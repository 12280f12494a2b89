"""Run a NumPy pass over slabs of an array on all cores: NumPy's own loops use one core, BLAS uses them all.

NumPy releases the GIL inside its loops (copies, ufuncs on float arrays), so plain Python threads, each given a
range of channels, run them in parallel. The kernels use this for the copies and elementwise passes between
their matrix products; the products themselves already use every core through BLAS.
"""
import os
from concurrent.futures import ThreadPoolExecutor

_POOL = {}          # thread count -> executor, made on first use (nothing starts at import)


def threads():
    """Threads to use: $VGGNUMPY_THREADS, else the cores this process may run on."""
    env = os.environ.get("VGGNUMPY_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"VGGNUMPY_THREADS={env!r}: expected a whole number of threads, e.g. 2") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                        # not on Linux
        return max(1, os.cpu_count() or 1)


def split(fn, n, min_size=1):
    """Call fn(lo, hi) over range(n) cut into one contiguous part per thread; the calling thread takes the first.

    min_size: the smallest part worth a thread (tiny passes run in one call). Exceptions propagate.
    """
    k = min(threads(), n // max(1, min_size))
    if k <= 1:
        if n > 0:
            fn(0, n)
        return
    pool = _POOL.get(k)
    if pool is None:
        pool = _POOL[k] = ThreadPoolExecutor(k - 1, thread_name_prefix="vggnumpy")
    cuts = [n * i // k for i in range(k + 1)]
    futures = [pool.submit(fn, cuts[i], cuts[i + 1]) for i in range(1, k)]
    try:
        fn(cuts[0], cuts[1])
    finally:
        for f in futures:
            f.result()
