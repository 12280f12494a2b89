"""A NumPy-backed stand-in for the part of CuPy that vggnumpy uses, so that the GPU path runs on the CPU in CI.

vggnumpy takes its CuPy module as an argument (backend.gpu(cupy), vggnumpy.nn.gpu.kernels.build(cupy)), so a test
passes this module in: `cp = stand_in()`, then `backend.gpu(cp)` or `kernels.build(cp)`, with no change to
sys.modules. Code that imports cupy itself needs `install(monkeypatch)` as well, which patches the import for one
test (this module becomes sys.modules["cupy"], with cupy.cuda, cupy.cuda.runtime, cupy.cuda.driver and
cupy.cuda.compiler; monkeypatch undoes it): backend.select("gpu") and stylize(device="gpu"), and backend.xp_of
of a device array, which Network.forward, the objective and the losses call.

What it is:
- `ndarray`: a wrapper of a NumPy array, *not* an np.ndarray subclass, so vggnumpy's backend.xp_of / to_numpy
  see a device array. Like CuPy it keeps NumPy's view semantics (slices and reshapes write through), has
  .get(), refuses implicit conversion to NumPy (np.asarray(a) raises; use .get()) and refuses to mix with
  NumPy arrays in arithmetic and in cupy functions (a host/device mix-up fails here as it would on a GPU);
  cupy.asarray(host array) copies. Reductions and scalar indexing give 0-d arrays, as in CuPy.
  cupy.empty / empty_like fill floats with NaN and other types with 0xAB bytes, so a kernel that leaves part
  of an `empty` output unwritten shows up.
- The cupy namespace functions vggnumpy needs (and the common ones CuPy has), delegating to NumPy; a name not
  provided raises AttributeError instead of silently running NumPy.
- RawModule / RawKernel: the REAL CUDA C sources, compiled for the host by a C++ compiler (a prelude maps
  __global__, __device__, blockIdx, ... to plain C++) and launched over the grid and block given: a generated
  C++ launcher loops over every block and thread in order and calls the kernel, so a grid-stride loop runs
  exactly as the GPU's threads would, one after another. Every argument is checked against the kernel's C
  signature (parsed from the source): arrays must have the pointee's dtype and be C-contiguous, scalars must
  have the exact type (np.int32 for int, np.int64 for long long; a Python int is an int64, as in CuPy),
  and grid/block must be within CUDA's limits. Kernels that need threads to run concurrently
  (__syncthreads, __shared__ cooperation, warp intrinsics) cannot be emulated and fail to compile here.
- ElementwiseKernel / ReductionKernel: generated as C++ from their C expressions, the way CuPy generates CUDA
  (in-params as const locals, out-params as references, `i` the element index; REDUCE(a, b), POST_MAP(a),
  _type_reduce, type_<name> typedefs), compiled for the host; full reductions (axis=None) only, no `raw`
  params. Argument types follow CuPy: arrays must match a concrete param type exactly, type placeholders bind
  to the arrays' dtypes, scalars are cast.
- cupy.cuda: one device (getDeviceCount() == 1, getDeviceProperties(0)["name"] says it is this emulation),
  Device, Stream, Event, synchronize no-ops; memory pools that report nothing.

The host compile is cached per process (keyed on the source, options and compiler), so each source is built
once per test session. This module is also the host-compile machinery of tests/test_nvcc.py (HostModule).
"""
import atexit
import collections
import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types

import numpy as np

__version__ = "0.0.0+fakecupy"

CXX = os.environ.get("FAKECUPY_CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")

# Kernel launches by kernel name since install(): lets a test check that the GPU kernels really ran.
launches = collections.Counter()


# ================================================================ host compilation of CUDA C

PRELUDE = r"""
// fakecupy: CUDA C compiled for the host. One translation unit per module; the launcher sets these
// variables and calls the kernel once per (block, thread), in order.
#include <cmath>
#include <cstring>
#include <cstdint>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define warpSize 32
struct fakecupy_uint3 { unsigned int x, y, z; };
typedef fakecupy_uint3 uint3;
static fakecupy_uint3 threadIdx, blockIdx, blockDim, gridDim;
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
static inline float __uint_as_float(unsigned int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline unsigned int __float_as_uint(float f) { unsigned int i; std::memcpy(&i, &f, 4); return i; }
static inline double __longlong_as_double(long long i) { double f; std::memcpy(&f, &i, 8); return f; }
static inline long long __double_as_longlong(double f) { long long i; std::memcpy(&i, &f, 8); return i; }
// Threads run one at a time, so atomics are plain read-modify-writes.
template <class T> static inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <class T> static inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <class T> static inline T atomicMax(T* p, T v) { T o = *p; if (v > o) *p = v; return o; }
template <class T> static inline T atomicMin(T* p, T v) { T o = *p; if (v < o) *p = v; return o; }
"""

