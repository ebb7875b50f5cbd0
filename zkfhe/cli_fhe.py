"""``zkfhe plan`` and ``zkfhe einsum``: the fhe package from the command line.

    zkfhe plan "ij,jk->ik" --shapes 16x32,32x32 [--slots 8192] [--plain 1]
    zkfhe einsum "ij,jk->ik" a.npy b.npy --backend seal --out c.npy

``einsum`` reads ``.npy`` files (or ``.npz`` archives holding one array), sizes the context
with ``fhe.Context.for_einsum`` (the fewest levels the plan needs, unless ``--levels``), and
prints the decrypted result's error against numpy. Errors are one line, never a traceback:
bad arguments (ring degree, scale, levels, shapes, unreadable or ambiguous files) exit 2,
failures of the computation exit 1.
"""
from __future__ import annotations

import time

import click
import numpy as np

#: backend parameter options shared by the commands
BACKENDS = ("sim", "seal", "desilo")


def _shapes(text: str) -> list[tuple[int, ...]]:
    """``16x32,32x32`` -> [(16, 32), (32, 32)]; an empty item is a scalar."""
    shapes = []
    for item in text.split(","):
        item = item.strip()
        try:
            shape = tuple(int(n) for n in item.split("x")) if item else ()
        except ValueError:
            raise click.BadParameter(f"{item!r} is not a shape like 16x32") from None
        if any(n < 1 for n in shape):
            raise click.BadParameter(f"{item!r}: sizes must be positive")
        shapes.append(shape)
    return shapes


def _flags(plain: tuple[int, ...], n: int) -> list[bool]:
    for k in plain:
        if not 0 <= k < n:
            raise click.BadParameter(f"--plain {k}: there are only {n} operands (0..{n - 1})",
                                     param_hint="--plain")
    return [k not in plain for k in range(n)]


def _fhe_error(exc, levels=None):
    """An fhe error as a one-line click error: bad arguments (spec, shapes, --levels too
    few) exit 2, anything else 1."""
    import fhe

    if isinstance(exc, fhe.OutOfLevels) and levels is not None:
        return click.BadParameter(f"{levels}: {exc}", param_hint="--levels")
    if isinstance(exc, (fhe.InvalidSpec, fhe.ShapeMismatch)):
        return click.BadParameter(str(exc), param_hint="SPEC / operand shapes")
    return click.ClickException(str(exc))


@click.command("plan")
@click.argument("spec")
@click.option("--shapes", required=True, help="operand shapes, e.g. 16x32,32x32")
@click.option("--slots", default=8192, show_default=True, type=int,
              help="slots per ciphertext (ring degree / 2), a power of two")
@click.option("--plain", multiple=True, type=int,
              help="index of an operand given in the clear (repeatable)")
@click.option("--levels", type=click.IntRange(min=0), default=None,
              help="refuse plans deeper than this (0: only plans without multiplications)")
@click.option("--strategy", type=click.Choice(["auto", "aligned", "diagonal", "einhops"]),
              default="auto", show_default=True)
@click.option("--ops", is_flag=True, help="also list every instruction")
def plan_cmd(spec, shapes, slots, plain, levels, strategy, ops):
    """Print the packing plan of an encrypted einsum (no keys, no encryption)."""
    import fhe

    shapes = _shapes(shapes)
    if slots < 1 or slots & (slots - 1):
        raise click.BadParameter(f"{slots} is not a power of two", param_hint="--slots")
    try:
        p = fhe.plan(spec, *shapes, slots=slots, encrypted=_flags(plain, len(shapes)),
                     levels=levels, strategy=strategy)
    except fhe.FHEError as exc:
        raise _fhe_error(exc, levels) from None
    click.echo(p)
    if ops:
        click.echo(p.listing())
    base = p.einhops_baseline_cost()
    click.echo(f"EinHops recipe: {base if base else 'not applicable (more than one ciphertext)'}")


