"""The one array-module switch: a Backend says where a run computes. NumPy on the CPU, CuPy on an NVIDIA GPU.

A Backend holds the array module (xp), the layer kernels (None: the NumPy kernels, which Network builds with its
own thread engine; on the GPU, the CUDA kernels built from the CuPy module it was given), the float64 dot product
the device L-BFGS accumulates in, and the memory free for a new allocation. Code outside this module asks the
Backend (`on_gpu`, `available()`, `dot64()`), never `xp is np`. Nothing is imported until asked.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Backend:
    name: str                   # "cpu" or "gpu"
    xp: object                  # numpy, or the cupy module
    kernels: object = None      # dict(conv=, pool=, relu=) of GPU kernels; None: the NumPy kernels

    @property
    def on_gpu(self):
        return self.kernels is not None

    def asarray(self, a):
        """A host or device array -> a float32 array of this backend."""
        return self.xp.asarray(a, dtype=self.xp.float32)

    def dot64(self):
        """dot(a, b): sum(a * b) of float32 vectors accumulated in float64, as a 0-d array on the device (a NumPy
        scalar on the CPU), so a caller synchronises only when it compares."""
        return dot64(self.xp)

    def available(self):
        """Bytes free for a new allocation: on the GPU the device's free memory plus what CuPy's pool holds unused;
        on the CPU MemAvailable of the host. None where the system does not say."""
        if not self.on_gpu:
            return proc_bytes("/proc/meminfo", "MemAvailable")
        free = self.xp.cuda.Device().mem_info[0]
        pool = self.xp.get_default_memory_pool()
        return int(free + pool.total_bytes() - pool.used_bytes())


def cpu():
    return Backend("cpu", np)


def gpu(cupy):
    """The GPU backend on the given CuPy module (the real one, or the tests' stand-in, tests/fakecupy.py)."""
    from .gpu.kernels import build
    return Backend("gpu", cupy, build(cupy))


def dot64(xp):
    """sum(a * b) accumulated in float64, as a 0-d array (or NumPy scalar) on a's device: dot(a, b)."""
    if xp is np:
        return lambda a, b: np.dot(a.astype(np.float64), b.astype(np.float64))
    return xp.ReductionKernel("float32 a, float32 b", "float64 out", "double(a) * double(b)", "a + b",
                              "out = a", "0", "vggnumpy_dot64")


def import_cupy():
    import cupy
    return cupy


def gpu_status():
    """(True, 'GPU name') when CuPy imports and sees a CUDA device, else (False, why not)."""
    try:
        cupy = import_cupy()
    except Exception as e:
        return False, f"CuPy is not installed ({type(e).__name__}); 'pip install vggnumpy[gpu]'"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return False, "CuPy sees no CUDA device"
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        return True, name.decode() if isinstance(name, bytes) else str(name)
    except Exception as e:
        return False, f"no usable CUDA device ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"


def select(device="cpu", log=None):
    """The Backend for 'cpu', 'gpu' or 'auto'; log(msg), if given, hears what auto chose and why."""
    if device == "cpu":
        return cpu()
    if device in ("gpu", "auto"):
        ok, what = gpu_status()
        if ok:
            if log is not None:
                log(f"vggnumpy: device {device}: using the GPU ({what}) through CuPy")
            return gpu(import_cupy())
        if device == "gpu":
            raise RuntimeError(f"--device gpu: {what}; install with 'pip install vggnumpy[gpu]' on a machine "
                               "with an NVIDIA GPU, or use --device cpu")
        if log is not None:
            log(f"vggnumpy: device auto: using the CPU (NumPy): {what}")
        return cpu()
    raise ValueError(f"unknown device {device!r}; use auto, cpu or gpu")


def xp_of(a):
    """The array module an array belongs to."""
    if isinstance(a, np.ndarray):
        return np
    return import_cupy().get_array_module(a)


def to_numpy(a):
    return a if isinstance(a, np.ndarray) else a.get()


def proc_bytes(path, key):
    """The `key:` line of a /proc file in bytes (its value is in kB), or None where the system does not say."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
