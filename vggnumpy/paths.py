"""Where files go and how they are written: the cache folder, the environment, and atomic writes with the umask's mode."""
import contextlib
import os
import stat
import tempfile


def cache_dir():
    """Where downloaded and converted weights live: $VGGNUMPY_CACHE, else ~/.cache/vggnumpy."""
    return os.environ.get("VGGNUMPY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vggnumpy")


def offline():
    """True when $VGGNUMPY_OFFLINE is set: no network step is tried, cached files are still used."""
    return bool(os.environ.get("VGGNUMPY_OFFLINE"))


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


def open_mode(path):
    """The mode a plain open(path, 'w') leaves: an existing file keeps its own, a new one gets 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mask = os.umask(0o22)
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path, suffix=".part"):
    """Yield a temporary path beside `path`; on success it is renamed over `path` with open_mode(path).

    The temporary file is removed on any exception, KeyboardInterrupt and SystemExit included, so an
    interrupted write leaves neither a partial output nor a stray temporary file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=".vggnumpy-", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, open_mode(path))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
