"""Shared helpers of the benchmark scripts: timing, the machine line, and each script's own
section of ``docs/benchmarks.md`` (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``).

Imported by the scripts of this folder as ``from _doc import ...`` (they run as scripts, so this
folder is on ``sys.path``).
"""
from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def best_time(fn, repeat: int) -> float:
    """Minimum wall time of ``fn()`` over ``repeat`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def timed(fn):
    """``(fn(), wall seconds)`` of one run."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def reset_peak() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs``); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    """This process's peak RSS since the last :func:`reset_peak` (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def msm_unit(points: int = 1 << 16, repeat: int = 3) -> float:
    """Seconds of one ``points``-point MSM of random scalars (``zk.group.msm``, best of ``repeat``):
    the unit that makes prove times comparable across machines."""
    import numpy as np
    from zk import commit, field, group

    gens = commit.DEFAULT_KEY.g(points)
    scalars = field.random_seeded((points,), np.random.default_rng(0))
    return best_time(lambda: group.msm(gens, scalars), repeat)


def machine() -> str:
    """One line naming the OS, processor, logical CPU count and Python version."""
    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} logical CPUs; "
            f"Python {platform.python_version()}")


def write_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section ``name`` of ``doc`` with ``body``; other sections stay."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def publish(name: str, body: str, write: bool = True, doc: Path = DOC) -> None:
    """Print a benchmark's section and, unless ``write`` is false (``--no-write``), store it."""
    print(body)
    if write:
        write_section(name, body, doc)
        print(f"\nwrote {doc}")
