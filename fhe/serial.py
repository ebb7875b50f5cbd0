"""Client/server: a public context and ciphertext tensors as bytes.

The process that encrypts need not compute. The client holds the full
:class:`~fhe.Context` (with the secret key); it sends the server a :class:`PublicContext`
(parameters, public key, relinearisation key and the rotation keys generated so far, never
the secret key) and its encrypted inputs; the server runs einsums on them and sends the
encrypted result back; only the client can decrypt it::

    # client
    ctx = fhe.Context(backend="seal", levels=3, rotation_keys="manual")
    x = ctx.encrypt(batch)
    ctx.generate_rotation_keys(ctx.plan("bi,io->bo", x, W).rotation_keys)  # what the server needs
    send(public_context(ctx).to_bytes(), tensor_to_bytes(x))

    # server
    pub = PublicContext.from_bytes(ctx_bytes)          # no secret key: cannot decrypt
    y = fhe.einsum("bi,io->bo", tensor_from_bytes(x_bytes, pub), W)
    send(tensor_to_bytes(y))

    # client
    ctx.decrypt(tensor_from_bytes(y_bytes, ctx))

A public context cannot make rotation keys: an einsum that needs one the client did not
generate raises :class:`~fhe.MissingRotationKey` naming the steps.

Formats (both: 8 magic bytes, a 16-bit version, a bounded JSON header, length-prefixed blobs,
a BLAKE2b-256 checksum; no pickle): every size is checked against the bytes present and
against limits before anything is allocated, the parameters are rebuilt and checked (128-bit
security unless ``allow_insecure``), keys and ciphertexts are loaded by the backend library,
which checks them against those parameters (SEAL: ``parms_id``, sizes, coefficient ranges;
desilofhe: sizes and level), and a tensor carries the random id of its key set, so a
ciphertext of another key set is refused (:class:`~fhe.ContextMismatch`) instead of
decrypting to garbage. Anything malformed raises :class:`SerializationError`. The checksum
detects corruption, not tampering: bytes from an untrusted party are checked for shape, not
for authenticity.
"""
from __future__ import annotations

from collections import OrderedDict
import math

from .backends import BACKENDS, backend_class
from .backends.base import (
    MAX_BLOBS,
    PUBLIC_MAGIC,
    TENSOR_MAGIC,
    Backend,
    NoSecretKey,
    SerializationError,
    pack_container,
    unpack_container,
)
from .context import Context
from .errors import ContextMismatch, FHEError
from .layout import Layout
from .tensor import CipherTensor, Like

__all__ = [
    "PublicContext", "public_context", "context_to_bytes", "context_from_bytes",
    "tensor_to_bytes", "tensor_from_bytes", "rotation_keys_for", "NoSecretKey",
    "SerializationError",
]

#: most axes a serialised tensor may have
MAX_NDIM = 32
#: torch dtypes a tensor may ask to be decrypted to
_TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64")


