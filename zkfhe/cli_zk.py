"""``zkfhe commit-data``, ``commit-model``, ``prove``, ``verify``, ``verify-chain`` and ``inspect``:
zkDL proofs, and the commitments they are checked against, from the command line.

    zkfhe prove --arch 784,256,256,10 --batch 64 --steps 2 --lr 0.01 --seed 0 --out run.zkp
    zkfhe prove --model model.pt --data data.npz [--batch 64] [--steps N] --lr 0.01 --out run.zkp
    zkfhe prove --inference --model model.pt --data data.npz --out infer.zkp
    zkfhe verify run.zkp          # exit 0 and "valid", or exit 1 and the reason
    zkfhe inspect run.zkp         # statement and proof size breakdown (does not verify)

Commit-and-prove: the data owner and the model owner publish commitments first, proofs are then
checked against them, and proofs chain through the models' commitments:

    zkfhe commit-data data.npz --batch 32 --out data.zkc --opening data.zko [--scale-bits 16]
    zkfhe commit-model --model model.pt|--arch 784,256,10 [--seed 0 --bias] --out model.zkc \
        --opening model.zko [--scale-bits 16] [--param-scale BITS | --lr 0.01]
    zkfhe prove --model model.zko --data data.zko --lr 0.01 [--epochs N | --steps N] [--start-batch I] \
        --out epoch1.zkp --save-opening final1.zko --save-model-commitment final1.zkc
    zkfhe prove --model final1.zko --data data.zko --lr 0.01 --out epoch2.zkp --save-opening final2.zko
    zkfhe prove --inference --model final2.zko --data test.npz --out infer.zkp
    zkfhe verify epoch1.zkp --data data.zkc --model model.zkc     # --model: the initial model
    zkfhe verify infer.zkp --model final2.zkc                     # --model: the model inferred with
    zkfhe verify-chain epoch1.zkp epoch2.zkp --data data.zkc --model model.zkc
    zkfhe inspect FILE            # any zkfhe file: proof, chain, commitment, or (secret) opening

Long runs are proved as chains of segment proofs, in parallel on local processes or Ray:

    zkfhe prove --model model.zko --data data.zko --epochs 4 --lr 0.01 --segment-steps 32 \
        --executor ray --workers 8 --out run.zkchain --save-opening final.zko
    zkfhe verify-chain run.zkchain --data data.zkc --model model.zkc

A commitment (``.zkc``) is public; an opening (``.zko``) is SECRET: the integers and blinds the
prover needs, never a verifier (``inspect`` shows only that it is secret and its commitment).
``commit-*`` refuse to overwrite existing files unless ``--force`` (a new commitment has fresh
blinds, hence another digest). Files are told apart by their magic bytes.

The model is either ``--arch`` (a seeded random ReLU MLP, with biases if ``--bias``),
``--model`` a model opening, or ``--model`` a torch ``state_dict`` of a ``Sequential`` of
``Linear`` layers, with or without bias, and ``ReLU`` between them: keys ``0.weight``,
``0.bias``, ``2.weight``, .... The data is either ``--data`` a dataset opening (its batches as
committed; the last may be smaller), ``--data`` an ``.npz`` with arrays ``X`` and ``Y`` (cut into
consecutive batches of ``--batch`` rows, the last one possibly smaller, as ``commit-data`` cuts
them; ``--inference`` takes the first batch and needs no ``Y``), or
seeded random ``X, Y ~ N(0, 1)``, one batch per step. ``--inference`` proves the model's output
on one batch instead of training. Every output file is written to a temporary file beside it and
renamed (all of a command's outputs together), so a failed run never leaves a partial file.
Exit codes: 0 done or valid, 1 invalid or malformed input, 2 usage errors.
"""
from __future__ import annotations

import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

#: Batch size used when --batch is not given (with --data: at most the number of rows).
DEFAULT_BATCH = 64
DEFAULT_LR = 0.01


