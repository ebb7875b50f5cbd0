"""``make cuda-check``: compile every CUDA kernel source so the kernels cannot rot on machines without a GPU.

* each ``gpu/kernels/*.cu`` with ``nvcc`` for sm_90 (Hopper SASS) plus compute_90 PTX, warnings as errors;
* the single flattened source that :class:`gpu.runtime.CudaBackend` hands to NVRTC, the same way;
* the host build (``g++ -x c++``) with ``-Wall -Wextra -Werror``, the variant the tests run.

Exits non-zero, printing the compiler output, on any failure (including a missing ``nvcc``; set ``NVCC``
to point at one). Runs the compilations in parallel; 10-16 s on two cores.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gpu import runtime

ARCH = ["-gencode", "arch=compute_90,code=[sm_90,compute_90]"]


def find_nvcc() -> str | None:
    """``$NVCC``, else ``nvcc`` on PATH, else the default CUDA install location."""
    if os.environ.get("NVCC"):
        return os.environ["NVCC"]
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None


def main() -> int:
    nvcc = find_nvcc()
    cxx = runtime.find_compiler()
    if nvcc is None:
        print("cuda-check: nvcc not found (install the CUDA toolkit or set NVCC)", file=sys.stderr)
        return 1
    if cxx is None:
        print("cuda-check: no C++ compiler found for the host build (install g++ or set CXX)", file=sys.stderr)
        return 1
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        flat = Path(tmp) / "flattened.cu"
        flat.write_text(runtime.flattened_source())
        jobs = {}
        for src in runtime.kernel_sources() + [flat]:
            obj = Path(tmp) / (src.stem + ".o")
            jobs[f"nvcc {src.name}"] = [nvcc, "-std=c++17", "-Werror", "all-warnings", *ARCH, "-c", str(src), "-o", str(obj)]
        jobs["host build"] = [cxx, "-O1", "-std=c++17", "-fPIC", "-shared", "-fopenmp", "-Wall", "-Wextra", "-Werror",
                              "-Wno-unknown-pragmas", "-x", "c++", *map(str, runtime.kernel_sources()),
                              "-o", str(Path(tmp) / "host.so")]
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            results = dict(zip(jobs, pool.map(lambda cmd: subprocess.run(cmd, capture_output=True, text=True), jobs.values())))
    failed = [name for name, r in results.items() if r.returncode != 0]
    for name in failed:
        print(f"cuda-check: {name} FAILED\n{results[name].stdout}{results[name].stderr}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    print(f"cuda-check: {len(results) - len(failed)}/{len(results)} compilations OK ({', '.join(results)}) in {elapsed:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
