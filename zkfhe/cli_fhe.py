"""``zkfhe plan``, ``einsum``, ``compile`` and ``run``: the fhe package from the command line.

    zkfhe plan "ij,jk->ik" --shapes 16x32,32x32 [--slots 8192] [--plain 1]
    zkfhe einsum "ij,jk->ik" a.npy b.npy --backend seal --out c.npy
    zkfhe compile --model model.pt --batch 16 --calibrate x.npy [--degree 15 | --stages 7,7,7]
    zkfhe run --model model.pt --data x.npy [--batch 16] [--calibrate x.npy | --relu-bound B] --out y.npy

``compile`` and ``run`` take a saved model (a torch ``state_dict`` of a ``Sequential`` MLP,
loaded with ``weights_only=True``, as ``zkfhe prove`` does) and ``fhe.compile`` it: ``compile``
prints the program (per layer: layout, rotations, levels, keys, estimated time); ``run``
also encrypts ``--data`` batch by batch, runs the program, decrypts, and compares with the
torch model (max error, argmax agreement). Each ReLU becomes a minimax polynomial on
``[-B, B]``: ``--relu-bound B``, or ``--calibrate samples.npy`` (B = 1.25 x the largest
pre-activation on the samples).

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


def _load(path: str, hint: str = "OPERANDS") -> np.ndarray:
    """A .npy file, or a .npz archive holding exactly one array (pickles refused)."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise click.BadParameter(f"cannot read {path} as a .npy array: {exc}",
                                 param_hint=hint) from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            names = list(data.files)
            if len(names) != 1:
                raise click.BadParameter(
                    f"{path} is a .npz archive with {len(names)} arrays "
                    f"({', '.join(names) or 'none'}); give one operand per file: a .npy, or "
                    f".npz with a single array", param_hint=hint)
            try:
                return data[names[0]]
            except (OSError, ValueError, EOFError) as exc:
                raise click.BadParameter(f"cannot read array {names[0]!r} of {path}: {exc}",
                                         param_hint=hint) from None
    if not isinstance(data, np.ndarray):
        raise click.BadParameter(f"{path} does not hold a numpy array", param_hint=hint)
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
        _save(out, got)


def _save(path: str, array: np.ndarray) -> None:
    """Write ``--out`` (a one-line error when it cannot be written)."""
    try:
        np.save(path, array)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc}") from None
    click.echo(f"wrote {path}")


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


def _stages(ctx, param, value: str | None):
    if value is None:
        return None
    try:
        return tuple(int(d) for d in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of odd degrees like 7,7,7") from None


def _model_options(f):
    """The options ``compile`` and ``run`` share."""
    options = [
        click.option("--model", "model_path", required=True, help="torch state_dict of a Sequential MLP"),
        click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True,
                     help="inputs per encrypted batch"),
        click.option("--relu-bound", type=float, default=None,
                     help="the range [-B, B] the ReLU approximation covers"),
        click.option("--calibrate", "calibrate_path", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="samples (.npy) to take the ReLU range from: 1.25 x their largest pre-activation"),
        click.option("--degree", type=int, default=15, show_default=True,
                     help="degree of the ReLU's minimax polynomial"),
        click.option("--stages", callback=_stages, default=None,
                     help="a composite ReLU instead, e.g. 7,7,7 (more levels, smaller error)"),
        click.option("--scale-bits", type=int, default=40, show_default=True, help="CKKS scale 2^bits"),
        click.option("--bootstrap", type=int, default=None,
                     help="compile for desilo's bootstrap preset with this many levels between bootstraps"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _compiled(model_path, batch, relu_bound, calibrate_path, degree, stages, scale_bits, bootstrap):
    """``(torch model, program)``, every bad argument as a one-line usage error."""
    import torch

    import fhe
    from fhe import compiler

    from .cli_zk import load_model

    model = load_model(model_path).double()
    width = model[0].in_features
    has_relu = any(isinstance(m, torch.nn.ReLU) for m in model)
    if relu_bound is not None and calibrate_path is not None:
        raise click.BadParameter("give --relu-bound or --calibrate, not both", param_hint="--relu-bound")
    if has_relu and relu_bound is None:
        if calibrate_path is None:
            raise click.BadParameter("the model has a ReLU: give its input range with --relu-bound B, or "
                                     "--calibrate samples.npy", param_hint="--relu-bound / --calibrate")
        samples = _inputs(calibrate_path, width, "--calibrate")
        with torch.no_grad():
            h, reach = torch.from_numpy(samples), 0.0
            for m in model:
                if isinstance(m, torch.nn.ReLU):
                    reach = max(reach, float(h.abs().max()))
                h = m(h)
        relu_bound = 1.25 * reach or 1.0
    try:
        act = (None if not has_relu else compiler.relu_approx(relu_bound, degree, stages=stages))
        program = fhe.compile(model, (batch, width), act, scale_bits=scale_bits, bootstrap=bootstrap)
    except fhe.OutOfLevels as exc:
        raise click.BadParameter(str(exc), param_hint="--degree / --stages / --bootstrap") from None
    except fhe.FHEError as exc:
        raise _fhe_error(exc) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--relu-bound / --degree / --stages / --scale-bits / "
                                                      "--bootstrap") from None
    return model, program


def _inputs(path: str, width: int, option: str) -> np.ndarray:
    """A 2-D float array of ``width`` columns from a .npy file."""
    x = _load(path, option)
    if x.ndim != 2 or x.shape[1] != width or x.dtype.kind not in "biuf" or not len(x):
        raise click.BadParameter(f"{path}: expected a 2-D array of (samples, {width}) numbers, got shape "
                                 f"{x.shape} of {x.dtype}", param_hint=option)
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise click.BadParameter(f"{path}: has non-finite values", param_hint=option)
    return x


@click.command("compile")
@_model_options
def compile_cmd(**options):
    """Compile a saved model for encrypted inference and print the program."""
    _, program = _compiled(**options)
    click.echo(str(program))


@click.command("run")
@_model_options
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="inputs (.npy, samples x features)")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="default: seal (desilo for a program that bootstraps)")
@click.option("--allow-insecure", is_flag=True, help="allow parameters below 128-bit security "
              "(desilo's bootstrap preset needs it)")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="write the decrypted outputs (.npy)")