# C scalar types (after dropping const/__restrict__/volatile) -> NumPy dtypes. CUDA on Linux: long is 64 bit.
C_TYPES = {
    "float": np.float32, "double": np.float64, "bool": np.bool_,
    "char": np.int8, "signed char": np.int8, "unsigned char": np.uint8, "int8_t": np.int8, "uint8_t": np.uint8,
    "short": np.int16, "short int": np.int16, "unsigned short": np.uint16, "unsigned short int": np.uint16,
    "int": np.int32, "signed": np.int32, "signed int": np.int32, "int32_t": np.int32,
    "unsigned": np.uint32, "unsigned int": np.uint32, "uint32_t": np.uint32,
    "long": np.int64, "long int": np.int64, "long long": np.int64, "long long int": np.int64, "int64_t": np.int64,
    "unsigned long": np.uint64, "unsigned long long": np.uint64, "unsigned long long int": np.uint64,
    "size_t": np.uint64, "uint64_t": np.uint64,
}
_CTYPES_OF = {np.dtype(k): v for k, v in [
    (np.float32, ctypes.c_float), (np.float64, ctypes.c_double), (np.bool_, ctypes.c_bool),
    (np.int8, ctypes.c_int8), (np.uint8, ctypes.c_uint8), (np.int16, ctypes.c_int16), (np.uint16, ctypes.c_uint16),
    (np.int32, ctypes.c_int32), (np.uint32, ctypes.c_uint32), (np.int64, ctypes.c_int64),
    (np.uint64, ctypes.c_uint64)]}
# NumPy dtypes -> C type names for generated Elementwise/Reduction kernels.
_C_NAME_OF = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.bool_): "bool",
              np.dtype(np.int8): "signed char", np.dtype(np.uint8): "unsigned char",
              np.dtype(np.int16): "short", np.dtype(np.uint16): "unsigned short",
              np.dtype(np.int32): "int", np.dtype(np.uint32): "unsigned int",
              np.dtype(np.int64): "long long", np.dtype(np.uint64): "unsigned long long"}
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict"}
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+'
                     r'(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(([^)]*)\)\s*\{')

_lock = threading.Lock()
_libs = {}              # sha256 of (compiler, flags, full source) -> ctypes.CDLL
_build = []             # the build directory, made on first use, removed at exit


class CompileException(RuntimeError):
    """A source that the host compiler rejects (CuPy raises cupy.cuda.compiler.CompileException)."""


class CUDADriverError(RuntimeError):
    pass


class CUDARuntimeError(RuntimeError):
    pass


def host_unavailable():
    """None when a host C++ compiler builds and loads a shared library here, else why not (for pytest.skip)."""
    return _probe()


@functools.lru_cache(maxsize=None)
def _probe():
    if CXX is None:
        return "no host C++ compiler (g++, c++ or clang++) for the CUDA host emulation"
    try:
        _load("extern \"C\" int fakecupy_probe(int a) { return a + 1; }", ())
    except Exception as e:
        return f"the host C++ compiler {CXX} cannot build a shared library: {str(e).splitlines()[0] if str(e) else e}"
    return None


def _build_dir():
    with _lock:
        if not _build:
            d = tempfile.mkdtemp(prefix="fakecupy-")
            atexit.register(shutil.rmtree, d, True)
            _build.append(d)
        return _build[0]


def _load(source, flags):
    """Compile `source` (the prelude is prepended) into a shared library once per process; the loaded CDLL."""
    full = PRELUDE + "\n#line 1 \"kernel.cu\"\n" + source
    key = hashlib.sha256(repr((CXX, tuple(flags), full)).encode()).hexdigest()[:24]
    with _lock:
        if key in _libs:
            return _libs[key]
    d = _build_dir()
    src, lib = os.path.join(d, key + ".cpp"), os.path.join(d, key + ".so")
    with open(src, "w") as f:
        f.write(full)
    cmd = [CXX, "-O2", "-shared", "-fPIC", "-x", "c++", *flags, src, "-o", lib]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise CompileException(f"host compile failed ({' '.join(cmd)}):\n{res.stderr}")
    dll = ctypes.CDLL(lib)
    with _lock:
        _libs[key] = dll
    return dll


def _host_flags(options):
    """NVRTC options -> host compiler flags: --std and -D carry over, flags without host meaning are dropped."""
    flags, std = [], "-std=c++14"
    for opt in options or ():
        if opt.startswith(("--std=", "-std=")):
            std = "-std=" + opt.split("=", 1)[1]
        elif opt.startswith(("-D", "--define-macro=")):
            flags.append("-D" + opt.split("=", 1)[1] if opt.startswith("--define-macro=") else opt)
        elif opt.startswith(("-arch", "--gpu-architecture", "--use_fast_math", "-use_fast_math", "-lineinfo",
                             "--generate-line-info", "--fmad", "-fmad", "--device-as-default-execution-space",
                             "-default-device", "--ftz", "-ftz", "--prec-div", "-prec-div", "--prec-sqrt",
                             "-prec-sqrt", "-G", "--device-debug", "--restrict", "-restrict")):
            continue
        else:
            raise NotImplementedError(f"fakecupy: NVRTC option {opt!r} has no host meaning known to the stand-in")
    return [std, *flags]


class _Param:
    __slots__ = ("name", "text", "pointer", "const", "dtype", "ctype")

    def __init__(self, text):
        toks = re.findall(r"\w+|\*", text)
        if len(toks) < 2:
            raise NotImplementedError(f"fakecupy: cannot parse kernel parameter {text.strip()!r}")
        self.text, self.name = text.strip(), toks[-1]
        stars = toks.count("*")
        if stars > 1:
            raise NotImplementedError(f"fakecupy: pointer-to-pointer kernel parameter {self.text!r}")
        self.pointer = stars == 1
        before_star = toks[:toks.index("*")] if self.pointer else toks[:-1]
        self.const = "const" in before_star
        self.ctype = " ".join(t for t in toks[:-1] if t not in _QUALIFIERS and t != "*")
        if self.ctype not in C_TYPES:
            raise NotImplementedError(f"fakecupy: kernel parameter type {self.ctype!r} ({self.text!r}) not mapped")
        self.dtype = np.dtype(C_TYPES[self.ctype])