class PublicContext(Context):
    """A :class:`~fhe.Context` without the secret key: encrypts and runs einsums (and the
    operators) with the keys it was given, cannot decrypt (:class:`NoSecretKey`) nor make
    rotation keys (:class:`~fhe.MissingRotationKey`). Made by :func:`public_context` /
    ``ctx.public()`` or :meth:`from_bytes`; :meth:`to_bytes` serialises it."""

    def __init__(self, backend: Backend) -> None:
        # not Context.__init__: the backend exists already (rebuilt from public keys)
        if not isinstance(backend, Backend):
            raise TypeError(f"PublicContext takes a backend, got {type(backend).__name__}")
        if backend.has_secret_key:
            backend = backend.public()
        self._backend = backend
        self.sized_by = None  # fixed by the client
        self.backend_name = backend.name
        self.scale_bits = _scale_bits(backend)
        self.auto_keys = True  # the backend refuses to make keys: MissingRotationKey names them
        self._plans = OrderedDict()

    def __repr__(self) -> str:
        b = self.backend
        params = f"ring_degree={2 * b.slots}, levels={b.max_level}, scale_bits={self.scale_bits}"
        sim = " — NO ENCRYPTION, debugging only" if b.name == "sim" else ""
        return (f"PublicContext({b.name}{sim}, {params}, {len(b._rotation_keys)} rotation keys, "
                f"no secret key)")

    def decrypt(self, x):
        raise NoSecretKey("this context has no secret key (it is a public context): only the "
                          "client's full context can decrypt; send the result back with "
                          "tensor_to_bytes")

    def public(self) -> "PublicContext":
        return self

    @classmethod
    def for_einsum(cls, *args, **kwargs):
        raise TypeError("a PublicContext is made from a client's context (fhe.Context.for_einsum "
                        "on the client, then public_context(ctx)), not sized here")

    def __reduce__(self):
        raise TypeError("a PublicContext is not pickled: send PublicContext.to_bytes() and read "
                        "it with PublicContext.from_bytes()")

    def to_bytes(self) -> bytes:
        """Parameters and public keys (see the module docstring); :meth:`from_bytes` reads them."""
        return self.backend.public_bytes()

    @classmethod
    def from_bytes(cls, data, allow_insecure: bool = False, **options) -> "PublicContext":
        """A public context from :meth:`to_bytes`. Parameters below 128-bit security raise
        :class:`~fhe.InsecureParameters` unless ``allow_insecure``; ``options`` say where to run
        (desilo: ``device``)."""
        meta, blobs = unpack_container(PUBLIC_MAGIC, data, "public context")
        if meta.get("kind") != "public_context":
            raise SerializationError(f"not a public context (kind {meta.get('kind')!r})"[:200])
        backend_cls = _backend_class(meta.get("backend"))
        return cls(backend_cls.from_public_parts(meta, blobs, allow_insecure, **options))


def public_context(ctx: Context) -> PublicContext:
    """The public part of ``ctx``: the same keys (rotation keys generated so far) without the
    secret key. Ciphertexts move between the two as bytes (:func:`tensor_to_bytes`)."""
    if isinstance(ctx, PublicContext):
        return ctx
    if not isinstance(ctx, Context):
        raise TypeError(f"public_context takes an fhe.Context, got {type(ctx).__name__}")
    return PublicContext(ctx.backend.public())


def context_to_bytes(ctx: Context) -> bytes:
    """``public_context(ctx).to_bytes()``: what a server needs, never the secret key."""
    if not isinstance(ctx, Context):
        raise TypeError(f"context_to_bytes takes an fhe.Context, got {type(ctx).__name__}")
    return ctx.backend.public_bytes()


def context_from_bytes(data, allow_insecure: bool = False, **options) -> PublicContext:
    """:meth:`PublicContext.from_bytes`."""
    return PublicContext.from_bytes(data, allow_insecure, **options)


def rotation_keys_for(compute, ctx: Context, *inputs) -> list[int]:
    """The rotation steps ``compute(*encrypted inputs)`` uses, found by running it on a
    simulator with ``ctx``'s slots and levels (plans depend on shapes, layouts and levels
    only, so a server's computation can be rehearsed with zero weights of the right shapes).
    ``inputs``: arrays, or their shapes (tuples), encrypted row-major as ``ctx.encrypt`` does.
    The client then calls ``ctx.generate_rotation_keys(steps)`` before exporting.

    ``compute`` must take the ciphertexts and use only their shapes for its plaintext
    operands (not decrypt)."""
    import numpy as np

    sim = Context("sim", ring_degree=2 * ctx.slots, levels=ctx.levels, allow_insecure=True)
    xs = [sim.encrypt(np.zeros(x) if isinstance(x, tuple) else np.zeros(np.shape(x)))
          for x in inputs]
    compute(*xs)
    return sorted(sim.backend._rotation_keys)


# ------------------------------------------------------------------------------ tensors
def tensor_to_bytes(x: CipherTensor) -> bytes:
    """A :class:`~fhe.CipherTensor` as bytes: its layout, how it decrypts (numpy or torch and
    the dtype), its key set's id and every ciphertext."""
    if not isinstance(x, CipherTensor):
        raise TypeError(f"tensor_to_bytes takes a CipherTensor, got {type(x).__name__}")
    backend = x.context.backend
    lay = x.layout
    like = {"kind": "numpy"}
    if x.like.kind == "torch":
        like = {"kind": "torch", "dtype": str(x.like.dtype).removeprefix("torch.")}
    meta = {"kind": "cipher_tensor", "backend": backend.name, "key_id": backend.key_id.hex(),
            "layout": {"shape": list(lay.shape), "slots": lay.slots,
                       "strides": list(lay.strides), "blocks": list(lay.blocks)},
            "like": like}
    return pack_container(TENSOR_MAGIC, meta, [backend.ciphertext_bytes(ct) for ct in x.ciphertexts])


