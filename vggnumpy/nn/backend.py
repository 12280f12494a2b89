"""The one array-module switch: NumPy on the CPU, CuPy on an NVIDIA GPU. Nothing is imported until asked."""
import numpy as np


def gpu_status():
    """(True, 'GPU name') when CuPy imports and sees a CUDA device, else (False, why not)."""
    try:
        import cupy
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


def get_xp(device="cpu", log=None):
    """Return (xp, device name) for 'cpu', 'gpu' or 'auto'; log(msg), if given, hears what auto chose and why."""
    if device == "cpu":
        return np, "cpu"
    if device in ("gpu", "auto"):
        ok, what = gpu_status()
        if ok:
            if log is not None:
                log(f"vggnumpy: device {device}: using the GPU ({what}) through CuPy")
            import cupy
            return cupy, "gpu"
        if device == "gpu":
            raise RuntimeError(f"--device gpu: {what}; install with 'pip install vggnumpy[gpu]' on a machine "
                               "with an NVIDIA GPU, or use --device cpu")
        if log is not None:
            log(f"vggnumpy: device auto: using the CPU (NumPy): {what}")
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