def kernel_signatures(code):
    """{name: [param, ...]} of the extern "C" __global__ kernels in a CUDA source."""
    code = _COMMENTS.sub(" ", code)
    out = {}
    for m in _KERNEL.finditer(code):
        params = [p for p in m.group(2).split(",") if p.strip() and p.strip() != "void"]
        out[m.group(1)] = [_Param(p) for p in params]
    return out


def _launcher(name, params):
    decl = ", ".join(["unsigned int _gx, unsigned int _gy, unsigned int _gz",
                      "unsigned int _bx, unsigned int _by, unsigned int _bz"] + [p.text for p in params])
    call = ", ".join(p.name for p in params)
    return f"""
extern "C" void fakecupy_launch_{name}({decl})
{{
    gridDim.x = _gx; gridDim.y = _gy; gridDim.z = _gz;
    blockDim.x = _bx; blockDim.y = _by; blockDim.z = _bz;
    for (unsigned int _z = 0; _z < _gz; ++_z) for (unsigned int _y = 0; _y < _gy; ++_y)
    for (unsigned int _x = 0; _x < _gx; ++_x) {{
        blockIdx.x = _x; blockIdx.y = _y; blockIdx.z = _z;
        for (unsigned int _tz = 0; _tz < _bz; ++_tz) for (unsigned int _ty = 0; _ty < _by; ++_ty)
        for (unsigned int _tx = 0; _tx < _bx; ++_tx) {{
            threadIdx.x = _tx; threadIdx.y = _ty; threadIdx.z = _tz;
            {name}({call});
        }}
    }}
}}
"""


def _dim3(v, what):
    t = (v,) if isinstance(v, (int, np.integer)) else tuple(v)
    if not 1 <= len(t) <= 3 or not all(isinstance(i, (int, np.integer)) for i in t):
        raise TypeError(f"fakecupy: {what} must be an int or a tuple of 1-3 ints, got {v!r}")
    return tuple(int(i) for i in t) + (1,) * (3 - len(t))


class HostKernel:
    """One kernel of a HostModule, called like cupy.RawKernel: kernel(grid, block, args)."""

    def __init__(self, module, name, strict):
        self.module, self.name, self.strict = module, name, strict
        self.params = module.signatures[name]
        self.fn = getattr(module.lib, f"fakecupy_launch_{name}")
        self.fn.restype = None
        self.fn.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_void_p if p.pointer else _CTYPES_OF[p.dtype]
                                                  for p in self.params]

    @property
    def attributes(self):
        return dict(max_threads_per_block=1024, num_regs=0, shared_size_bytes=0)

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        g, b = _dim3(grid, "grid"), _dim3(block, "block")
        if min(g + b) < 1 or g[0] > 2 ** 31 - 1 or max(g[1:]) > 65535:
            raise CUDADriverError(f"CUDA_ERROR_INVALID_VALUE: {self.name}: grid {g}")
        if b[0] * b[1] * b[2] > 1024 or b[0] > 1024 or b[1] > 1024 or b[2] > 64:
            raise CUDADriverError(f"CUDA_ERROR_INVALID_VALUE: {self.name}: block {b}")
        if shared_mem:
            raise NotImplementedError("fakecupy: dynamic shared memory cannot be emulated thread by thread")
        args = tuple(args)
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.params)} parameters")
        conv = [self._arg(i, p, a) for i, (p, a) in enumerate(zip(self.params, args))]
        launches[self.name] += 1
        self.fn(*g, *b, *conv)

    def _arg(self, i, p, a):
        where = f"kernel {self.name} argument {i} ({p.text})"
        if p.pointer:
            if isinstance(a, ndarray):
                arr = a._a
            elif isinstance(a, np.ndarray) and not self.strict:
                arr = a
            else:
                raise TypeError(f"{where}: a device array is needed, got {type(a).__name__}")
            if arr.dtype != p.dtype:
                raise TypeError(f"{where}: array of {arr.dtype} for a {p.ctype}* parameter")
            if not arr.flags.c_contiguous:
                raise ValueError(f"{where}: not C-contiguous (a raw kernel sees only the data pointer)")
            if not p.const and not arr.flags.writeable:
                raise ValueError(f"{where}: read-only array for a non-const pointer")
            return arr.ctypes.data
        if isinstance(a, (ndarray, np.ndarray)):
            raise TypeError(f"{where}: array passed for the scalar parameter")
        if isinstance(a, np.generic):
            dt = a.dtype
        elif isinstance(a, bool):
            dt = np.dtype(np.bool_)
        elif isinstance(a, int):
            dt = np.dtype(np.int64)
        elif isinstance(a, float):
            dt = np.dtype(np.float64)
        else:
            raise TypeError(f"{where}: unsupported argument type {type(a).__name__}")
        if dt != p.dtype:
            raise TypeError(f"{where}: a {dt} is passed by value for a {p.ctype}; cast it "
                            f"(np.{p.dtype.name}(...)): on a GPU the kernel would read garbage")
        return a.item() if isinstance(a, np.generic) else a


class HostModule:
    """The extern "C" kernels of a CUDA source built for the host; get_function(name) -> HostKernel.

    strict=False lets the kernels take plain NumPy arrays (tests/test_nvcc.py); RawModule is strict."""

    def __init__(self, code, options=(), strict=False):
        self.code, self.options, self.strict = code, tuple(options or ()), strict
        self.signatures = kernel_signatures(code)
        launchers = "".join(_launcher(n, ps) for n, ps in self.signatures.items())
        self.lib = _load(code + "\n" + launchers, _host_flags(self.options))

    def get_function(self, name):
        if name not in self.signatures:
            raise CUDADriverError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name!r} "
                                  f"(extern \"C\" kernels: {', '.join(self.signatures)})")
        return HostKernel(self, name, self.strict)