def tensor_from_bytes(data, context: Context) -> CipherTensor:
    """The :class:`~fhe.CipherTensor` of :func:`tensor_to_bytes`, bound to ``context`` (full or
    public). Refused: another backend or slot count (:class:`SerializationError`), another key
    set (:class:`~fhe.ContextMismatch`), and anything malformed."""
    if not isinstance(context, Context):
        raise TypeError(f"tensor_from_bytes needs an fhe.Context, got {type(context).__name__}")
    what = "ciphertext tensor"
    meta, blobs = unpack_container(TENSOR_MAGIC, data, what)
    backend = context.backend
    if meta.get("kind") != "cipher_tensor":
        raise SerializationError(f"not a ciphertext tensor (kind {meta.get('kind')!r})"[:200])
    if meta.get("backend") != backend.name:
        raise SerializationError(f"{what}: encrypted with the {meta.get('backend')!r} backend, "
                                 f"this context is {backend.name!r}"[:300])
    if meta.get("key_id") != backend.key_id.hex():
        raise ContextMismatch(f"{what}: encrypted under another key set than this context's "
                              f"(key id {str(meta.get('key_id'))[:32]}, this context "
                              f"{backend.key_id.hex()})")
    layout = _layout(meta.get("layout"), backend.slots, len(blobs), what)
    like = _like(meta.get("like"), what)
    cts = [backend.ciphertext_from_bytes(b) for b in blobs]
    return CipherTensor(context, layout, cts, like)


def _layout(d, slots: int, n_blobs: int, what: str) -> Layout:
    """A Layout from its header, every size checked before numpy allocates anything."""
    if not isinstance(d, dict) or set(d) != {"shape", "slots", "strides", "blocks"}:
        raise SerializationError(f"{what}: bad layout")

    def ints(name, lo, hi):
        v = d[name]
        if (not isinstance(v, list) or len(v) > MAX_NDIM
                or not all(type(n) is int and lo <= n <= hi for n in v)):
            raise SerializationError(f"{what}: bad layout {name}")
        return tuple(v)

    if d["slots"] != slots:
        raise SerializationError(f"{what}: laid out on {d['slots']!r} slots, this context has "
                                 f"{slots}"[:200])
    shape = ints("shape", 1, 1 << 40)
    strides = ints("strides", 0, slots - 1)
    blocks = ints("blocks", 1, slots)
    if not len(shape) == len(strides) == len(blocks):
        raise SerializationError(f"{what}: layout shape, strides and blocks differ in length")
    if math.prod(blocks) > slots:
        raise SerializationError(f"{what}: layout blocks hold more than {slots} slots")
    n_cts = math.prod(-(-n // b) for n, b in zip(shape, blocks))
    if n_cts != n_blobs or n_cts > MAX_BLOBS:
        raise SerializationError(f"{what}: the layout needs {n_cts} ciphertexts, "
                                 f"{n_blobs} present")
    try:
        return Layout(shape, slots, strides, blocks)
    except (ValueError, FHEError) as exc:
        raise SerializationError(f"{what}: bad layout ({exc})") from None


def _like(d, what: str) -> Like:
    if d == {"kind": "numpy"}:
        return Like()
    if (isinstance(d, dict) and set(d) == {"kind", "dtype"} and d["kind"] == "torch"
            and d["dtype"] in _TORCH_DTYPES):
        try:
            import torch
        except ImportError:  # a server without torch: results decrypt to numpy
            return Like()
        return Like("torch", getattr(torch, d["dtype"]))
    raise SerializationError(f"{what}: bad output kind {d!r}"[:200])


def _backend_class(name):
    if not isinstance(name, str) or name not in BACKENDS:
        raise SerializationError(f"public context of an unknown backend {name!r}"[:200])
    return backend_class(name)


def _scale_bits(backend) -> int | None:
    if hasattr(backend, "scale_bits"):
        return backend.scale_bits
    params = getattr(backend, "params", None)
    return getattr(params, "scale_bits", 40 if backend.name == "desilo" else None)
