"""The CPU kernels' explicit state: their threads and pool, the derived-weight cache, an optional forced conv way."""
import os
import weakref

from .parallel import Threads

# conv.py's stride-1 routines: Winograd F(4x4, 3x3), the three direct ways of conv._conv_s1, and the FFT
# (fftconv.py, square kernels).
WAYS = ("winograd", "rows", "slices", "columns", "fft")


class Engine:
    """What the CPU kernels keep between calls; a Network owns one, a direct caller may pass one or get a fresh one.

    threads: threads for the copies and elementwise passes between matrix products (None: env_threads(),
    i.e. $VGGNUMPY_THREADS or the cores this process may run on, read once, here). way: None lets every stride-1
    convolution pick its routine (conv.stride1_path); one of WAYS forces it on every layer that can run it
    (tests and benchmarks). The derived weights (a kernel as a direct way's GEMM matrix) are kept per kernel
    array, for as long as that array lives.
    """

    def __init__(self, threads=None, way=None):
        if way is not None and way not in WAYS:
            raise ValueError(f"way must be None or one of {', '.join(WAYS)}, not {way!r}")
        self._threads = Threads(env_threads() if threads is None else threads)
        self.way = way
        self._derived = {}        # (id(kernel), kind) -> (weak reference to the kernel, derived array)

    @property
    def threads(self):
        return self._threads.count

    def split(self, fn, n, min_size=1):
        """fn(lo, hi) over range(n), one contiguous part per thread (parallel.Threads.split)."""
        self._threads.split(fn, n, min_size)

    def derived(self, w, kind, make):
        """make(w), computed once per kernel array and kind (weights do not change between evaluations)."""
        key = (id(w), kind)
        hit = self._derived.get(key)
        if hit is not None and hit[0]() is w:
            return hit[1]
        val = make(w)
        cache = self._derived
        try:
            cache[key] = (weakref.ref(w, lambda _, key=key: cache.pop(key, None)), val)
        except TypeError:         # no weak reference possible: do not cache
            pass
        return val

    def forget(self):
        """Drop the derived weights: for a caller that changes its kernels in place (training, tests)."""
        self._derived.clear()

    def close(self):
        """Stop the thread pool and drop the derived weights; the engine stays usable (both come back on use)."""
        self._threads.close()
        self._derived.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Engine(threads={self.threads}, way={self.way!r})"


def env_threads():
    """Threads the CPU kernels use: $VGGNUMPY_THREADS, else the cores this process may run on."""
    env = os.environ.get("VGGNUMPY_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"VGGNUMPY_THREADS={env!r}: expected a whole number of threads, e.g. 2") from None
        if not 1 <= n <= 1024:
            raise ValueError(f"VGGNUMPY_THREADS={env!r}: expected a number of threads from 1 to 1024")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                        # not on Linux
        return max(1, os.cpu_count() or 1)