def _load(path: str) -> np.ndarray:
    """A .npy file, or a .npz archive holding exactly one array (pickles refused)."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise click.BadParameter(f"cannot read {path} as a .npy array: {exc}",
                                 param_hint="OPERANDS") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            names = list(data.files)
            if len(names) != 1:
                raise click.BadParameter(
                    f"{path} is a .npz archive with {len(names)} arrays "
                    f"({', '.join(names) or 'none'}); give one operand per file: a .npy, or "
                    f".npz with a single array", param_hint="OPERANDS")
            try:
                return data[names[0]]
            except (OSError, ValueError, EOFError) as exc:
                raise click.BadParameter(f"cannot read array {names[0]!r} of {path}: {exc}",
                                         param_hint="OPERANDS") from None
    if not isinstance(data, np.ndarray):
        raise click.BadParameter(f"{path} does not hold a numpy array", param_hint="OPERANDS")
    return data


@click.command("einsum")
@click.argument("spec")
@click.argument("operands", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))
@click.option("--backend", type=click.Choice(BACKENDS), default="seal", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="write the decrypted result (.npy)")
@click.option("--plain", multiple=True, type=int,
              help="index of an operand kept in the clear (repeatable)")
@click.option("--ring-degree", type=int, default=None,
              help="ring degree N, a power of two (default: smallest 128-bit-secure ring for "
                   "the levels; seal: 4096..32768)")
@click.option("--levels", type=click.IntRange(min=0), default=None,
              help="multiplicative levels (default: the fewest the plan needs; 0 only for "
                   "einsums without multiplications)")
@click.option("--scale-bits", type=int, default=40, show_default=True,
              help="CKKS scale 2^bits (seal: 20..50; desilo: 40); values must stay below "
                   "2^(59 - bits)")
@click.option("--allow-insecure", is_flag=True, help="allow parameters below 128-bit security")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="where desilofhe runs (cuda: its GPU mode; --backend desilo only)")
def einsum_cmd(spec, operands, backend, out, plain, ring_degree, levels, scale_bits,
               allow_insecure, device):
    """Encrypt the .npy operands, run the einsum encrypted, decrypt, compare with numpy."""
    import warnings

    import fhe

    if device == "cuda" and backend != "desilo":
        raise click.BadParameter(f"the {backend} backend runs on the CPU; --device cuda needs --backend desilo",
                                 param_hint="--device")
    if ring_degree is not None and (ring_degree < 2 or ring_degree & (ring_degree - 1)):
        raise click.BadParameter(f"{ring_degree} is not a power of two", param_hint="--ring-degree")
    arrays = [_load(p) for p in operands]
    encrypted = _flags(plain, len(arrays))
    if not any(encrypted):
        raise click.BadParameter("every operand is --plain: nothing to encrypt", param_hint="--plain")
    try:
        ctx = _context(backend, ring_degree, levels, scale_bits, allow_insecure, spec, arrays,
                       encrypted, device=device)
        if backend == "sim":
            click.echo("warning: 'sim' is a simulator: nothing is encrypted")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", fhe.errors.ScaleOverflowWarning)
            t0 = time.perf_counter()
            ops = [ctx.encrypt(a) if e else a for a, e in zip(arrays, encrypted)]
            t1 = time.perf_counter()
            p = ctx.plan(spec, *ops)
            ctx.generate_rotation_keys(p.rotation_keys)
            t2 = time.perf_counter()
            result = fhe.einsum(spec, *ops)
            t3 = time.perf_counter()
            got = ctx.decrypt(result)
            t4 = time.perf_counter()
    except fhe.FHEError as exc:
        raise _fhe_error(exc, levels) from None
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    reference = np.einsum(spec, *[a.astype(np.float64) for a in arrays])
    err = float(np.max(np.abs(got - reference))) if reference.size else 0.0
    click.echo(f"{ctx!r}")
    click.echo(f"plan: {p.strategy}; {p.cost()}")
    click.echo(f"time: encrypt {t1 - t0:.3f} s, rotation keys {t2 - t1:.3f} s, "
               f"einsum {t3 - t2:.3f} s (first call: also encodes the plan's masks), "
               f"decrypt {t4 - t3:.3f} s")
    click.echo(f"max |error| vs numpy: {err:.3e}")
    if out:
        try:
            np.save(out, got)
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}: {exc}") from None
        click.echo(f"wrote {out}")


def _context(backend, ring_degree, levels, scale_bits, allow_insecure, spec, arrays, encrypted,
             device: str = "cpu"):
    """``fhe.Context.for_einsum``: the fewest levels the plan needs (or ``--levels``, refused
    when too few) on the smallest secure ring; parameter errors as one-line usage errors."""
    import fhe

    extra = {"device": device} if backend == "desilo" else {}
    try:
        return fhe.Context.for_einsum(spec, *arrays, encrypted=encrypted, backend=backend,
                                      ring_degree=ring_degree, levels=levels,
                                      scale_bits=scale_bits, allow_insecure=allow_insecure,
                                      **extra)
    except fhe.InsecureParameters as exc:
        raise click.BadParameter(str(exc), param_hint="--ring-degree / --levels / --scale-bits") from None
    except ValueError as exc:
        if isinstance(exc, fhe.FHEError):
            raise
        text = str(exc)
        hint = ("--scale-bits" if "scale" in text else "--ring-degree" if "ring" in text
                else "--levels" if "level" in text else "parameters")
        raise click.BadParameter(text, param_hint=hint) from None


COMMANDS = [plan_cmd, einsum_cmd]