# ================================================================ the cupy namespace: arrays

def _unwrap(x, strict=True, what="argument"):
    """Fake arrays -> their NumPy arrays, recursively through lists and tuples; NumPy arrays refused if strict."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        if strict:
            raise TypeError(f"fakecupy: a numpy.ndarray {what} where CuPy needs a cupy.ndarray "
                            f"(move it to the device with cupy.asarray)")
        return x
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, strict, what) for v in x)
    return x


def _wrap(r):
    if isinstance(r, np.ndarray):
        return ndarray._of(r)
    if isinstance(r, np.generic):
        return ndarray._of(np.asarray(r))
    if isinstance(r, tuple):
        return tuple(_wrap(v) for v in r)
    if isinstance(r, list):
        return [_wrap(v) for v in r]
    return r


def _operand(o):
    if isinstance(o, ndarray):
        return o._a
    if isinstance(o, np.ndarray):
        raise TypeError("fakecupy: operand of type numpy.ndarray: CuPy does not mix host and device arrays "
                        "(Unsupported type <class 'numpy.ndarray'>)")
    if isinstance(o, (bool, int, float, complex, np.generic)):
        return o
    return NotImplemented


def _index(key):
    """Indices may be device arrays, NumPy arrays, lists, slices, ints, Ellipsis, None."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, list):
        return [_index(k) for k in key]
    return key


def _poison(a):
    if a.dtype.kind in "fc":
        a.fill(np.nan)
    elif a.size:
        a.view(np.uint8).fill(0xAB)
    return a


class ndarray:
    """A device array of the stand-in: a NumPy array inside, CuPy's behaviour outside."""

    __slots__ = ("_a",)
    __array_priority__ = 100.0
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("fakecupy: ndarray(memptr=/strides=)")
        self._a = _poison(np.empty(shape, dtype, order=order))

    @classmethod
    def _of(cls, a):
        obj = object.__new__(cls)
        obj._a = a
        return obj

    # ---- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))
    real = property(lambda self: ndarray._of(self._a.real))
    imag = property(lambda self: ndarray._of(self._a.imag))
    device = property(lambda self: Device(0))

    @property
    def base(self):
        return None if self._a.base is None else ndarray._of(self._a.base)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __repr__(self):
        return repr(self._a).replace("array(", "fakecupy.ndarray(", 1)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    # ---- host transfer
    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        self._a[...] = np.asarray(arr)

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        "a NumPy array explicitly. (fakecupy)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        ins = _unwrap(inputs, what=f"input of numpy.{ufunc.__name__}")
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = _unwrap(out, what="out")
        r = getattr(ufunc, method)(*ins, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(r)

    def __array_function__(self, func, types_, args, kwargs):
        mine = _NAMESPACE.get(func.__name__)
        if mine is None:
            return NotImplemented
        return mine(*args, **kwargs)

    # ---- scalars
    def _scalar(self, what):
        if self._a.size != 1:
            raise TypeError(f"only size-1 arrays can be converted to Python scalars ({what})")
        return self._a.reshape(()).item()

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def __complex__(self):
        return complex(self._scalar("complex"))

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        return bool(self._a.reshape(()).item())

    def __index__(self):
        if self._a.ndim != 0 or self._a.dtype.kind not in "iub":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self._a)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    # ---- indexing (views write through, as in CuPy)
    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        self._a[_index(key)] = _unwrap(value, strict=False)

    # ---- shape and copies
    def copy(self, order="C"):
        return ndarray._of(self._a.copy(order=order))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        kw = {} if casting is None else dict(casting=casting)
        return ndarray._of(self._a.astype(dtype, order=order, copy=copy, **kw))

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ndarray._of(self._a.reshape(shape, order=order))

    def ravel(self, order="C"):
        return ndarray._of(self._a.ravel(order=order))

    def flatten(self, order="C"):
        return ndarray._of(self._a.flatten(order=order))

    def transpose(self, *axes):
        return ndarray._of(self._a.transpose(*axes))

    def swapaxes(self, a, b):
        return ndarray._of(self._a.swapaxes(a, b))

    def squeeze(self, axis=None):
        return ndarray._of(self._a.squeeze(axis))

    def view(self, dtype=None):
        return ndarray._of(self._a.view() if dtype is None else self._a.view(dtype))

    def fill(self, value):
        self._a.fill(_unwrap(value))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_rebuild, (self._a,))


def _rebuild(a):
    return ndarray._of(a)


def _method(name):
    def method(self, *args, **kwargs):
        if kwargs.get("out") is not None:
            out = kwargs["out"]
            kwargs["out"] = _unwrap(out, what="out")
            getattr(self._a, name)(*_unwrap(args), **kwargs)
            return out
        return _wrap(getattr(self._a, name)(*_unwrap(args), **kwargs))
    method.__name__ = name
    return method


for _m in ("sum", "mean", "max", "min", "argmax", "argmin", "all", "any", "prod", "std", "var", "cumsum", "dot",
           "clip", "round", "conj", "nonzero", "repeat", "take", "trace", "diagonal", "argsort"):
    setattr(ndarray, _m, _method(_m))


def _sort(self, axis=-1):
    self._a.sort(axis=axis)


ndarray.sort = _sort