def run_cmd(data_path, backend, allow_insecure, out, **options):
    """Encrypt --data batch by batch, run the compiled model encrypted, decrypt, compare with torch."""
    import contextlib
    import sys
    import warnings

    import torch

    import fhe

    model, program = _compiled(**options)
    x = _inputs(data_path, model[0].in_features, "--data")
    batch = options["batch"]
    extra = {"allow_insecure": True} if allow_insecure else {}
    try:
        ctx = program.context(backend, **extra)
    except (fhe.InsecureParameters, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--backend / --allow-insecure") from None
    if ctx.backend_name == "sim":
        click.echo("warning: 'sim' is a simulator: nothing is encrypted")
    outputs, seconds = [], 0.0
    starts = range(0, len(x), batch)
    bar = (click.progressbar(starts, label="encrypted batches") if sys.stdout.isatty()
           else contextlib.nullcontext(starts))  # a bar on a terminal only
    with bar as bar, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", fhe.errors.ScaleOverflowWarning)
        for s in bar:
            chunk = x[s:s + batch]
            padded = np.zeros((batch, x.shape[1]))
            padded[:len(chunk)] = chunk  # the program takes whole batches: pad the last one
            try:
                t0 = time.perf_counter()
                y = ctx.decrypt(program.run(ctx.encrypt(padded, program.input_layout)))
                seconds += time.perf_counter() - t0
            except fhe.FHEError as exc:
                raise _fhe_error(exc) from None
            outputs.append(y[:len(chunk)])
    for w in {str(w.message) for w in caught}:
        click.echo(f"warning: {w}", err=True)
    got = np.concatenate(outputs)
    with torch.no_grad():
        plain = model(torch.from_numpy(x)).numpy()
    click.echo(f"{ctx!r}")
    click.echo(f"program: {program.levels} levels, {program.slots} slots, {len(program.rotation_keys)} rotation keys")
    click.echo(f"time: {seconds:.3f} s for {len(starts)} batch(es) of {batch} (encrypt, run, decrypt)")
    click.echo(f"max |decrypted - torch|: {np.abs(got - plain).max():.3e}")
    if got.shape[1] > 1:
        click.echo(f"argmax = torch: {100 * np.mean(got.argmax(1) == plain.argmax(1)):.1f} % of {len(x)}")
    if out:
        _save(out, got)


COMMANDS = [plan_cmd, einsum_cmd, compile_cmd, run_cmd]
