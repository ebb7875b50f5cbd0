"""Client/server: the process that encrypts does not compute, the one that computes cannot decrypt.

The client makes a key set, encrypts a batch of inputs and writes two files: the *public*
context (parameters, public key, relinearisation key and the rotation keys the server's
computation needs — no secret key) and the ciphertext tensor. A second process, the server,
loads them, applies its plaintext weights (an encrypted linear layer ``x @ W``) and squares the
result (an encrypted activation), and writes the encrypted result back. The client decrypts
it and compares with numpy.

    .venv/bin/python examples/fhe_client_server.py [--backend seal|sim|desilo] [--dir DIR]

The server runs as ``python examples/fhe_client_server.py --serve DIR`` in its own process
(``subprocess``): it shares no memory with the client, and the only key material it ever sees
is the public context file.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# runnable from a checkout without installing: the repository root is on the path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fhe  # noqa: E402
from fhe.serial import (  # noqa: E402
    PublicContext,
    public_context,
    rotation_keys_for,
    tensor_from_bytes,
    tensor_to_bytes,
)

BATCH, IN, OUT = 8, 32, 16
#: the linear layer takes two levels (product, mask after the sum), the square one more
LEVELS = 3
CONTEXT_FILE, INPUT_FILE, RESULT_FILE, WEIGHTS_FILE = "context.fhe", "x.fhe", "y.fhe", "weights.npy"


def server_weights(seed: int = 1) -> np.ndarray:
    """The server's model (plaintext; the client never needs it, only its shape)."""
    return np.random.default_rng(seed).normal(0, 1 / np.sqrt(IN), (IN, OUT))


def server_compute(x, w):
    """What the server runs: an encrypted linear layer, then an encrypted square."""
    y = fhe.einsum("bi,io->bo", x, w)
    return fhe.einsum("bo,bo->bo", y, y)


def reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (x @ w) ** 2


# ----------------------------------------------------------------------------- client
def client_encrypt(workdir: Path, backend: str = "seal", seed: int = 0, **ctx_options):
    """Make the key set, encrypt the inputs, write the public context and the ciphertexts.
    Returns ``(ctx, x)``: the full context (secret key) stays with the client."""
    ctx = fhe.Context(backend, levels=LEVELS, rotation_keys="manual", **ctx_options)
    x = np.random.default_rng(seed).uniform(-1, 1, (BATCH, IN))
    # the server needs rotation keys for its computation: rehearse it on shapes only
    steps = rotation_keys_for(lambda xs: server_compute(xs, np.zeros((IN, OUT))), ctx, x.shape)
    ctx.generate_rotation_keys(steps)
    (workdir / CONTEXT_FILE).write_bytes(public_context(ctx).to_bytes())
    (workdir / INPUT_FILE).write_bytes(tensor_to_bytes(ctx.encrypt(x)))
    return ctx, x


def client_decrypt(ctx, workdir: Path) -> np.ndarray:
    """Read the server's encrypted result and decrypt it."""
    return ctx.decrypt(tensor_from_bytes((workdir / RESULT_FILE).read_bytes(), ctx))


# ----------------------------------------------------------------------------- server
def serve(workdir: Path, allow_insecure: bool = False) -> dict:
    """The server: public context and ciphertexts in, encrypted result out. Never decrypts
    (it cannot: ``PublicContext.decrypt`` raises ``NoSecretKey``)."""
    t0 = time.perf_counter()
    pub = PublicContext.from_bytes((workdir / CONTEXT_FILE).read_bytes(),
                                   allow_insecure=allow_insecure)
    assert not pub.backend.has_secret_key
    x = tensor_from_bytes((workdir / INPUT_FILE).read_bytes(), pub)
    w = server_weights()
    np.save(workdir / WEIGHTS_FILE, w)  # only so that the demo can check the answer
    t1 = time.perf_counter()
    y = server_compute(x, w)
    t2 = time.perf_counter()
    (workdir / RESULT_FILE).write_bytes(tensor_to_bytes(y))
    return {"load_s": t1 - t0, "compute_s": t2 - t1, "level": y.level, "context": repr(pub)}


def run(workdir: Path, backend: str = "seal", in_process: bool = False, **ctx_options) -> float:
    """The whole exchange; returns the max error against numpy. The server is a separate
    process unless ``in_process``."""
    workdir = Path(workdir)
    t0 = time.perf_counter()
    ctx, x = client_encrypt(workdir, backend, **ctx_options)
    t1 = time.perf_counter()
    print(f"client: {ctx!r}; encrypted {x.shape} and generated the server's rotation keys "
          f"in {t1 - t0:.2f}s; public context {(workdir / CONTEXT_FILE).stat().st_size / 1e6:.1f} MB, "
          f"ciphertexts {(workdir / INPUT_FILE).stat().st_size / 1e6:.2f} MB")
    insecure = bool(ctx_options.get("allow_insecure"))
    if in_process:
        info = serve(workdir, allow_insecure=insecure)
        print(f"server (in process): {info}")
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", str(workdir)]
        if insecure:
            cmd.append("--allow-insecure")
        subprocess.run(cmd, check=True)
    t2 = time.perf_counter()
    out = client_decrypt(ctx, workdir)
    err = float(np.abs(out - reference(x, np.load(workdir / WEIGHTS_FILE))).max())
    print(f"client: decrypted {out.shape}, max error against numpy {err:.2e} "
          f"(server round trip {t2 - t1:.2f}s, total {time.perf_counter() - t0:.2f}s)")
    return err


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="seal", choices=["seal", "sim", "desilo"])
    parser.add_argument("--dir", help="exchange directory (default: a temporary one)")
    parser.add_argument("--serve", metavar="DIR", help="run as the server on DIR")
    parser.add_argument("--allow-insecure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        info = serve(Path(args.serve), allow_insecure=args.allow_insecure)
        print(f"server (separate process): loaded {info['context']} in {info['load_s']:.2f}s, "
              f"computed in {info['compute_s']:.2f}s, result at level {info['level']}")
        return
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
        err = run(Path(args.dir), args.backend)
    else:
        with tempfile.TemporaryDirectory(prefix="fhe-client-server-") as tmp:
            err = run(Path(tmp), args.backend)
    if err > 1e-3:
        raise SystemExit(f"error {err:.2e} is too large")


if __name__ == "__main__":
    main()
