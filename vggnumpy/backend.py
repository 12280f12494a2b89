"""The one array-module switch: NumPy on the CPU, CuPy on an NVIDIA GPU. Nothing is imported until asked."""
import numpy as np


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_xp(device="cpu"):
    """Return (xp, device name) for 'cpu', 'gpu' or 'auto'."""
    if device == "cpu":
        return np, "cpu"
    if device in ("gpu", "auto"):
        if gpu_available():
            import cupy
            return cupy, "gpu"
        if device == "gpu":
            raise RuntimeError("--device gpu: CuPy or a CUDA device is missing; install with "
                               "'pip install vggnumpy[gpu]' on a machine with an NVIDIA GPU, or use --device cpu")
        return np, "cpu"
    raise ValueError(f"unknown device {device!r}; use auto, cpu or gpu")


def xp_of(a):
    """The array module an array belongs to."""
    if isinstance(a, np.ndarray):
        return np
    import cupy
    return cupy.get_array_module(a)


def to_numpy(a):
    return a if isinstance(a, np.ndarray) else a.get()
