"""Where the kernels run: the CUDA module (CuPy ``RawModule``) or the host build of the same sources.

Both backends expose ``xp`` (``cupy`` or ``numpy``) and ``launch(name, n_threads, *args)``, which
runs kernel ``name`` for thread ids ``0 .. n_threads - 1``; ``args`` are C-contiguous arrays (passed
as pointers) and Python ints (passed as ``unsigned long long``), in the order of the kernel's
parameters after ``n_threads``. ``gpu.ops`` drives both through this one interface, so every
schedule the GPU runs is also run and tested on the host.

* :class:`CudaBackend` compiles ``kernels/*.cu`` with NVRTC once per process (CuPy also caches the
  binary on disk, keyed by the full source text, which :func:`flattened_source` inlines).
* :class:`HostBackend` compiles the same files as C++ (``g++ -x c++``, OpenMP when available) into
  a shared library cached under ``$ZKFHE_CACHE_DIR`` (default ``~/.cache/zkfhe``), keyed by a hash of
  the sources and the compiler command, and calls it through ``ctypes``.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

KERNEL_DIR = Path(__file__).with_name("kernels")
#: Threads per CUDA block; must match ZK_BLOCK in kernels/common.cuh (the kernels' launch bounds).
BLOCK = 128
_MAX_GRID = 1 << 20
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.M)


class HostBuildError(RuntimeError):
    """The host library could not be built (no C++ compiler, or the compiler failed)."""


def kernel_sources() -> list[Path]:
    """The kernel translation units (``kernels/*.cu``), sorted."""
    return sorted(KERNEL_DIR.glob("*.cu"))


def _all_kernel_files() -> list[Path]:
    return sorted(KERNEL_DIR.glob("*.cu")) + sorted(KERNEL_DIR.glob("*.cuh"))


def flattened_source() -> str:
    """All ``kernels/*.cu`` as one source string with local includes inlined once each."""
    seen: set[str] = set()

    def inline(path: Path) -> str:
        seen.add(path.name)

        def repl(match: re.Match) -> str:
            name = match.group(1)
            return "" if name in seen else inline(KERNEL_DIR / name)

        text = path.read_text().replace("#pragma once", "")
        return _INCLUDE.sub(repl, text) + "\n"

    return "".join(inline(p) for p in kernel_sources())


# ------------------------------------------------------------------------------------------------
# Host backend
# ------------------------------------------------------------------------------------------------
def find_compiler() -> str | None:
    """The C++ compiler for the host build: ``$CXX``, else ``g++``, ``c++`` or ``clang++`` on PATH."""
    if os.environ.get("CXX"):
        return os.environ["CXX"]
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cache_dir() -> Path:
    root = os.environ.get("ZKFHE_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zkfhe"


def _compile(cxx: str, flags: list[str], out: Path) -> subprocess.CompletedProcess:
    cmd = [cxx, *flags, "-x", "c++", *map(str, kernel_sources()), "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True)


def build_host_library() -> Path:
    """Compile the kernels for the host (once per source version) and return the library's path."""
    cxx = find_compiler()
    if cxx is None:
        raise HostBuildError("no C++ compiler found (install g++ or set CXX)")
    base = ["-O2", "-std=c++17", "-fPIC", "-shared", "-Wall", "-Wno-unknown-pragmas"]
    digest = hashlib.sha256(cxx.encode())
    for f in _all_kernel_files():
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    cache = _cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache = Path(tempfile.gettempdir()) / "zkfhe"
        cache.mkdir(parents=True, exist_ok=True)
    lib = cache / f"libzkgpu-host-{digest.hexdigest()[:20]}.so"
    if lib.exists():
        return lib
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    try:
        result = _compile(cxx, base + ["-fopenmp"], Path(tmp))
        if result.returncode != 0:  # compilers without OpenMP: build serial loops
            result = _compile(cxx, base, Path(tmp))
        if result.returncode != 0:
            raise HostBuildError(f"{cxx} failed to compile gpu/kernels for the host:\n{result.stderr}")
        os.replace(tmp, lib)  # atomic: concurrent builders agree
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


def _host_arg(a):
    if isinstance(a, np.ndarray):
        if not a.flags.c_contiguous:
            raise ValueError("kernel arguments must be C-contiguous arrays")
        return ctypes.c_void_p(a.ctypes.data)
    return ctypes.c_uint64(int(a))


class HostBackend:
    """The kernels compiled for the CPU, run on numpy arrays."""

    name = "host"
    xp = np
    #: Most MSM entries (scalars x windows) processed at once.
    max_entries = 1 << 22

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(str(build_host_library()))

    def launch(self, name: str, n_threads: int, *args) -> None:
        if n_threads <= 0:
            return
        fn = getattr(self._lib, name)
        fn.restype = None
        fn(ctypes.c_uint64(n_threads), *map(_host_arg, args))

    @staticmethod
    def parallelism(n: int) -> int:
        """Threads for a reduction over ``n`` items (chunks of at least 4096 items)."""
        return max(1, min(n, 64, n // 4096))


# ------------------------------------------------------------------------------------------------
# CUDA backend
# ------------------------------------------------------------------------------------------------
class CudaBackend:
    """The kernels compiled with NVRTC through CuPy, run on cupy arrays."""

    name = "cuda"
    max_entries = 1 << 28

    def __init__(self) -> None:
        import cupy

        self.xp = cupy
        self._module = cupy.RawModule(code=flattened_source())
        self._kernels: dict = {}

    def launch(self, name: str, n_threads: int, *args) -> None:
        if n_threads <= 0:
            return
        kernel = self._kernels.get(name)
        if kernel is None:
            kernel = self._kernels[name] = self._module.get_function(name)
        grid = min(-(-n_threads // BLOCK), _MAX_GRID)
        kargs = tuple(a if isinstance(a, self.xp.ndarray) else np.uint64(int(a)) for a in args)
        kernel((grid,), (BLOCK,), (np.uint64(n_threads),) + kargs)

    @staticmethod
    def parallelism(n: int) -> int:
        """Threads for a reduction over ``n`` items (about 1 << 16, at least 16 items each)."""
        return max(1, min(1 << 16, n // 16))


@functools.cache
def cuda_available() -> bool:
    """Whether cupy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDARuntimeError without a driver/device
        return False


@functools.cache
def host_backend() -> HostBackend:
    return HostBackend()


@functools.cache
def cuda_backend() -> CudaBackend:
    if not cuda_available():
        raise RuntimeError("CUDA backend requested but cupy sees no CUDA device")
    return CudaBackend()