def _binary(ufunc):
    def op(self, other):
        o = _operand(other)
        return NotImplemented if o is NotImplemented else _wrap(ufunc(self._a, o))

    def rop(self, other):
        o = _operand(other)
        return NotImplemented if o is NotImplemented else _wrap(ufunc(o, self._a))

    def iop(self, other):
        o = _operand(other)
        if o is NotImplemented:
            return NotImplemented
        ufunc(self._a, o, out=self._a)
        return self
    return op, rop, iop


for _name, _uf in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                   ("floordiv", np.floor_divide), ("mod", np.remainder), ("pow", np.power),
                   ("matmul", np.matmul), ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor),
                   ("lshift", np.left_shift), ("rshift", np.right_shift)]:
    _op, _rop, _iop = _binary(_uf)
    setattr(ndarray, f"__{_name}__", _op)
    setattr(ndarray, f"__r{_name}__", _rop)
    if _name != "matmul":
        setattr(ndarray, f"__i{_name}__", _iop)

for _name, _uf in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                   ("gt", np.greater), ("ge", np.greater_equal)]:
    setattr(ndarray, f"__{_name}__", _binary(_uf)[0])

for _name, _uf in [("neg", np.negative), ("pos", np.positive), ("abs", np.absolute), ("invert", np.invert)]:
    setattr(ndarray, f"__{_name}__", (lambda uf: lambda self: _wrap(uf(self._a)))(_uf))


# ================================================================ the cupy namespace: functions

def _delegate(npfunc, name):
    """A cupy function that runs numpy's on the arrays inside; NumPy array arguments are refused, as in CuPy."""
    def f(*args, **kwargs):
        out = kwargs.get("out")
        args = _unwrap(args, what=f"argument of cupy.{name}")
        kwargs = {k: _unwrap(v, what=f"{k}= of cupy.{name}") for k, v in kwargs.items()}
        r = npfunc(*args, **kwargs)
        return out if isinstance(out, ndarray) else _wrap(r)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"fakecupy: numpy.{npfunc.__name__} on the device arrays."
    return f


def _creation(npfunc, name, poison=False):
    """Functions that make a new array from shapes or other device arrays (no host arrays)."""
    def f(*args, **kwargs):
        r = npfunc(*_unwrap(args, what=f"argument of cupy.{name}"), **kwargs)
        return ndarray._of(_poison(r) if poison else r)
    f.__name__ = f.__qualname__ = name
    return f


