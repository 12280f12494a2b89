"""Run a NumPy pass over slabs of an array on all cores: NumPy's own loops use one core, BLAS uses them all.

NumPy releases the GIL inside its loops (copies, ufuncs on float arrays), so plain Python threads, each given a
range of channels, run them in parallel. The kernels use this for the copies and elementwise passes between
their matrix products; the products themselves already use every core through BLAS. A Threads object owns its
count and its executor (made on first use, shut down by close() or when the object is collected): nothing is
kept at module level and nothing starts at import.
"""
import threading
from concurrent.futures import ThreadPoolExecutor


class Threads:
    """`count` threads for split(): the calling thread plus count-1 pool workers."""

    def __init__(self, count):
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"threads: expected a whole number of threads of at least 1, got {count!r}")
        self.count = count
        self._pool = None
        self._lock = threading.Lock()

    def _executor(self):
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.count - 1, thread_name_prefix="vggnumpy")
            return self._pool

    def split(self, fn, n, min_size=1):
        """Call fn(lo, hi) over range(n) cut into one contiguous part per thread; the calling thread takes the
        first.

        min_size: the smallest part worth a thread (tiny passes run in one call). Exceptions propagate.
        """
        k = min(self.count, n // max(1, min_size))
        if k <= 1:
            if n > 0:
                fn(0, n)
            return
        pool = self._pool or self._executor()
        cuts = [n * i // k for i in range(k + 1)]
        futures = [pool.submit(fn, cuts[i], cuts[i + 1]) for i in range(1, k)]
        try:
            fn(cuts[0], cuts[1])
        finally:
            for f in futures:
                f.result()

    def close(self):
        """Stop the workers (a later split() starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
