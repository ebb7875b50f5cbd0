"""CUDA acceleration for the zk prover: Fr arithmetic, MLE folding, eq tables, sumcheck round
polynomials and Pippenger MSM on BLS12-381 G1, as CUDA C kernels in ``gpu/kernels``.

The functions below run on the GPU for cupy arrays and on the host build of the very same kernel
sources for numpy arrays; results are bit-identical and use the CPU path's layouts (see
:mod:`gpu.ops`). cupy is imported only when a GPU is asked for; :func:`available` says whether one
can be used. ``docs/gpu.md`` describes the kernels and how they are tested without a GPU.
"""
from __future__ import annotations

from .ops import (
    commit_rows, eq_table, fold, fp_op, fr_add, fr_from_int64, fr_inv, fr_mul, fr_sub, g1_add, g1_from_compressed,
    g1_to_compressed, msm, round_poly, vecmat,
)
from .runtime import cuda_available as available

__all__ = [
    "available", "to_device", "to_host",
    "fr_from_int64", "fr_add", "fr_sub", "fr_mul", "fr_inv", "fold", "eq_table", "round_poly", "vecmat",
    "fp_op", "g1_add", "g1_from_compressed", "g1_to_compressed", "msm", "commit_rows",
]


def to_device(a):
    """A numpy array as a cupy array on the current CUDA device."""
    import cupy

    return cupy.asarray(a)


def to_host(a):
    """A cupy (or numpy) array as a numpy array."""
    return a.get() if hasattr(a, "get") and type(a).__module__.split(".")[0] == "cupy" else a
