"""``zkfhe prove``, ``zkfhe verify`` and ``zkfhe inspect``: zkDL proofs from the command line.

    zkfhe prove --arch 784,256,256,10 --batch 64 --steps 2 --lr 0.01 --seed 0 --out run.zkp
    zkfhe prove --model model.pt --data data.npz [--batch 64] [--steps N] --lr 0.01 --out run.zkp
    zkfhe prove --inference --model model.pt --data data.npz --out infer.zkp
    zkfhe verify run.zkp          # exit 0 and "valid", or exit 1 and the reason
    zkfhe inspect run.zkp         # statement and proof size breakdown (does not verify)

The model is either ``--arch`` (a seeded random ReLU MLP, with biases if ``--bias``) or
``--model`` (a torch ``state_dict`` of a ``Sequential`` of ``Linear`` layers, with or without
bias, and ``ReLU`` between them: keys ``0.weight``, ``0.bias``, ``2.weight``, ...). The data is
either ``--data`` (an ``.npz`` with arrays ``X`` and ``Y``, cut into consecutive batches of
``--batch`` rows; ``Y`` is not needed for ``--inference``) or seeded random ``X, Y ~ N(0, 1)``,
one batch per step. ``--inference``
proves the model's output on one batch instead of training. The proof file is written to a
temporary file beside ``--out`` and renamed, so a failed run never leaves a partial file.
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


def load_model(path: str):
    """The MLP of a torch ``state_dict`` file (loaded with ``weights_only=True``)."""
    import torch

    p = _readable(path, "--model")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(f"--model {path}: not a torch state_dict file ({first})") from None
    if not isinstance(state, dict) or not state:
        raise click.ClickException(f"--model {path}: expected a state_dict (torch.save(model.state_dict(), "
                                   f"path)), got {type(state).__name__}")
    layers, biases = {}, {}
    for key, value in state.items():
        m = re.fullmatch(r"(\d+)\.(weight|bias)", str(key))
        if m is None:
            raise click.ClickException(f"--model {path}: unexpected key {key!r} (expected the keys of a "
                                       "Sequential MLP: 0.weight, 0.bias, 2.weight, ...)")
        ndim = 2 if m[2] == "weight" else 1
        if not isinstance(value, torch.Tensor) or value.ndim != ndim or not value.is_floating_point():
            what = "2-D floating-point weight matrix" if ndim == 2 else "1-D floating-point bias vector"
            raise click.ClickException(f"--model {path}: {key} is not a {what}")
        if not torch.isfinite(value).all():
            raise click.ClickException(f"--model {path}: {key} has non-finite values")
        (layers if ndim == 2 else biases)[int(m[1])] = value.detach()
    indices = sorted(layers)
    if indices != list(range(0, 2 * len(indices), 2)):
        raise click.ClickException(f"--model {path}: layer indices {indices}; expected 0, 2, 4, ... "
                                   "(Linear layers with a ReLU between each two)")
    weights = [layers[i] for i in indices]
    for i, (a, b) in enumerate(zip(weights, weights[1:])):
        if b.shape[1] != a.shape[0]:
            raise click.ClickException(f"--model {path}: {2 * i + 2}.weight has {b.shape[1]} inputs but "
                                       f"{2 * i}.weight has {a.shape[0]} outputs")
    for i, b in biases.items():
        if i not in layers:
            raise click.ClickException(f"--model {path}: {i}.bias has no {i}.weight")
        if b.shape[0] != layers[i].shape[0]:
            raise click.ClickException(f"--model {path}: {i}.bias has {b.shape[0]} entries but "
                                       f"{i}.weight has {layers[i].shape[0]} outputs")
    return mlp_from_weights(weights, [biases.get(i) for i in indices])


def load_data(path: str, need_y: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, Y)`` from an ``.npz`` (``Y`` is None when not ``need_y``), as float64 matrices."""
    p = _readable(path, "--data")
    try:
        npz = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for a bad file
        raise click.ClickException(f"--data {path}: cannot read it as an .npz archive ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise click.ClickException(f"--data {path}: expected an .npz archive with arrays X and Y, "
                                   "not a single .npy array")
    names = ["X", "Y"] if need_y else ["X"]
    with npz:
        missing = [n for n in names if n not in npz.files]
        if missing:
            raise click.ClickException(f"--data {path}: no array {' or '.join(missing)} "
                                       f"(the archive holds {', '.join(npz.files) or 'nothing'})")
        try:
            arrays = [npz[n] for n in names]
        except Exception as exc:  # noqa: BLE001 - a corrupt member, or an object array (pickle)
            raise click.ClickException(f"--data {path}: cannot read its arrays ({exc})") from None
    out = []
    for name, a in zip(names, arrays):
        if a.ndim != 2 or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise click.ClickException(f"--data {path}: {name} must be a 2-D array of numbers "
                                       f"(rows x features), got shape {a.shape} dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise click.ClickException(f"--data {path}: {name} has non-finite values")
        out.append(a.astype(np.float64))
    x, y = out[0], (out[1] if need_y else None)
    if y is not None and len(y) != len(x):
        raise click.ClickException(f"--data {path}: X has {len(x)} rows but Y has {len(y)}")
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


def _write_atomic(path: Path, write) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_device(device: str):
    """The prover device for ``--device`` (zk.device); a clear error where CUDA cannot be used."""
    from zk import device as zk_device

    try:
        return zk_device.resolve(device)
    except RuntimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None


# ----------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------
@click.command("prove")
@click.option("--arch", callback=_arch, metavar="W0,W1,...",
              help="random MLP with these widths, e.g. 784,256,256,10 (or --model)")
@click.option("--model", "model_path", type=str, metavar="FILE",
              help="torch state_dict of a bias-free Sequential MLP (.pt)")
@click.option("--data", "data_path", type=str, metavar="FILE",
              help=".npz with arrays X (rows x inputs) and Y (rows x outputs)")
@click.option("--batch", type=click.IntRange(min=1),
              help=f"rows per batch [default: {DEFAULT_BATCH}; with --data at most its row count]")
@click.option("--steps", type=click.IntRange(min=1),
              help="SGD steps [default: 1; with --data one per batch]; batches cycle if more")
@click.option("--lr", type=float, callback=_lr, help=f"learning rate [default: {DEFAULT_LR}]")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the random model and data")
@click.option("--bias", is_flag=True, help="the --arch model's Linear layers have biases")
@click.option("--inference", is_flag=True, help="prove inference on one batch instead of training")
@click.option("--out", required=True, type=str, metavar="FILE", help="proof file to write")
@click.option("--save-model", type=str, metavar="FILE",
              help="also write the trained model's state_dict here (training)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="where the prover's heavy loops run: auto = cuda when cupy sees a GPU, else cpu "
                   "(the proof is the same)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar and no summary")
def prove_cmd(arch, model_path, data_path, batch, steps, lr, seed, bias, inference, out, save_model, device,
              quiet):
    """Prove SGD training (or, with --inference, inference) of a ReLU MLP and write the proof.

    \b
    zkfhe prove --arch 784,256,256,10 --batch 64 --steps 2 --lr 0.01 --seed 0 --out run.zkp
    zkfhe prove --model model.pt --data data.npz --steps 4 --lr 0.01 --out run.zkp
    zkfhe prove --inference --model model.pt --data data.npz --out infer.zkp
    """
    if (arch is None) == (model_path is None):
        raise click.UsageError("give exactly one of --arch (random model) or --model (state_dict file)")
    if bias and model_path:
        raise click.UsageError("--bias applies to --arch models (a --model file has its own biases)")
    if inference:
        for name, value in (("--steps", steps), ("--lr", lr), ("--save-model", save_model)):
            if value is not None:
                raise click.UsageError(f"{name} applies to training proofs, not --inference")
    out_path = _check_writable(out, "--out")
    save_path = _check_writable(save_model, "--save-model") if save_model else None
    device = _check_device(device)

    from zk.training import synthetic_batches, synthetic_mlp

    model = load_model(model_path) if model_path else synthetic_mlp(arch, seed, bias=bias)
    widths = tuple([model[0].in_features] + [m.out_features for m in model if hasattr(m, "out_features")])
    if data_path:
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
        n = 1 if inference else len(x) // batch
        batches = [(x[i * batch:(i + 1) * batch], None if y is None else y[i * batch:(i + 1) * batch])
                   for i in range(n)]
        if len(x) > n * batch and not quiet:
            unused = "do not fill a batch" if not inference else "are beyond the first batch"
            click.echo(f"note: the last {len(x) - n * batch} rows of --data {unused} and are not used", err=True)
    else:
        batch = batch or DEFAULT_BATCH
        n = 1 if inference else (steps or 1)
        batches = synthetic_batches(widths, batch, n, seed + 1)
    lr = DEFAULT_LR if lr is None else lr
    steps = steps or len(batches)

    import circuits
    import zk

    progress = None if quiet else _Progress()
    t0 = time.perf_counter()
    try:
        if inference:
            proof = zk.prove_inference(model, batches[0][0], progress=progress, device=device)
            trained = None
        else:
            proof, trained, _ = zk.prove_training(model, batches, lr, steps=steps, progress=progress,
                                                  device=device)
    except (circuits.UnsupportedOp, ValueError, TypeError, OverflowError) as exc:
        raise click.ClickException(f"cannot prove: {exc}") from None
    finally:
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - t0
    data = proof.to_bytes()
    _write_atomic(out_path, lambda f: f.write(data))
    if save_path is not None:
        import torch

        _write_atomic(save_path, lambda f: torch.save(trained.state_dict(), f))
    if not quiet:
        what = ("inference proof" if inference else
                f"training proof of {steps} SGD step{'s' if steps > 1 else ''} (lr {lr})")
        click.echo(f"wrote {out}: {what}, MLP {'-'.join(map(str, widths))}, batch {batch}; "
                   f"{len(data):,} bytes, proved in {elapsed:.1f} s on {device.name}")
        if save_path is not None:
            click.echo(f"wrote {save_model}: the trained model (state_dict)")


def _read_proof(path: str):
    """Parse a proof file (training or inference, by its magic bytes); ClickException if malformed."""
    import zk
    from zk.training import MAGIC

    p = _readable(path, "proof file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise click.ClickException(f"malformed proof {path}: the file is empty")
    training = {magic: kind for kind, magic in MAGIC.items()}.get(data[:8])
    if training is None:
        raise click.ClickException(f"malformed proof {path}: not a zkfhe proof file (unknown magic bytes)")
    cls = zk.TrainingProof if training else zk.InferenceProof
    try:
        return cls.from_bytes(data)
    except zk.ProofFormatError as exc:
        raise click.ClickException(f"malformed proof {path}: {exc}") from None


@click.command("verify")
@click.argument("proof_file", type=str)
def verify_cmd(proof_file):
    """Verify a proof file: exit 0 and "valid", or exit 1 and the reason it is invalid."""
    import zk

    proof = _read_proof(proof_file)
    st = proof.statement
    verify = zk.verify_inference if isinstance(proof, zk.InferenceProof) else zk.verify_training
    t0 = time.perf_counter()
    try:
        verify(proof)
    except zk.VerificationError as exc:
        raise click.ClickException(f"invalid proof {proof_file}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the file does to the verifier, it is not valid
        raise click.ClickException(f"invalid proof {proof_file}: the verifier rejected it "
                                   f"({type(exc).__name__}: {exc})") from None
    what = (f"training proof of {st.steps} SGD step{'s' if st.steps > 1 else ''} (lr {st.lr})"
            if verify is zk.verify_training else "inference proof")
    click.echo("valid")
    click.echo(f"{what}, MLP {'-'.join(map(str, st.arch))}, batch {st.batch_size}; "
               f"verified in {time.perf_counter() - t0:.2f} s")


@click.command("inspect")
@click.argument("proof_file", type=str)
def inspect_cmd(proof_file):
    """Print a proof's statement and the size of each part of the file (does not verify)."""
    proof = _read_proof(proof_file)
    click.echo(proof.statement.describe())
    sizes = proof.size_breakdown()
    total = sum(sizes.values())
    click.echo("")
    click.echo(f"proof size: {total:,} bytes (not verified: run `zkfhe verify {proof_file}`)")
    width = max(map(len, sizes))
    for name, size in sizes.items():
        click.echo(f"  {name:{width}s}  {size:>12,}  {100 * size / total:5.1f}%")


COMMANDS = [prove_cmd, verify_cmd, inspect_cmd]