def asarray(a, dtype=None, order=None, *, blocking=False):
    """Device array from anything; a host (NumPy) array or list is copied to the 'device', as in CuPy."""
    if isinstance(a, ndarray):
        if (dtype is None or np.dtype(dtype) == a.dtype) and (order in (None, "K", "A") or
                                                              (order == "C" and a.flags.c_contiguous)):
            return a
        return ndarray._of(np.asarray(a._a, dtype=dtype, order=order))
    return ndarray._of(np.array(_unwrap(a, strict=False), dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray) and not copy:
        return asarray(obj, dtype, None if order == "K" else order)
    return ndarray._of(np.array(_unwrap(obj, strict=False), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    """Like CuPy: a cupy.ndarray only (cupy's is typed `ndarray a`); `a` itself when no copy is needed."""
    if not isinstance(a, ndarray):
        raise TypeError(f"fakecupy: cupy.ascontiguousarray takes a cupy.ndarray, not {type(a).__name__}")
    if a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return ndarray._of(np.ascontiguousarray(a._a, dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    r = np.asarray(a, order=order)
    if out is not None:
        out[...] = r
        return out
    return r


def get_array_module(*args):
    return _THIS if any(isinstance(a, ndarray) for a in args) else np


def empty(shape, dtype=float, order="C"):
    return ndarray._of(_poison(np.empty(shape, dtype, order=order)))


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return ndarray._of(_poison(np.empty_like(_unwrap(a), dtype=dtype, order=order, shape=shape)))


def synchronize():
    pass


_DELEGATED = (
    "abs", "absolute", "add", "all", "allclose", "amax", "amin", "any", "arccos", "arcsin", "arctan", "arctan2",
    "argmax", "argmin", "argsort", "argwhere", "around", "array_equal", "atleast_1d", "atleast_2d", "atleast_3d",
    "broadcast_arrays", "broadcast_to", "ceil", "clip", "concatenate", "copy", "copyto", "cos", "cosh",
    "count_nonzero", "cumprod", "cumsum", "diag", "diagonal", "diff", "divide", "dot", "einsum", "equal", "exp",
    "exp2", "expand_dims", "expm1", "flip", "fliplr", "flipud", "floor", "floor_divide", "fmax", "fmin", "fmod",
    "greater", "greater_equal", "hstack", "hypot", "inner", "isclose", "isfinite", "isinf", "isnan", "kron",
    "less", "less_equal", "log", "log10", "log1p", "log2", "logical_and", "logical_not", "logical_or",
    "logical_xor", "matmul", "max", "maximum", "mean", "median", "min", "minimum", "mod", "moveaxis", "multiply",
    "nan_to_num", "nanmax", "nanmean", "nanmin", "nansum", "negative", "nonzero", "outer", "pad", "percentile",
    "power", "prod", "ptp", "ravel", "reciprocal", "remainder", "repeat", "reshape", "rint", "roll", "rollaxis",
    "rot90", "round", "sign", "sin", "sinh", "sort", "split", "sqrt", "square", "squeeze", "stack", "std",
    "subtract", "sum", "swapaxes", "take", "tan", "tanh", "tensordot", "tile", "trace", "transpose",
    "true_divide", "trunc", "var", "vdot", "vstack", "where",
)
_CREATION = ("zeros", "ones", "full", "arange", "linspace", "eye", "identity", "zeros_like", "ones_like",
             "full_like", "indices", "meshgrid", "tri", "tril", "triu")
# NumPy's dtypes and constants, which CuPy re-exports as they are.
_REEXPORTED = (
    "float16", "float32", "float64", "single", "double", "half", "complex64", "complex128", "int8", "int16",
    "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool_", "intp", "uintp", "byte", "ubyte", "short",
    "ushort", "intc", "uintc", "longlong", "ulonglong", "dtype", "finfo", "iinfo", "newaxis", "inf", "nan", "pi",
    "e", "euler_gamma", "result_type", "can_cast", "promote_types", "issubdtype", "integer", "floating",
    "number", "signedinteger", "unsignedinteger", "generic", "complexfloating", "inexact", "ndim", "shape", "size",
)
# The delegated names live in _FUNCS and are reached through the module's __getattr__ (PEP 562), so that
# inside this file `sum`, `max`, `any`, `round`, ... stay Python's builtins.
_FUNCS = {n: _delegate(getattr(np, n), n) for n in _DELEGATED}
_FUNCS.update({n: _creation(getattr(np, n), n) for n in _CREATION})
_FUNCS.update({n: getattr(np, n) for n in _REEXPORTED})
# What ndarray.__array_function__ dispatches to (np.clip(device array) -> cupy.clip, as in CuPy).
_NAMESPACE = {n: _FUNCS[n] for n in _DELEGATED + _CREATION}
_NAMESPACE.update(asarray=asarray, array=array, ascontiguousarray=ascontiguousarray, empty_like=empty_like)


def __getattr__(name):
    if name in _FUNCS:
        return _FUNCS[name]
    raise AttributeError(f"fakecupy: cupy.{name} is not provided by the stand-in (tests/fakecupy.py); add it "
                         f"there if CuPy has it")


def __dir__():
    return sorted(set(globals()) | set(_FUNCS))


# ================================================================ ElementwiseKernel and ReductionKernel

_NP_TYPES = {n: np.dtype(n) for n in ("float32", "float64", "bool", "int8", "uint8", "int16", "uint16", "int32",
                                      "uint32", "int64", "uint64")}
_NP_TYPES.update(float=np.dtype(np.float64), int=np.dtype(np.int64), double=np.dtype(np.float64),
                 single=np.dtype(np.float32))


class _KParam:
    """One CuPy kernel parameter 'TYPE NAME' (TYPE a NumPy dtype name, or a placeholder such as T)."""

    def __init__(self, text):
        words = text.split()
        if "raw" in words:
            raise NotImplementedError(f"fakecupy: raw kernel parameters ({text.strip()!r})")
        words = [w for w in words if w != "const"]
        if len(words) != 2:
            raise ValueError(f"fakecupy: cannot parse kernel parameter {text.strip()!r}")
        self.type, self.name = words
        self.dtype = _NP_TYPES.get(self.type)


def _kparams(s):
    return [_KParam(p) for p in s.split(",") if p.strip()]


class _GeneratedKernel:
    """The shared part of ElementwiseKernel and ReductionKernel: typing the arguments as CuPy does."""

    def __init__(self, in_params, out_params, name, options, preamble):
        self.in_params, self.out_params = _kparams(in_params), _kparams(out_params)
        self.name, self.options, self.preamble = name, tuple(options or ()), preamble
        self._cache = {}

    def _types(self, ins, outs):
        """(dtype of each in param, of each out param) following cupy's _decide_params_type."""
        bound = {}
        for p, a in list(zip(self.out_params, outs)) + list(zip(self.in_params, ins)):
            if not isinstance(a, ndarray):
                continue
            if p.dtype is not None:
                if a.dtype != p.dtype:
                    raise TypeError(f"Type is mismatched. {p.name} {a.dtype} {p.dtype} (fakecupy, {self.name})")
            elif p.type in bound:
                if bound[p.type] != a.dtype:
                    raise TypeError(f"Type is mismatched. {p.name} {a.dtype} {bound[p.type]} {p.type}")
            else:
                bound[p.type] = a.dtype
        for p, a in zip(self.in_params, ins):        # a placeholder seen only on scalars: NumPy's type of them
            if p.dtype is None and p.type not in bound:
                bound[p.type] = np.asarray(a).dtype

        def dt(p):
            if p.dtype is not None:
                return p.dtype
            if p.type not in bound:
                raise TypeError(f"fakecupy: {self.name}: cannot guess the type of {p.type} for {p.name}")
            return bound[p.type]
        return [dt(p) for p in self.in_params], [dt(p) for p in self.out_params], bound

    def _inputs(self, args):
        for a in args:
            if isinstance(a, np.ndarray):
                raise TypeError(f"Unsupported type <class 'numpy.ndarray'> (fakecupy: {self.name} needs device "
                                f"arrays)")
            if not isinstance(a, (ndarray, bool, int, float, complex, np.generic)):
                raise TypeError(f"Unsupported type {type(a)} (fakecupy: {self.name})")

    def _typedefs(self, in_t, out_t, bound):
        lines = [f"typedef {_C_NAME_OF[np.dtype(t)]} {name};" for name, t in bound.items()]
        lines += [f"typedef {_C_NAME_OF[t]} type_{p.name};"
                  for p, t in zip(self.in_params + self.out_params, in_t + out_t)]
        return "\n".join(lines)

    def _function(self, source, fname, n_arrays):
        key = source
        if key not in self._cache:
            lib = _load(source, _host_flags(self.options))
            fn = getattr(lib, fname)
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p] * n_arrays + [ctypes.c_longlong]
            self._cache[key] = fn
        return self._cache[key]


class ElementwiseKernel(_GeneratedKernel):
    """cupy.ElementwiseKernel(in_params, out_params, operation, name): the operation compiled for the host."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True, preamble="",
                 no_return=False, return_tuple=False, loop_prep="", after_loop="", options=(), **kwargs):
        super().__init__(in_params, out_params, name, options, preamble)
        self.operation, self.no_return, self.return_tuple = operation, no_return, return_tuple
        self.loop_prep, self.after_loop = loop_prep, after_loop

    def __call__(self, *args, size=None, block_size=None, stream=None):
        n_in, n_out = len(self.in_params), len(self.out_params)
        if len(args) not in (n_in, n_in + n_out):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        ins, outs = args[:n_in], list(args[n_in:])
        self._inputs(args)
        if any(not isinstance(o, ndarray) for o in outs):
            raise TypeError("Output arguments must be cupy.ndarray")
        in_t, out_t, bound = self._types(ins, outs)
        shape = np.broadcast_shapes(*[np.shape(_unwrap(a)) for a in list(ins) + outs])
        if size is not None and not shape:
            shape = (int(size),)
        host_in = [np.ascontiguousarray(np.broadcast_to(np.asarray(_unwrap(a), dtype=t), shape))
                   for a, t in zip(ins, in_t)]
        if not outs:
            outs = [ndarray._of(np.empty(shape, t)) for t in out_t]
        elif any(o.shape != shape for o in outs):
            raise ValueError(f"fakecupy: {self.name}: output shape {outs[0].shape} is not the broadcast {shape}")
        host_out = [o._a if o.flags.c_contiguous else np.empty(shape, o.dtype) for o in outs]
        decl = [f"const type_{p.name}* _raw_{p.name}" for p in self.in_params] + \
               [f"type_{p.name}* _raw_{p.name}" for p in self.out_params]
        loads = "".join(f"const type_{p.name} {p.name} = _raw_{p.name}[i];\n" for p in self.in_params) + \
            "".join(f"type_{p.name} &{p.name} = _raw_{p.name}[i];\n" for p in self.out_params)
        source = f"""{self._typedefs(in_t, out_t, bound)}
{self.preamble}
struct fakecupy_ind {{ long long n; long long size() const {{ return n; }} }};
extern "C" void fakecupy_elementwise({", ".join(decl + ["long long _n"])})
{{
    const fakecupy_ind _ind = {{_n}};
    {self.loop_prep}
    for (long long i = 0; i < _n; ++i) {{
{loads}
        {self.operation};
    }}
    {self.after_loop}
}}
"""
        fn = self._function(source, "fakecupy_elementwise", n_in + n_out)
        launches[self.name] += 1
        fn(*[a.ctypes.data for a in host_in + host_out], int(np.prod(shape, dtype=np.int64)))
        for o, h in zip(outs, host_out):
            if h is not o._a:
                o._a[...] = h
        if self.no_return:
            return None
        return outs[0] if len(outs) == 1 and not self.return_tuple else tuple(outs)


class ReductionKernel(_GeneratedKernel):
    """cupy.ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name):
    a full reduction (axis=None) compiled for the host, accumulating in reduce_type (default: the out type)."""

    def __init__(self, in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name="reduce_kernel",
                 reduce_type=None, reduce_dims=True, preamble="", options=()):
        super().__init__(in_params, out_params, name, options, preamble)
        self.map_expr, self.reduce_expr, self.post_map_expr = map_expr, reduce_expr, post_map_expr
        self.identity, self.reduce_type = identity, reduce_type

    def __call__(self, *args, out=None, axis=None, keepdims=False, stream=None):
        n_in, n_out = len(self.in_params), len(self.out_params)
        if len(args) not in (n_in, n_in + n_out):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        if n_out != 1:
            raise NotImplementedError("fakecupy: ReductionKernel with several outputs")
        if axis is not None and tuple(np.atleast_1d(axis)) != tuple(range(max(1, len(np.shape(_unwrap(args[0])))))):
            raise NotImplementedError("fakecupy: ReductionKernel over some axes (only axis=None)")
        ins = args[:n_in]
        self._inputs(args)
        outs = list(args[n_in:]) or ([out] if out is not None else [])
        if any(not isinstance(o, ndarray) for o in outs):
            raise TypeError("Output arguments must be cupy.ndarray")
        in_t, out_t, bound = self._types(ins, outs)
        shape = np.broadcast_shapes(*[np.shape(_unwrap(a)) for a in ins])
        host_in = [np.ascontiguousarray(np.broadcast_to(np.asarray(_unwrap(a), dtype=t), shape))
                   for a, t in zip(ins, in_t)]
        result = np.empty((1,) * len(shape) if keepdims else (), out_t[0])
        reduce_type = self.reduce_type if self.reduce_type is not None else _C_NAME_OF[np.dtype(out_t[0])]
        if reduce_type in _NP_TYPES:
            reduce_type = _C_NAME_OF[_NP_TYPES[reduce_type]]
        elif reduce_type in bound:
            reduce_type = _C_NAME_OF[np.dtype(bound[reduce_type])]
        o = self.out_params[0]
        decl = [f"const type_{p.name}* _raw_{p.name}" for p in self.in_params] + [f"type_{o.name}* _raw_{o.name}"]
        loads = "".join(f"const type_{p.name} {p.name} = _raw_{p.name}[_i];\n" for p in self.in_params)
        source = f"""{self._typedefs(in_t, out_t, bound)}
typedef {reduce_type} _type_reduce;
{self.preamble}
#define REDUCE(a, b) ({self.reduce_expr})
#define POST_MAP(a) ({self.post_map_expr})
extern "C" void fakecupy_reduce({", ".join(decl + ["long long _n"])})
{{
    _type_reduce _s = _type_reduce({self.identity});
    for (long long _i = 0; _i < _n; ++_i) {{
{loads}
        _type_reduce _a = static_cast<_type_reduce>({self.map_expr});
        _s = REDUCE(_s, _a);
    }}
    type_{o.name} &{o.name} = _raw_{o.name}[0];
    POST_MAP(_s);
}}
"""
        fn = self._function(source, "fakecupy_reduce", n_in + 1)
        launches[self.name] += 1
        fn(*[a.ctypes.data for a in host_in + [result]], int(np.prod(shape, dtype=np.int64)))
        if outs:
            outs[0]._a[...] = result
            return outs[0]
        return ndarray._of(result)


# ================================================================ RawModule, RawKernel

class RawModule:
    """cupy.RawModule(code=..., options=..., name_expressions=...): the source built for the host (HostModule)."""

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if code is None:
            raise NotImplementedError("fakecupy: RawModule(path=...) (a cubin/ptx cannot run on the host)")
        if backend not in ("nvrtc", "nvcc"):
            raise ValueError(f"Invalid backend {backend}")
        self.code, self.options, self.name_expressions = code, tuple(options or ()), name_expressions
        self._host = HostModule(code, self.options, strict=True)
        for n in name_expressions or ():
            if n not in self._host.signatures:
                raise NotImplementedError(f"fakecupy: name expression {n!r}: only extern \"C\" kernels are emulated")

    def get_function(self, name):
        return self._host.get_function(name)

    def compile(self, log_stream=None):
        pass


class RawKernel:
    """cupy.RawKernel(code, name, options=...): kernel(grid, block, args)."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        self.code, self.name, self.options = code, name, tuple(options or ())
        self._kernel = None

    def _get(self):
        if self._kernel is None:
            self._kernel = HostModule(self.code, self.options, strict=True).get_function(self.name)
        return self._kernel

    @property
    def attributes(self):
        return self._get().attributes

    def compile(self, log_stream=None):
        self._get()

    def __call__(self, grid, block, args, **kwargs):
        return self._get()(grid, block, args, **kwargs)


# ================================================================ cupy.cuda

DEVICE_NAME = "fakecupy host emulation (NumPy + host-compiled CUDA C)"


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    compute_capability = "90"
    mem_info = property(lambda self: (64 << 30, 80 << 30))

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __int__(self):
        return self.id

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


class Stream:
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0

    def synchronize(self):
        pass

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


Stream.null = Stream(null=True)


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


def get_elapsed_time(start_event, end_event):
    return (end_event.t - start_event.t) * 1e3


class _MemoryPool:
    def free_all_blocks(self, stream=None):
        pass

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


_pool, _pinned_pool = _MemoryPool(), _MemoryPool()


def get_default_memory_pool():
    return _pool


def get_default_pinned_memory_pool():
    return _pinned_pool


def _properties(device):
    Device(device)
    return {"name": DEVICE_NAME.encode(), "totalGlobalMem": 80 << 30, "multiProcessorCount": 1, "major": 9,
            "minor": 0, "maxThreadsPerBlock": 1024, "warpSize": 32}


runtime = types.ModuleType("cupy.cuda.runtime")
runtime.__dict__.update(
    getDeviceCount=lambda: 1, getDevice=lambda: 0, setDevice=lambda d: Device(d) and None,
    getDeviceProperties=_properties, deviceSynchronize=lambda: None, runtimeGetVersion=lambda: 12080,
    driverGetVersion=lambda: 12080, memGetInfo=lambda: (64 << 30, 80 << 30), CUDARuntimeError=CUDARuntimeError,
    is_hip=False)
driver = types.ModuleType("cupy.cuda.driver")
driver.CUDADriverError = CUDADriverError
compiler = types.ModuleType("cupy.cuda.compiler")
compiler.CompileException = CompileException
cuda = types.ModuleType("cupy.cuda")
cuda.__dict__.update(runtime=runtime, driver=driver, compiler=compiler, Device=Device, Stream=Stream, Event=Event,
                     get_elapsed_time=get_elapsed_time, is_available=lambda: True,
                     get_current_stream=lambda: Stream.null, MemoryPool=_MemoryPool)

_THIS = sys.modules[__name__]
SUBMODULES = {"cupy.cuda": cuda, "cupy.cuda.runtime": runtime, "cupy.cuda.driver": driver,
              "cupy.cuda.compiler": compiler}


# ================================================================ installing it for a test

def stand_in():
    """This module, to pass as the CuPy module (backend.gpu(cp), kernels.build(cp)) with sys.modules untouched.

    Skips the calling test without a host C++ compiler, and clears `launches`."""
    reason = host_unavailable()
    if reason:
        import pytest
        pytest.skip(reason)
    launches.clear()
    return _THIS


def install(monkeypatch):
    """stand_in(), and the import of `cupy` (and its submodules) patched to it for the current test (monkeypatch
    undoes it): for what imports cupy itself, backend.select("gpu"), stylize(device="gpu"), backend.xp_of."""
    cp = stand_in()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    for name, mod in SUBMODULES.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return cp
