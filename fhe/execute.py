"""Running plans: :func:`execute` runs a :class:`~fhe.plan.Plan` on a backend, :func:`einsum`
is the user-facing call (plan, check, generate keys, run, wrap).

Before any ciphertext operation the executor checks what can be checked: slot count, levels
(:class:`OutOfLevels`), rotation keys (generated on demand, only those the plan needs, or
:class:`MissingRotationKey` when the context manages keys manually). Registers are dropped
after their last use, so memory stays near ``plan.cost().ciphertexts``.
"""
from __future__ import annotations

from .backends.base import Backend
from .errors import ContextMismatch, FHEError, MissingRotationKey, ShapeMismatch
from .plan import parse
from .program import Mask
from .tensor import CipherTensor, as_array, output_kind

__all__ = ["execute", "einsum"]


def execute(plan, backend, ciphertexts, plains, *, generate_keys: bool = True,
            cache: dict | None = None) -> list:
    """Run ``plan``: ``ciphertexts[k]`` is the list of backend ciphertexts of encrypted
    operand ``k`` (in its layout's order), ``plains[k]`` the array of plaintext operand ``k``.
    ``cache`` (a dict kept between runs of the same plan) holds encoded masks. Returns the
    output ciphertexts in ``plan.output_layout`` order."""
    if plan.output_layout is None:
        raise FHEError("this plan has no encrypted operand: compute it in the clear")
    if backend.slots != plan.slots:
        raise ShapeMismatch(f"plan for {plan.slots} slots, backend has {backend.slots}")
    regs = {}
    levels = []
    for k, (want, got) in enumerate(zip(plan.input_regs, ciphertexts)):
        if want is None:
            levels.append(None)
            continue
        if got is None or len(got) != len(want):
            got_n = "none" if got is None else len(got)
            raise ShapeMismatch(f"operand {k}: the plan expects {len(want)} ciphertext(s), "
                                f"got {got_n}")
        regs.update(zip(want, got))
        levels.append(min(backend.level(ct) for ct in got))
    plan.check_levels(levels)
    missing = [s for s in plan.rotation_keys if not backend.has_rotation_key(s)]
    if missing:
        if not generate_keys:
            raise MissingRotationKey(
                f"einsum '{plan.spec}' needs rotation keys for steps {missing}; generate them "
                f"with ctx.generate_rotation_keys(plan.rotation_keys)")
        backend.ensure_rotation_keys(missing)

    last, rotations = {}, {}  # rotations: source register -> the rotates that read it
    for i, op in enumerate(plan.ops):
        for a in op.args:
            last[a] = i
        if op.kind == "rotate":
            rotations.setdefault(op.args[0], []).append(i)
    keep = set(plan.output_regs)
    memo: dict = {}
    hoisted: dict = {}  # rotate index -> its result, computed with its group by rotate_many
    hoisting = type(backend).rotate_many is not Backend.rotate_many  # only where it saves work
    lazy = _LazyProducts(backend, regs)
    for i, op in enumerate(plan.ops):
        if op.kind == "add":
            out = lazy.add(op.out, *op.args)
        elif op.kind == "mul":
            out = lazy.product(op.out, *(lazy.ready(a) for a in op.args))
        elif op.kind == "mul_plain":
            arg = lazy.ready(op.args[0])
            out = lazy.product_plain(op.out, arg, _plaintext(backend, op, i, arg, plains, memo, cache))
        else:
            arg = lazy.ready(op.args[0])
            group = rotations[op.args[0]]
            if hoisting and len(group) > 1 and group[0] == i:
                # every rotation of this register at once: it is alive until its last rotate
                hoisted.update(zip(group, backend.rotate_many(arg, [plan.ops[j].step for j in group])))
            out = hoisted.pop(i) if i in hoisted else backend.rotate(arg, op.step)
        regs[op.out] = out
        for a in op.args:
            if last[a] == i and a not in keep:
                lazy.drop(a)
    return [lazy.ready(r) for r in plan.output_regs]


class _LazyProducts:
    """Registers of one run, where products stay unfinished (not relinearised, not rescaled)
    until something other than an addition reads them: a sum of ``n`` products of one kind
    at one level costs one relinearisation and one rescale instead of ``n``
    (:attr:`Backend.lazy_products`; a no-op on backends without them)."""

    def __init__(self, backend, regs: dict) -> None:
        self.backend = backend
        self.regs = regs
        self.raw: dict[int, str] = {}  # register -> "mul" | "mul_plain" while unfinished
        self.lazy = backend.lazy_products

    def ready(self, r: int):
        """Register ``r``, finished."""
        if r in self.raw:
            del self.raw[r]
            self.regs[r] = self.backend.finish(self.regs[r])
        return self.regs[r]

    def product(self, out: int, a, b):
        if not self.lazy:
            return self.backend.mul(a, b)
        self.raw[out] = "mul"
        return self.backend.product(a, b)

    def product_plain(self, out: int, a, plain):
        if not self.lazy:
            return self.backend.mul_plain(a, plain)
        self.raw[out] = "mul_plain"
        return self.backend.product_plain(a, plain)

    def add(self, out: int, a: int, b: int):
        """``a + b``: an unfinished sum when both are unfinished products of one kind at one
        level, otherwise the sum of the finished operands."""
        kind = self.raw.get(a)
        regs, backend = self.regs, self.backend
        if (kind is not None and kind == self.raw.get(b)
                and backend.level(regs[a]) == backend.level(regs[b])):
            self.raw[out] = kind
            return backend.add(regs[a], regs[b])
        return backend.add(self.ready(a), self.ready(b))

    def drop(self, r: int) -> None:
        self.raw.pop(r, None)
        del self.regs[r]


def _plaintext(backend, op, i: int, ct, plains, memo: dict, cache: dict | None):
    """The mul_plain operand: a mask (encoded once per level when caching) or clear data."""
    if not isinstance(op.plain, Mask):
        return op.plain.values(plains, memo)
    if cache is None:
        return op.plain.values(backend.slots)
    level = backend.level(ct)
    key = (i, level)
    if key not in cache:
        cache[key] = backend.encode(op.plain.values(backend.slots), level)
    return cache[key]


def einsum(spec, *operands, out_layout=None):
    """``numpy.einsum`` on any mix of :class:`CipherTensor` and plaintext numpy arrays / torch
    tensors; returns a :class:`CipherTensor` (or a numpy array when nothing is encrypted).

    Rotation keys are generated on demand (only those the plan needs) unless the context
    manages keys manually. Raises :class:`ContextMismatch` for ciphertexts of different
    contexts, :class:`ShapeMismatch` / :class:`~fhe.errors.InvalidSpec` for operands that do
    not fit the spec, :class:`~fhe.errors.OutOfLevels` before any work when the operands'
    levels are too low.
    """
    contexts = {id(x.context): x.context for x in operands if isinstance(x, CipherTensor)}
    if len(contexts) > 1:
        raise ContextMismatch("einsum operands were encrypted under different contexts "
                              "(different keys); re-encrypt them under one context")
    plains, likes = [], []
    for x in operands:
        if isinstance(x, CipherTensor):
            plains.append(None)
            likes.append(x.like)
        else:
            array, like = as_array(x)
            plains.append(array)
            likes.append(like)
    if not contexts:
        return parse(spec, [p.shape for p in plains]).reference(*plains)
    ctx = next(iter(contexts.values()))
    return ctx.run(spec, operands, plains, output_kind(likes), out_layout)