# ----------------------------------------------------------------------------------------
# argument parsing and loading
# ----------------------------------------------------------------------------------------
def _arch(ctx, param, value: str | None) -> tuple[int, ...] | None:
    """``784,256,10`` -> (784, 256, 10): at least two positive widths."""
    if value is None:
        return None
    try:
        widths = tuple(int(w) for w in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of widths like 784,256,10") from None
    if len(widths) < 2 or min(widths) < 1:
        raise click.BadParameter(f"{value!r}: an MLP needs at least two widths, all positive")
    return widths


def _lr(ctx, param, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value} is not a positive learning rate")
    return value


def _readable(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise click.ClickException(f"{what} {path}: no such file")
    if p.is_dir():
        raise click.ClickException(f"{what} {path}: is a directory")
    if not os.access(p, os.R_OK):
        raise click.ClickException(f"{what} {path}: permission denied")
    return p


def mlp_from_weights(weights: list, biases: list | None = None):
    """A ``Sequential(Linear, ReLU, ..., Linear)`` holding the given weight tensors (``(out, in)``
    each; their dtype is kept) and biases (``(out,)`` each, or None for a bias-free layer)."""
    import torch

    layers: list[torch.nn.Module] = []
    for i, w in enumerate(weights):
        b = biases[i] if biases else None
        linear = torch.nn.Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w)
            if b is not None:
                linear.bias.copy_(b)
        layers.append(linear)
        if i < len(weights) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def load_model(path: str, option: str = "--model"):
    """The MLP of a torch ``state_dict`` file (loaded with ``weights_only=True``)."""
    import torch

    p = _readable(path, option)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(f"{option} {path}: not a torch state_dict file ({first})") from None
    if not isinstance(state, dict) or not state:
        raise click.ClickException(f"{option} {path}: expected a state_dict (torch.save(model.state_dict(), "
                                   f"path)), got {type(state).__name__}")
    layers, biases = {}, {}
    for key, value in state.items():
        m = re.fullmatch(r"(\d+)\.(weight|bias)", str(key))
        if m is None:
            raise click.ClickException(f"{option} {path}: unexpected key {key!r} (expected the keys of a "
                                       "Sequential MLP: 0.weight, 0.bias, 2.weight, ...)")
        ndim = 2 if m[2] == "weight" else 1
        if not isinstance(value, torch.Tensor) or value.ndim != ndim or not value.is_floating_point():
            what = "2-D floating-point weight matrix" if ndim == 2 else "1-D floating-point bias vector"
            raise click.ClickException(f"{option} {path}: {key} is not a {what}")
        if not torch.isfinite(value).all():
            raise click.ClickException(f"{option} {path}: {key} has non-finite values")
        (layers if ndim == 2 else biases)[int(m[1])] = value.detach()
    indices = sorted(layers)
    if indices != list(range(0, 2 * len(indices), 2)):
        raise click.ClickException(f"{option} {path}: layer indices {indices}; expected 0, 2, 4, ... "
                                   "(Linear layers with a ReLU between each two)")
    weights = [layers[i] for i in indices]
    for i, (a, b) in enumerate(zip(weights, weights[1:])):
        if b.shape[1] != a.shape[0]:
            raise click.ClickException(f"{option} {path}: {2 * i + 2}.weight has {b.shape[1]} inputs but "
                                       f"{2 * i}.weight has {a.shape[0]} outputs")
    for i, b in biases.items():
        if i not in layers:
            raise click.ClickException(f"{option} {path}: {i}.bias has no {i}.weight")
        if b.shape[0] != layers[i].shape[0]:
            raise click.ClickException(f"{option} {path}: {i}.bias has {b.shape[0]} entries but "
                                       f"{i}.weight has {layers[i].shape[0]} outputs")
    return mlp_from_weights(weights, [biases.get(i) for i in indices])


def load_data(path: str, need_y: bool, option: str = "--data") -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, Y)`` from an ``.npz`` (``Y`` is None when not ``need_y``), as float64 matrices."""
    p = _readable(path, option)
    try:
        npz = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for a bad file
        raise click.ClickException(f"{option} {path}: cannot read it as an .npz archive ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise click.ClickException(f"{option} {path}: expected an .npz archive with arrays X and Y, "
                                   "not a single .npy array")
    names = ["X", "Y"] if need_y else ["X"]
    with npz:
        missing = [n for n in names if n not in npz.files]
        if missing:
            raise click.ClickException(f"{option} {path}: no array {' or '.join(missing)} "
                                       f"(the archive holds {', '.join(npz.files) or 'nothing'})")
        try:
            arrays = [npz[n] for n in names]
        except Exception as exc:  # noqa: BLE001 - a corrupt member, or an object array (pickle)
            raise click.ClickException(f"{option} {path}: cannot read its arrays ({exc})") from None
    out = []
    for name, a in zip(names, arrays):
        if a.ndim != 2 or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise click.ClickException(f"{option} {path}: {name} must be a 2-D array of numbers "
                                       f"(rows x features), got shape {a.shape} dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise click.ClickException(f"{option} {path}: {name} has non-finite values")
        out.append(a.astype(np.float64))
    x, y = out[0], (out[1] if need_y else None)
    if y is not None and len(y) != len(x):
        raise click.ClickException(f"{option} {path}: X has {len(x)} rows but Y has {len(y)}")
    return x, y


# ----------------------------------------------------------------------------------------
# progress and output
# ----------------------------------------------------------------------------------------
class _Progress:
    """The ``progress(stage, done, total)`` callback of the provers, drawn as one tqdm bar per stage."""

    def __init__(self) -> None:
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{stage:16s}", file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]")
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check_writable(out: str, option: str) -> Path:
    p = Path(out)
    if p.is_dir():
        raise click.BadParameter(f"{out} is a directory", param_hint=option)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise click.BadParameter(f"directory {parent} does not exist", param_hint=option)
    if not os.access(parent, os.W_OK):
        raise click.BadParameter(f"directory {parent} is not writable", param_hint=option)
    return p


def _loss_note(statement) -> str:
    """``", softmax cross-entropy"`` for a proof of cross-entropy training (MSE, the default: nothing)."""
    return ", softmax cross-entropy" if getattr(statement, "loss", "mse") == "cross_entropy" else ""


def _check_device(device: str):
    """The prover device for ``--device`` (zk.device); a clear error where CUDA cannot be used."""
    from zk import device as zk_device

    try:
        return zk_device.resolve(device)
    except RuntimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None


# ----------------------------------------------------------------------------------------
# zkfhe files: commitments, openings and proofs, told apart by their magic bytes
# ----------------------------------------------------------------------------------------
#: magic bytes -> (what the file is, whether it is a secret opening)
KINDS = {
    b"ZKDATA\0\0": ("dataset commitment", False),
    b"ZKDOPEN\0": ("dataset opening", True),
    b"ZKMODEL\0": ("model commitment", False),
    b"ZKMOPEN\0": ("model opening", True),
    b"ZKTRAIN\0": ("training proof", False),
    b"ZKINFER\0": ("inference proof", False),
    b"ZKEINSUM": ("einsum proof", False),
    b"ZKCHAIN\0": ("training chain", False),
}
PROOFS = ("training proof", "inference proof", "einsum proof")


def _parser(kind: str):
    import zk

    return {"dataset commitment": zk.DatasetCommitment, "dataset opening": zk.DatasetOpening,
            "model commitment": zk.ModelCommitment, "model opening": zk.ModelOpening,
            "training proof": zk.TrainingProof, "inference proof": zk.InferenceProof,
            "einsum proof": zk.EinsumProof, "training chain": zk.Chain}[kind].from_bytes


def _sniff(path: str, option: str) -> str | None:
    """The kind of zkfhe file at ``path`` (by its first 8 bytes), or None for another file."""
    p = _readable(path, option)
    try:
        with open(p, "rb") as f:
            return KINDS.get(f.read(8), (None,))[0]
    except OSError as exc:
        raise click.ClickException(f"{option} {path}: cannot read it ({exc.strerror or exc})") from None


def _read_zk(path: str, expected: tuple[str, ...], option: str, noun: str):
    """``(kind, object)`` of a zkfhe file whose kind is one of ``expected``; ClickException (exit
    1) for a missing, empty, foreign, malformed or other kind of file. ``noun`` names what was
    expected in the messages ("proof", "file", "dataset commitment", ...)."""
    import zk

    p = _readable(path, option)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise click.ClickException(f"malformed {noun} {path}: the file is empty")
    kind, secret = KINDS.get(data[:8], (None, False))
    if kind is None:
        raise click.ClickException(f"malformed {noun} {path}: not a zkfhe {noun} file (unknown magic bytes)")
    if kind not in expected:
        hint = ""
        public, secret_ = kind.replace("opening", "commitment"), kind.replace("commitment", "opening")
        where = {"dataset commitment": "commit-data --out", "dataset opening": "commit-data --opening",
                 "model commitment": "commit-model --out or prove --save-model-commitment",
                 "model opening": "commit-model --opening or prove --save-opening"}
        if secret and public in expected:
            hint = f"; it is SECRET: give the public {public} ({where[public]}), and never publish the opening"
        elif not secret and secret_ in expected:
            hint = f"; proving needs the secret {secret_} ({where[secret_]})"
        raise click.ClickException(f"{option} {path}: a {kind}, not a {' or '.join(expected)}{hint}")
    try:
        return kind, _parser(kind)(data)
    except zk.ProofFormatError as exc:
        label = "proof" if kind in PROOFS else kind
        raise click.ClickException(f"malformed {label} {path}: {exc}") from None


def _short(digest: bytes) -> str:
    return digest[:8].hex()


# ----------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------
def _distinct(*options: tuple[str, str | None]) -> None:
    seen: dict[Path, str] = {}
    for name, value in options:
        if value is None:
            continue
        p = Path(value).resolve()
        if p in seen:
            raise click.UsageError(f"{seen[p]} and {name} name the same file {value}")
        seen[p] = name


def _write_all(files: list[tuple[Path, object]]) -> None:
    """``[(path, write(file))]``: every file to a temporary file beside it, then all renamed, so
    that a failure leaves none of them half-written (and the old files in place)."""
    temps: list[tuple[str, Path]] = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path, write in files:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give the file the usual mode
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise


def _bytes_writer(data: bytes):
    return lambda f: f.write(data)


def _check_new(out: str, option: str, force: bool) -> Path:
    p = _check_writable(out, option)
    if p.exists() and not force:
        raise click.BadParameter(f"{out} exists; a new commitment has fresh blinds, hence another digest, and "
                                 "overwriting a published commitment or its opening loses it (--force to "
                                 "overwrite)", param_hint=option)
    return p


_COMMIT_OUT = [
    click.option("--out", required=True, type=str, metavar="FILE",
                 help="the public commitment to write (publish it)"),
    click.option("--opening", "opening_out", required=True, type=str, metavar="FILE",
                 help="the SECRET opening to write (the prover keeps it; a verifier never needs it)"),
    click.option("--force", is_flag=True, help="overwrite --out and --opening if they exist"),
    click.option("--quiet", "-q", is_flag=True, help="no progress bar and no summary"),
]


def _commit_out(f):
    for option in reversed(_COMMIT_OUT):
        f = option(f)
    return f


def _publish(kind: str, paths, names, commitment, opening, quiet: bool, summary) -> None:
    """Write a commitment and its opening together (``paths``: where, ``names``: as given), then
    say what was written unless ``quiet``; ``summary()`` describes the commitment."""
    (out_path, opening_path), (out, opening_out) = paths, names
    _write_all([(out_path, _bytes_writer(commitment.to_bytes())), (opening_path, _bytes_writer(opening.to_bytes()))])
    if quiet:
        return
    click.echo(f"wrote {out}: the {kind} commitment (public), {summary()}")
    click.echo(f"digest {commitment.digest.hex()}")
    click.echo(f"wrote {opening_out}: the {kind} opening, SECRET: the prover needs it, a verifier never "
               "does; do not publish it")


@click.command("commit-data")
@click.argument("data_file", type=str, metavar="DATA.npz")
@click.option("--batch", type=click.IntRange(min=1),
              help=f"rows per batch; the last batch may be smaller [default: {DEFAULT_BATCH}, at most the "
                   "row count]")
@click.option("--scale-bits", type=click.IntRange(1, 40), default=16, show_default=True,
              help="fixed point of the data: values are encoded as integers at 2^scale-bits")
@_commit_out
def commit_data_cmd(data_file, batch, scale_bits, out, opening_out, force, quiet):
    """Commit to a dataset (an .npz with arrays X and Y) batch by batch, before any proof.

    Writes the public dataset commitment (--out: publish it; verifiers check proofs against it
    with `zkfhe verify --data`) and the secret opening (--opening: `zkfhe prove --data` takes
    it). Existing files are not overwritten unless --force: a new commitment of the same data
    has fresh blinds, hence another digest.

    \b
    zkfhe commit-data data.npz --batch 32 --out data.zkc --opening data.zko
    """
    _distinct(("--out", out), ("--opening", opening_out))
    out_path, opening_path = _check_new(out, "--out", force), _check_new(opening_out, "--opening", force)
    x, y = load_data(data_file, need_y=True, option="DATA")
    if len(x) == 0:
        raise click.ClickException(f"DATA {data_file}: X has no rows")
    batch = batch or min(DEFAULT_BATCH, len(x))
    if batch > len(x):
        raise click.ClickException(f"DATA {data_file}: {len(x)} rows, fewer than --batch {batch}")

    import zk

    progress = None if quiet else _Progress()
    try:
        commitment, opening = zk.commit_dataset(x, y, batch, scale_bits, progress=progress)
    except ValueError as exc:
        raise click.ClickException(f"cannot commit: {exc}") from None
    finally:
        if progress is not None:
            progress.close()
    last = f", the last one {commitment.rows[-1]} rows" if commitment.rows[-1] != batch else ""
    _publish("dataset", (out_path, opening_path), (out, opening_out), commitment, opening, quiet,
             lambda: f"{commitment.batches} batch{'es' if commitment.batches > 1 else ''} of {batch} rows{last}, "
                     f"X {commitment.features} and Y {commitment.outputs} columns, scale 2^{scale_bits}")


@click.command("commit-model")
@click.option("--arch", callback=_arch, metavar="W0,W1,...",
              help="random MLP with these widths, as `zkfhe prove --arch` (or --model)")
@click.option("--model", "model_path", type=str, metavar="FILE",
              help="torch state_dict of a Sequential MLP (.pt)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the --arch model")
@click.option("--bias", is_flag=True, help="the --arch model's Linear layers have biases")
@click.option("--scale-bits", type=click.IntRange(1, 40), default=16, show_default=True,
              help="fixed point of the activations (2^scale-bits); the data must use the same")
@click.option("--param-scale", type=click.IntRange(1, 56), metavar="BITS",
              help="fixed point of the parameters, 2^BITS [default: what training at --lr needs, or "
                   "without --lr 2 * scale-bits]")
@click.option("--lr", type=float, callback=_lr,
              help="the learning rate the model will be trained at (sets the default --param-scale)")
@_commit_out
def commit_model_cmd(arch, model_path, seed, bias, scale_bits, param_scale, lr, out, opening_out, force, quiet):
    """Commit to a ReLU MLP's parameters, so proofs can be checked against a published model.

    Writes the public model commitment (--out: `zkfhe verify --model` checks a training proof
    starts from it, or an inference proof is of it) and the secret opening (--opening: `zkfhe
    prove --model` takes it). Existing files are not overwritten unless --force.

    \b
    zkfhe commit-model --arch 784,256,10 --seed 0 --out model.zkc --opening model.zko
    zkfhe commit-model --model model.pt --lr 0.01 --out model.zkc --opening model.zko
    """
    if (arch is None) == (model_path is None):
        raise click.UsageError("give exactly one of --arch (random model) or --model (model file)")
    if bias and model_path:
        raise click.UsageError("--bias applies to --arch models (a --model file has its own biases)")
    if param_scale is not None and lr is not None:
        raise click.UsageError("give --param-scale or --lr (which sets the default parameter scale), not both")
    if param_scale is not None and not scale_bits <= param_scale <= min(56, 2 * scale_bits + 24):
        raise click.BadParameter(f"{param_scale} is not in [scale-bits, min(56, 2 scale-bits + 24)] = "
                                 f"[{scale_bits}, {min(56, 2 * scale_bits + 24)}]", param_hint="--param-scale")
    _distinct(("--out", out), ("--opening", opening_out))
    out_path, opening_path = _check_new(out, "--out", force), _check_new(opening_out, "--opening", force)
    if model_path and _sniff(model_path, "--model") is not None:
        raise click.ClickException(f"--model {model_path}: a {_sniff(model_path, '--model')}, not a torch "
                                   "state_dict (`zkfhe inspect` shows it)")

    import zk
    from zk.training import synthetic_mlp

    model = load_model(model_path) if model_path else synthetic_mlp(arch, seed, bias=bias)
    try:
        commitment, opening = zk.commit_model(model, scale_bits, param_scale, lr)
    except ValueError as exc:
        raise click.ClickException(f"cannot commit: {exc}") from None
    _publish("model", (out_path, opening_path), (out, opening_out), commitment, opening, quiet,
             lambda: f"{commitment.architecture.describe()}, activations 2^{commitment.scale_bits}, "
                     f"parameters 2^{commitment.param_scale}")


@click.command("prove")
@click.option("--arch", callback=_arch, metavar="W0,W1,...",
              help="random MLP with these widths, e.g. 784,256,256,10 (or --model)")
@click.option("--model", "model_path", type=str, metavar="FILE",
              help="a model opening (.zko, from commit-model or --save-opening) or a torch state_dict "
                   "of a Sequential MLP (.pt)")
@click.option("--data", "data_path", type=str, metavar="FILE",
              help="a dataset opening (.zko, from commit-data) or an .npz with arrays X (rows x inputs) "
                   "and Y (rows x outputs)")
@click.option("--batch", type=click.IntRange(min=1),
              help=f"rows per batch of an .npz or of the random data [default: {DEFAULT_BATCH}; with --data "
                   "at most its row count]")
@click.option("--steps", type=click.IntRange(min=1),
              help="SGD steps [default: 1; with --data one per batch]; batches cycle if more")
@click.option("--epochs", type=click.IntRange(min=1),
              help="passes over the --data batches (instead of --steps)")
@click.option("--start-batch", type=click.IntRange(min=0), default=0, show_default=True,
              help="the --data batch of the first step (the next steps take the next batches)")
@click.option("--lr", type=float, callback=_lr, help=f"learning rate [default: {DEFAULT_LR}]")
@click.option("--momentum", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="torch.optim.SGD's momentum (its buffers are committed from step to step)")
@click.option("--dampening", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="torch.optim.SGD's dampening of the momentum")
@click.option("--weight-decay", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="torch.optim.SGD's weight decay")
@click.option("--loss", type=click.Choice(["mse", "cross-entropy"]), default="mse", show_default=True,
              help="the training loss: MSE, or softmax cross-entropy (Y's rows: one-hot classes or probabilities)")
@click.option("--scale-bits", type=click.IntRange(1, 40),
              help="fixed point of the activations [default: the dataset opening's or model opening's, else 16]")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the random model and data")
@click.option("--bias", is_flag=True, help="the --arch model's Linear layers have biases")
@click.option("--inference", is_flag=True, help="prove inference on one batch instead of training")
@click.option("--out", required=True, type=str, metavar="FILE", help="proof file to write")
@click.option("--save-model", type=str, metavar="FILE",
              help="also write the trained model's state_dict here (training)")
@click.option("--save-opening", type=str, metavar="FILE",
              help="also write the trained model's SECRET opening here: the --model of a next proof (training)")
@click.option("--save-model-commitment", type=str, metavar="FILE",
              help="also write the trained model's public commitment here (training)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="where the prover's heavy loops run: auto = cuda when cupy sees a GPU, else cpu "
                   "(the proof is the same)")
@click.option("--segment-steps", type=click.IntRange(1, 4096), metavar="K",
              help="prove the run as a chain of segment proofs of K steps each; --out is then a chain file "
                   "(zkfhe verify-chain)")
@click.option("--executor", type=click.Choice(["inline", "process", "ray"]), default="inline", show_default=True,
              help="where the segments are proved: this process, local processes, or Ray tasks (with --segment-steps)")
@click.option("--workers", type=click.IntRange(min=1), help="segments proved side by side [default: one per core]")
@click.option("--ray-address", type=str, metavar="ADDR",
              help="an existing Ray cluster (--executor ray) [default: a local Ray started for the run]")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar and no summary")
def prove_cmd(arch, model_path, data_path, batch, steps, epochs, start_batch, lr, momentum, dampening, weight_decay,
              loss, scale_bits, seed, bias, inference, out, save_model, save_opening, save_model_commitment, device,
              segment_steps, executor, workers, ray_address, quiet):
    """Prove SGD training (or, with --inference, inference) of a ReLU MLP and write the proof.

    \b
    zkfhe prove --arch 784,256,256,10 --batch 64 --steps 2 --lr 0.01 --seed 0 --out run.zkp
    zkfhe prove --model model.pt --data data.npz --steps 4 --lr 0.01 --out run.zkp
    zkfhe prove --model model.zko --data data.zko --epochs 1 --lr 0.01 --out run.zkp \\
        --save-opening final.zko --save-model-commitment final.zkc
    zkfhe prove --inference --model final.zko --data data.npz --out infer.zkp
    zkfhe prove --model model.zko --data data.zko --epochs 4 --lr 0.01 --segment-steps 32 \\
        --executor process --workers 2 --out run.zkchain --save-opening final.zko
    """
    if (arch is None) == (model_path is None):
        raise click.UsageError("give exactly one of --arch (random model) or --model (model file)")
    if bias and model_path:
        raise click.UsageError("--bias applies to --arch models (a --model file has its own biases)")
    if inference:
        for name, value in (("--steps", steps), ("--epochs", epochs), ("--lr", lr), ("--save-model", save_model),
                            ("--momentum", momentum or None), ("--dampening", dampening or None),
                            ("--weight-decay", weight_decay or None), ("--loss", None if loss == "mse" else loss),
                            ("--start-batch", start_batch or None), ("--save-opening", save_opening),
                            ("--save-model-commitment", save_model_commitment)):
            if value is not None:
                raise click.UsageError(f"{name} applies to training proofs, not --inference")
    if steps is not None and epochs is not None:
        raise click.UsageError("give --steps or --epochs, not both")
    if segment_steps is None:
        for name, value, default in (("--executor", executor, "inline"), ("--workers", workers, None),
                                     ("--ray-address", ray_address, None)):
            if value != default:
                raise click.UsageError(f"{name} applies to runs proved in segments (--segment-steps)")
    elif inference:
        raise click.UsageError("--segment-steps applies to training proofs, not --inference")
    if ray_address is not None and executor != "ray":
        raise click.UsageError("--ray-address applies to --executor ray")
    if executor == "inline" and workers not in (None, 1):
        raise click.UsageError("--executor inline runs one worker (this process); use process or ray for --workers")
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise click.BadParameter("Ray is not installed (pip install 'zkfhe[ray]'), use --executor process",
                                     param_hint="--executor")
    if data_path is None and (epochs is not None or start_batch):
        raise click.UsageError("--epochs and --start-batch apply to --data batches")
    _distinct(("--out", out), ("--save-model", save_model), ("--save-opening", save_opening),
              ("--save-model-commitment", save_model_commitment))
    out_path = _check_writable(out, "--out")
    save_path = _check_writable(save_model, "--save-model") if save_model else None
    opening_path = _check_writable(save_opening, "--save-opening") if save_opening else None
    mc_path = _check_writable(save_model_commitment, "--save-model-commitment") if save_model_commitment else None
    device = _check_device(device)

    from zk.training import synthetic_batches, synthetic_mlp

    # the model: a committed model's opening, a state_dict, or a random MLP
    if model_path and _sniff(model_path, "--model") is not None:
        _, model = _read_zk(model_path, ("model opening",), "--model", "model opening")
        a = model.commitment.architecture
        widths = a.widths or (a.features, a.outputs)
    else:
        model = load_model(model_path) if model_path else synthetic_mlp(arch, seed, bias=bias)
        widths = tuple([model[0].in_features] + [m.out_features for m in model if hasattr(m, "out_features")])
    # the data: a committed dataset's opening, an .npz, or random batches
    dataset = None
    if data_path and _sniff(data_path, "--data") is not None:
        if inference:
            raise click.UsageError("--inference takes its batch from an .npz (--data), not a dataset opening")
        if batch is not None:
            raise click.UsageError("--batch applies to .npz or random data; a dataset opening has its batches")
        _, dataset = _read_zk(data_path, ("dataset opening",), "--data", "dataset opening")
        dc = dataset.commitment
        if (dc.features, dc.outputs) != (widths[0], widths[-1]):
            raise click.ClickException(f"--data {data_path}: X has {dc.features} columns, Y has {dc.outputs}; the "
                                       f"model {'-'.join(map(str, widths))} needs {widths[0]} and {widths[-1]}")
        batch, n = dc.batch_size, dc.batches
        batches = dataset
    elif data_path:
        x, y = load_data(data_path, need_y=not inference)
        if x.shape[1] != widths[0] or (y is not None and y.shape[1] != widths[-1]):
            got = f"X has {x.shape[1]} columns" + ("" if y is None else f", Y has {y.shape[1]}")
            raise click.ClickException(f"--data {data_path}: {got}; the model "
                                       f"{'-'.join(map(str, widths))} needs {widths[0]}"
                                       + ("" if y is None else f" and {widths[-1]}"))
        if len(x) == 0:
            raise click.ClickException(f"--data {data_path}: X has no rows")
        batch = batch or min(DEFAULT_BATCH, len(x))
        if len(x) < batch:
            raise click.ClickException(f"--data {data_path}: {len(x)} rows, fewer than --batch {batch}")
        n = 1 if inference else -(-len(x) // batch)  # training: the last batch may be smaller, as commit-data's
        batches = [(x[i * batch:(i + 1) * batch], None if y is None else y[i * batch:(i + 1) * batch])
                   for i in range(n)]
        if inference and len(x) > batch and not quiet:
            click.echo(f"note: the last {len(x) - batch} rows of --data are beyond the first batch and are not used",
                       err=True)
    else:
        batch = batch or DEFAULT_BATCH
        n = 1 if inference else (steps or 1)
        batches = synthetic_batches(widths, batch, n, seed + 1)
        if loss != "mse":  # classes: the argmax of the random targets, one-hot
            batches = [(x, np.eye(y.shape[1], dtype=np.float32)[np.argmax(y, axis=1)]) for x, y in batches]
    if start_batch >= n:
        raise click.BadParameter(f"{start_batch}: --data has {n} batch{'es' if n > 1 else ''} (0 to {n - 1})",
                                 param_hint="--start-batch")
    lr = DEFAULT_LR if lr is None else lr
    if epochs is not None and dataset is None:
        steps, epochs = epochs * n, None  # an .npz: the same batches, cycled (one commitment per batch)
    steps = steps if steps is not None or epochs is not None else (n if dataset is not None else len(batches))

    import circuits
    import zk

    progress = None if quiet else _Progress()
    sgd = dict(momentum=momentum, dampening=dampening, weight_decay=weight_decay, loss=loss.replace("-", "_"))
    t0 = time.perf_counter()
    try:
        if inference:
            proof = zk.prove_inference(model, batches[0][0], scale_bits=scale_bits, progress=progress, device=device)
            result = None
        elif segment_steps is not None:
            result = zk.prove_run(model, batches, lr, steps=steps, segment_steps=segment_steps, epochs=epochs,
                                  executor=executor, workers=workers, ray_address=ray_address,
                                  scale_bits=scale_bits, start_batch=start_batch, device=device.name,
                                  progress=progress, **sgd)
            chain = result.chain
            proof = chain.proof(len(chain) - 1)
        else:
            result = zk.prove_training(model, batches, lr, steps=steps, scale_bits=scale_bits, progress=progress,
                                       device=device, epochs=epochs, start_batch=start_batch, **sgd)
            proof = result.proof
    except (circuits.UnsupportedOp, ValueError, TypeError, OverflowError, RuntimeError, zk.ZKError) as exc:
        raise click.ClickException(f"cannot prove: {exc}") from None
    finally:
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - t0
    data = (chain if segment_steps is not None else proof).to_bytes()
    files = [(out_path, _bytes_writer(data))]
    if save_path is not None:
        import torch

        files.append((save_path, lambda f: torch.save(result.model.state_dict(), f)))
    if opening_path is not None:
        files.append((opening_path, _bytes_writer(result.opening.to_bytes())))
    if mc_path is not None:
        files.append((mc_path, _bytes_writer(proof.final_model.to_bytes())))
    _write_all(files)
    if not quiet:
        st = proof.statement
        what = ("inference proof" if inference else
                f"training proof of {st.steps} SGD step{'s' if st.steps > 1 else ''} (lr {lr}{_loss_note(st)})")
        used = st.batch_indices
        if segment_steps is not None:
            used = result.batch_indices
            what = (f"chain of {len(chain)} segment proof{'s' if len(chain) > 1 else ''}, {len(used)} SGD steps "
                    f"(lr {lr}, {segment_steps} per segment, executor {executor})")
        click.echo(f"wrote {out}: {what}, MLP {'-'.join(map(str, widths))}, batch {batch}; "
                   f"{len(data):,} bytes, proved in {elapsed:.1f} s on {device.name}")
        if dataset is not None:
            click.echo(f"dataset {_short(dataset.commitment.digest)}, batches used {_batches(used)}")
        if isinstance(model, zk.ModelOpening):
            click.echo(f"{'model' if inference else 'initial model'} {_short(model.commitment.digest)} "
                       f"(the committed model of --model {model_path})")
        if not inference:
            click.echo(f"final model {proof.final_model.digest.hex()}")
        if save_path is not None:
            click.echo(f"wrote {save_model}: the trained model (state_dict)")
        if opening_path is not None:
            click.echo(f"wrote {save_opening}: the trained model's opening, SECRET: the --model of a next proof; "
                       "do not publish it")
        if mc_path is not None:
            click.echo(f"wrote {save_model_commitment}: the trained model's commitment (public)")


def _batches(indices) -> str:
    """``0-3, 0-1`` for ``(0, 1, 2, 3, 0, 1)``."""
    runs, start = [], 0
    for i in range(1, len(indices) + 1):
        if i == len(indices) or indices[i] != indices[i - 1] + 1:
            a, b = indices[start], indices[i - 1]
            runs.append(str(a) if a == b else f"{a}-{b}")
            start = i
    return ", ".join(runs)


def _read_proof(path: str, option: str = "proof file"):
    """Parse a proof file (training, inference or einsum, by its magic bytes); ClickException if
    malformed or not a proof."""
    return _read_zk(path, PROOFS, option, "proof")


def _verifier_error(exc: Exception) -> str:
    import zk

    if isinstance(exc, zk.VerificationError):
        return str(exc)
    return f"the verifier rejected it ({type(exc).__name__}: {exc})"


@click.command("verify")
@click.argument("proof_file", type=str)
@click.option("--data", "data_path", type=str, metavar="FILE",
              help="a published dataset commitment (.zkc): every step must have used one of its batches")
@click.option("--model", "model_path", type=str, metavar="FILE",
              help="a published model commitment (.zkc): the training must start from it, or the inference "
                   "be of it")
def verify_cmd(proof_file, data_path, model_path):
    """Verify a proof file: exit 0 and "valid", or exit 1 and the reason it is invalid.

    With --data and --model the proof is also checked against published commitments (from
    commit-data, commit-model, or a previous proof's --save-model-commitment).

    \b
    zkfhe verify run.zkp --data data.zkc --model model.zkc
    zkfhe verify infer.zkp --model final.zkc
    """
    import zk

    kind, proof = _read_proof(proof_file)
    if kind == "einsum proof" and (data_path or model_path):
        raise click.UsageError("--data and --model apply to training and inference proofs, not einsum proofs")
    if kind == "inference proof" and data_path:
        raise click.UsageError("--data applies to training proofs (an inference proof is not about a published "
                               "dataset)")
    dataset = _read_zk(data_path, ("dataset commitment",), "--data", "dataset commitment")[1] if data_path else None
    model = _read_zk(model_path, ("model commitment",), "--model", "model commitment")[1] if model_path else None
    t0 = time.perf_counter()
    try:
        if kind == "training proof":
            zk.verify_training(proof, dataset=dataset, initial_model=model)
        elif kind == "inference proof":
            zk.verify_inference(proof, model=model)
        else:
            zk.verify_einsum(proof)
    except Exception as exc:  # noqa: BLE001 - whatever the file does to the verifier, it is not valid
        raise click.ClickException(f"invalid proof {proof_file}: {_verifier_error(exc)}") from None
    elapsed = time.perf_counter() - t0
    click.echo("valid")
    if kind == "einsum proof":
        click.echo(f"einsum proof of {proof.spec} on {proof.shapes[0]} x {proof.shapes[1]}; verified in {elapsed:.2f} s")
        return
    st = proof.statement
    what = (f"training proof of {st.steps} SGD step{'s' if st.steps > 1 else ''} (lr {st.lr}{_loss_note(st)})"
            if kind == "training proof" else "inference proof")
    click.echo(f"{what}, {st.architecture.describe()}, batch {st.batch_size}; verified in {elapsed:.2f} s")
    checked = []
    if dataset is not None:
        checked.append(f"every step used a batch of the published dataset {data_path} ({_short(dataset.digest)}; "
                       f"batches {_batches(st.batch_indices)})")
    if model is not None:
        checked.append(f"{'training starts from' if kind == 'training proof' else 'the inference is of'} the "
                       f"published model {model_path} ({_short(model.digest)})")
    if checked:
        click.echo("checked against published files: " + "; ".join(checked))
    else:
        click.echo("not checked against a published dataset or model (--data, --model)")
    if kind == "training proof":
        click.echo(f"final model {proof.final_model.digest.hex()}")


@click.command("verify-chain")
@click.argument("proof_files", type=str, nargs=-1, required=True, metavar="PROOF...")
@click.option("--data", "data_path", type=str, metavar="FILE",
              help="a published dataset commitment (.zkc): every step of every proof used one of its batches")
@click.option("--model", "model_path", type=str, metavar="FILE",
              help="a published model commitment (.zkc): the first proof starts from it")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar (there is none when stderr is not a terminal)")
def verify_chain_cmd(proof_files, data_path, model_path, quiet):
    """Verify training proofs as one run: each proof valid, each starting from the previous
    one's final model (exit 0 and what the chain covers, or exit 1 naming the failing proof).
    A PROOF is a training proof file or a chain file (prove --segment-steps), whose segment
    proofs are taken in order.

    \b
    zkfhe verify-chain epoch1.zkp epoch2.zkp --data data.zkc --model model.zkc
    zkfhe verify-chain run.zkchain --data data.zkc --model model.zkc
    """
    import zk

    segments, sources = [], []  # proof file bytes, and where each came from
    for path in proof_files:
        kind, obj = _read_zk(path, ("training proof", "training chain", "inference proof", "einsum proof"),
                             "PROOF", "proof or chain")
        if kind == "training chain":
            segments += obj.segments
            sources += [f"{path}, segment {j + 1}" for j in range(len(obj))]
        elif kind == "training proof":
            segments.append(obj.to_bytes())
            sources.append(path)
        else:
            raise click.ClickException(f"invalid chain: {path} is an {kind}; a chain holds training proofs")
    dataset = _read_zk(data_path, ("dataset commitment",), "--data", "dataset commitment")[1] if data_path else None
    model = _read_zk(model_path, ("model commitment",), "--model", "model commitment")[1] if model_path else None
    progress = None if quiet or not sys.stderr.isatty() else _Progress()
    t0 = time.perf_counter()
    try:
        report = zk.verify_chain(zk.Chain(tuple(segments)), dataset=dataset, initial_model=model, progress=progress)
    except Exception as exc:  # noqa: BLE001 - whatever the files do to the verifier, the chain is not valid
        message = _verifier_error(exc)
        m = re.match(r"proof (\d+) of (\d+): ", message)
        if m and 1 <= int(m[1]) <= len(sources):
            message = f"proof {m[1]} of {m[2]} ({sources[int(m[1]) - 1]}): {message[m.end():]}"
        raise click.ClickException(f"invalid chain: {message}") from None
    finally:
        if progress is not None:
            progress.close()
    click.echo(report.describe())
    checked = [f"the published dataset {data_path}"] if dataset is not None else []
    checked += [f"the published initial model {model_path}"] if model is not None else []
    click.echo(("checked against " + " and ".join(checked)) if checked else
               "not checked against a published dataset or model (--data, --model)")
    click.echo(f"final model {report.final_model.digest.hex()}; verified in {time.perf_counter() - t0:.2f} s")


@click.command("inspect")
@click.argument("file", type=str)
def inspect_cmd(file):
    """Describe a zkfhe file: a proof (statement and size of each part; does not verify), a
    commitment, or an opening (only that it is secret and its public commitment; no values)."""
    kind, obj = _read_zk(file, tuple(k for k, _ in KINDS.values()), "file", "file")
    size = Path(file).stat().st_size
    if kind in ("dataset opening", "model opening"):
        click.echo(f"zkfhe {kind}: SECRET (the integers and blinds behind a commitment; the prover needs it, "
                   "a verifier never does: do not publish it)")
        click.echo(f"{size:,} bytes; its public commitment:")
        click.echo("")
        click.echo(obj.commitment.describe())
        return
    if kind == "training chain":
        import zk

        try:
            text = obj.describe()  # parses its first and last proofs
        except zk.ProofFormatError as exc:
            raise click.ClickException(f"malformed training chain {file}: {exc}") from None
        click.echo(text)
        click.echo(f"  file size    : {size:,} bytes")
        return
    if kind in ("dataset commitment", "model commitment"):
        click.echo(obj.describe())
        click.echo(f"  file size    : {size:,} bytes")
        return
    if kind == "einsum proof":
        click.echo("zkfhe einsum proof statement")
        click.echo(f"  einsum       : {obj.spec}")
        click.echo(f"  shapes       : A {obj.shapes[0]}, B {obj.shapes[1]}")
        for name, c in zip("ABC", obj.commitments):
            click.echo(f"  commitment   : {name} {c.to_bytes()[3:11].hex()}…")
        click.echo("")
        click.echo(f"proof size: {size:,} bytes (not verified: run `zkfhe verify {file}`)")
        return
    click.echo(obj.statement.describe())
    sizes = obj.size_breakdown()
    total = sum(sizes.values())
    click.echo("")
    click.echo(f"proof size: {total:,} bytes (not verified: run `zkfhe verify {file}`)")
    width = max(map(len, sizes))
    for name, size in sizes.items():
        click.echo(f"  {name:{width}s}  {size:>12,}  {100 * size / total:5.1f}%")


COMMANDS = [commit_data_cmd, commit_model_cmd, prove_cmd, verify_cmd, verify_chain_cmd, inspect_cmd]
