"""``Context``: one backend with its keys; encrypts, decrypts and runs einsums.

    ctx = fhe.Context()                                   # SEAL, 128-bit secure parameters
    x = ctx.encrypt(np.random.rand(64, 64))               # CipherTensor, row-major layout
    y = fhe.einsum("ij,jk->ik", x, weights)               # weights: plaintext numpy/torch
    print(ctx.plan("ij,jk->ik", x, weights))              # what ran (no keys, no work)
    ctx.decrypt(y)                                        # numpy (torch if an input was torch)

``fhe.Context()`` sizes itself by the work: its levels and ring are chosen at the first
einsum (or compiled program) it runs, from that einsum's plan — the fewest levels the plan
needs, topped up to :data:`DEFAULT_LEVELS` (4) where the ring those levels need holds them —
and tensors encrypted before that are encrypted then, under the chosen parameters (the data
never leaves the client's context). Anything that needs parameters first (``ctx.public()``,
``generate_rotation_keys``, an operator with no einsum) fixes :data:`DEFAULT_LEVELS` on
N = 16384, where every EinHops workload fits. ``fhe.Context(levels=L)`` fixes the parameters
at once; ``fhe.Context.for_einsum(spec, *shapes)`` sizes them for one einsum up front.

Plans are cached per (einsum, shapes, layouts, levels) with their encoded masks, so a repeated
einsum — a layer applied to every batch — is planned and its masks encoded once.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .backends import backend_class, get_backend
import warnings

from .errors import ContextMismatch, FHEError, OutOfLevels, ScaleOverflowWarning, ShapeMismatch, ValueTooLarge
from .execute import execute
from .layout import Layout
from .plan import Plan, plan
from .tensor import CipherTensor, Like, as_array

__all__ = ["Context"]

#: plans (with their encoded masks) kept per context
PLAN_CACHE = 16
#: levels of ``fhe.Context()``: the deepest EinHops workloads (13 ``ij,jk,kl->il``, 14
#: ``ik,jkl,il->ij``) need 4. With SEAL's chain [60, 40 x L, 60] bits, 3 to 7 levels all need
#: the N = 16384 ring (128-bit bound 438 bits; 3 levels are already 240 > 218 for N = 8192),
#: so 4 instead of 3 costs one more 40-bit prime per ciphertext (~25% per operation), not a
#: bigger ring. (desilofhe's 2^14 engines with 4+ levels exceed the bound: 2^15 there.)
DEFAULT_LEVELS = 4
#: bits of the base prime q0 of every backend's chain: SEAL's is the 60-bit first prime of
#: [60, scale_bits x L, 60] (fhe.backends.params.EDGE_PRIME_BITS); desilofhe's is also just
#: below 2^60 (measured on desilofhe 2.0: 2^18 survives a rescale to level 0, 2^19 wraps).
BASE_PRIME_BITS = 60
#: decrypted magnitudes at or above this fraction of their level's bound raise a warning
WRAP_WARNING = 0.5


class Context:
    """A CKKS backend and its keys.

    ``backend``: ``"seal"`` (the default: real encryption, Microsoft SEAL), ``"desilo"``, or
    ``"sim"`` — a numpy simulator with NO encryption, for debugging only (its ``repr`` says
    so); the simulator is never chosen unless asked for by name. ``ring_degree`` (None: the
    smallest 128-bit-secure ring for the levels), ``levels`` (multiplicative depth of a fresh
    ciphertext; None, the default: chosen by the first einsum, see the module docstring),
    ``scale_bits`` (values must stay below :meth:`value_bound`, ``2^(59 - scale_bits)``);
    insecure parameters are refused unless ``allow_insecure=True``.
    ``rotation_keys="auto"`` generates the keys each einsum needs on demand; ``"manual"``
    leaves that to :meth:`generate_rotation_keys` (einsum then raises
    :class:`MissingRotationKey`). Other keyword arguments go to the backend (e.g. ``device``
    for desilo, ``noise`` for sim). For one known einsum, :meth:`for_einsum` picks the fewest
    levels its plan needs and the ring.
    """

    def __init__(self, backend: str = "seal", ring_degree: int | None = None,
                 levels: int | None = None,
                 scale_bits: int = 40, allow_insecure: bool = False,
                 rotation_keys: str = "auto", **options) -> None:
        if rotation_keys not in ("auto", "manual"):
            raise ValueError(f"rotation_keys must be 'auto' or 'manual', got {rotation_keys!r}")
        self.backend_name = backend
        self.scale_bits = scale_bits
        self.auto_keys = rotation_keys == "auto"
        self._plans: OrderedDict = OrderedDict()
        self._params = dict(ring_degree=ring_degree, scale_bits=scale_bits,
                            allow_insecure=allow_insecure, **options)
        self._backend = None
        #: what chose the parameters (None: the caller's levels); OutOfLevels messages name it
        self.sized_by: str | None = None
        if levels is not None:
            self._size(levels)
        else:  # refuse bad arguments now, not at the first einsum: no keys are made here
            backend_class(backend)
            _slots(backend, ring_degree, 1, scale_bits, allow_insecure)

    def _size(self, levels: int, why: str | None = None) -> None:
        """Fix the parameters (``levels``; the ring from the constructor's arguments) and make
        the keys. Only while unsized."""
        assert self._backend is None
        self._backend = get_backend(self.backend_name, levels=levels, **self._params)
        if why is not None:
            self.sized_by = why

    @property
    def sized(self) -> bool:
        """Whether levels and ring are fixed (keys made); see the module docstring."""
        return self._backend is not None

    @property
    def backend(self):
        """The backend with its keys (fixes :data:`DEFAULT_LEVELS` if still unsized)."""
        if self._backend is None:
            self._size(DEFAULT_LEVELS, "the default levels (no einsum had sized it)")
        return self._backend

    def _size_for_einsum(self, spec, operands) -> None:
        """Size an unsized context for ``fhe.einsum(spec, *operands)`` (the module docstring)."""
        shapes = [x.shape if isinstance(x, CipherTensor) else tuple(np.shape(x)) for x in operands]
        encrypted = [isinstance(x, CipherTensor) for x in operands]
        ring = self._params["ring_degree"]
        for x in operands:  # a tensor encrypted with an explicit layout fixes the ring
            if isinstance(x, CipherTensor) and x.requested_slots is not None:
                ring = ring or 2 * x.requested_slots
        args = (self.backend_name, ring, self.scale_bits, self._params["allow_insecure"])
        lv, p = fewest_levels(spec, shapes, encrypted, *args)
        if lv < DEFAULT_LEVELS and _holds(*args[:2], DEFAULT_LEVELS, *args[2:], p.slots):
            lv = DEFAULT_LEVELS  # the same ring holds the default levels: room to go on
        if ring is not None:
            self._params["ring_degree"] = ring
        self._size(lv, f"the first einsum '{spec}'")

    def _size_for_program(self, program) -> None:
        """Size an unsized context for a compiled program (its ring and levels)."""
        self._params["ring_degree"] = 2 * program.slots
        self._size(program.levels, "a compiled program")

    @classmethod
    def for_einsum(cls, spec, *operands, encrypted=None, backend: str = "seal",
                   ring_degree: int | None = None, levels: int | None = None,
                   scale_bits: int = 40, allow_insecure: bool = False, **options) -> "Context":
        """A context sized for ``fhe.einsum(spec, *operands)``, made before anything is
        encrypted. ``operands``: shapes (tuples) or arrays/tensors (their shapes are used);
        ``encrypted``: one flag per operand (default: all encrypted).

        Levels (unless given): the fewest any plan needs (:func:`fewest_levels`). The fewest
        levels give the shortest modulus chain, so every operation is cheapest; the planner
        already weighs depth against rotations when it compares plans at that budget. Ring
        (unless given): the smallest 128-bit-secure ring for those levels. At least 1 level.
        Raises :class:`OutOfLevels` when ``levels`` is given and too few.
        """
        shapes = [tuple(int(n) for n in x) if isinstance(x, (tuple, list)) else tuple(np.shape(x))
                  for x in operands]
        lv, p = fewest_levels(spec, shapes, encrypted, backend, ring_degree, scale_bits,
                              allow_insecure, levels)
        ctx = cls(backend, ring_degree=ring_degree, levels=lv, scale_bits=scale_bits,
                  allow_insecure=allow_insecure, **options)
        ctx.sized_by = f"Context.for_einsum('{spec}')"
        if ctx.slots == p.slots and ctx.levels == lv:  # the plan einsum will ask for: keep it
            layouts = tuple(Layout.row_major(s, ctx.slots) if e else None
                            for s, e in zip(p.spec.shapes, p.encrypted))
            key = (str(spec), tuple(p.spec.shapes), layouts,
                   tuple(lv if e else None for e in p.encrypted), None)
            ctx._plans[key] = (p, {})
        return ctx

    def __repr__(self) -> str:
        if self._backend is None:
            sim = " — NO ENCRYPTION, debugging only" if self.backend_name == "sim" else ""
            return (f"Context({self.backend_name}{sim}, unsized: levels and ring chosen at the first "
                    f"einsum, scale_bits={self.scale_bits})")
        b = self._backend
        params = f"ring_degree={2 * b.slots}, levels={b.max_level}, scale_bits={self.scale_bits}"
        if self.backend_name == "sim":
            return f"Context(sim — NO ENCRYPTION, debugging only, {params})"
        return f"Context({self.backend_name}, {params}, security_bits={b.security_bits})"

    def value_bound(self, level: int = 0) -> float:
        """Largest magnitude a ciphertext at ``level`` holds without wrapping around the
        modulus: ``q0·q1···q_level / (2Δ) ≈ 2^(59 − scale_bits + scale_bits·level)`` (base
        prime q0 ≈ 2^60, scale primes ≈ Δ = 2^scale_bits). At level 0 — where a computation
        that uses every level ends — it is ``2^(59 − scale_bits)``: 2^19 = 524288 at the default
        40-bit scale. The simulator applies the bound of the SEAL parameters it mirrors."""
        bits = BASE_PRIME_BITS - 1 - self.scale_bits + self.scale_bits * max(int(level), 0)
        return float(2.0 ** bits) * (1 - 2.0 ** -16)  # q0 is a little below 2^60; noise

    def _bound_text(self, level: int = 0) -> str:
        bits = BASE_PRIME_BITS - 1 - self.scale_bits + self.scale_bits * level
        return (f"2^{bits} = {2.0 ** bits:.6g} (level {level}: base prime ~2^{BASE_PRIME_BITS}"
                f"{f' times {level} scale prime(s)' if level else ''} / 2 / scale "
                f"2^{self.scale_bits})")

    @property
    def slots(self) -> int:
        return self.backend.slots

    @property
    def levels(self) -> int:
        return self.backend.max_level

    # -- data in and out --------------------------------------------------------------------
    def encrypt(self, x, layout: Layout | None = None) -> CipherTensor:
        """Encrypt an array or tensor (row-major layout unless ``layout`` is given).

        Raises :class:`~fhe.errors.ValueTooLarge` (an :class:`UnsupportedInput`) when a value
        reaches :meth:`value_bound` ``(0)``: a result at level 0 could not hold it."""
        array, like = as_array(x)
        peak = float(np.max(np.abs(array))) if array.size else 0.0
        if peak >= self.value_bound(0):
            fit = BASE_PRIME_BITS - 2 - int(np.ceil(np.log2(peak)))
            hint = (f", or a smaller scale: scale_bits={fit} holds it (less precision)"
                    if fit >= 20 else "")
            raise ValueTooLarge(
                f"values up to {peak:.6g} in magnitude cannot be encrypted on this context: a "
                f"result at level 0 must stay below {self._bound_text(0)}, or it decrypts "
                f"wrong. Scale the data down{hint}", bound=self.value_bound(0))
        if self._backend is None:  # encrypted when the first einsum has sized the context
            return CipherTensor.deferred(self, array, layout, like)
        return CipherTensor(self, *self._encrypt(array, layout), like)

    def _encrypt(self, array: np.ndarray, layout: Layout | None):
        """``(layout, ciphertexts)`` of ``array`` under this (sized) context."""
        layout = layout or Layout.row_major(array.shape, self.slots)
        if layout.shape != array.shape or layout.slots != self.slots:
            raise ShapeMismatch(f"layout for {layout.shape} on {layout.slots} slots cannot hold "
                                f"shape {array.shape} on {self.slots} slots")
        return layout, [self.backend.encrypt(v) for v in layout.pack(array)]

    def decrypt(self, x: CipherTensor):
        """The plaintext tensor: numpy float64, or torch if the data came from torch.

        Warns :class:`~fhe.errors.ScaleOverflowWarning` when the result may have wrapped
        around the modulus (see :meth:`_check_wrap`)."""
        if not isinstance(x, CipherTensor):
            raise TypeError(f"decrypt takes a CipherTensor, got {type(x).__name__}")
        if x.context is not self:
            raise ContextMismatch("this ciphertext belongs to another context (other keys)")
        raw = np.stack([self.backend.decrypt(ct) for ct in x.ciphertexts])
        self._check_wrap(raw, min(self.backend.level(ct) for ct in x.ciphertexts))
        out = x.layout.unpack(raw)
        if x.like.kind == "torch":
            import torch

            return torch.from_numpy(out).to(x.like.dtype)
        return out

    def _check_wrap(self, raw: np.ndarray, level: int) -> None:
        """Warn (:class:`ScaleOverflowWarning`) when a decrypted ciphertext may have wrapped.

        What wraps is the plaintext polynomial's coefficients, and for real slot values
        ``z`` (``N/2`` of them) every coefficient is at most ``mean|z|`` (inverse canonical
        embedding: ``c_j = (2/N) Re Σ_k z_k ζ_k^-j``). So a mean magnitude below the level's
        bound proves there was room; a wrap adds multiples of ``2·bound`` to coefficients,
        which spreads to every slot and lifts the mean to about the bound. The warning fires
        at :data:`WRAP_WARNING` (half) of the bound. Not a proof in the other direction: a
        wrapped constant vector decrypts to another constant, maybe small."""
        if not raw.size:
            return
        mean = float(np.max(np.mean(np.abs(raw), axis=-1)))
        if mean >= WRAP_WARNING * self.value_bound(level):
            sim = " (the simulator does not wrap; a real backend would)" if self.backend_name == "sim" else ""
            warnings.warn(
                f"decrypted values have mean magnitude {mean:.6g} over a ciphertext's slots, at "
                f"least {WRAP_WARNING:g} x the bound {self._bound_text(level)}: the result may "
                f"have wrapped around the modulus and be wrong{sim}. Scale the inputs down so "
                f"that results stay well below the bound",
                ScaleOverflowWarning, stacklevel=3)

    # -- planning and running ------------------------------------------------------------------
    def plan(self, spec, *operands, out_layout: Layout | None = None) -> Plan:
        """The plan ``fhe.einsum(spec, *operands)`` would run (cached; sizes an unsized
        context as that einsum would)."""
        return self._plan(spec, operands, out_layout)[0]

    def generate_rotation_keys(self, steps) -> None:
        """Generate rotation keys (e.g. ``plan.rotation_keys``)."""
        self.backend.ensure_rotation_keys(steps)

    def public(self):
        """This context without its secret key (parameters, public, relinearisation and the
        rotation keys generated so far), for a server: a :class:`fhe.PublicContext`, whose
        ``to_bytes()`` serialises it."""
        from .serial import public_context

        return public_context(self)

    def _plan(self, spec, operands, out_layout):
        if self._backend is None:
            self._size_for_einsum(spec, operands)
        shapes, encrypted, layouts, levels = [], [], [], []
        for x in operands:
            if isinstance(x, CipherTensor):
                if x.context is not self:
                    raise ContextMismatch("einsum operands belong to different contexts")
                shapes.append(x.shape)
                encrypted.append(True)
                layouts.append(x.layout)
                levels.append(x.level)
            else:
                shapes.append(tuple(np.shape(x)))
                encrypted.append(False)
                layouts.append(None)
                levels.append(None)
        key = (str(spec), tuple(shapes), tuple(layouts), tuple(levels), out_layout)
        if key in self._plans:
            self._plans.move_to_end(key)
        else:
            try:
                p = plan(spec, *shapes, slots=self.slots, encrypted=encrypted, layouts=layouts,
                         levels=self.levels, input_levels=levels, out_layout=out_layout)
            except OutOfLevels as exc:
                if self.sized_by is None:
                    raise
                raise OutOfLevels(f"{exc} (this context's {self.levels} levels were chosen by "
                                  f"{self.sized_by}; give fhe.Context(levels=...) for a chain of "
                                  f"computations)", needed=exc.needed, have=exc.have) from None
            self._plans[key] = (p, {})
            if len(self._plans) > PLAN_CACHE:
                self._plans.popitem(last=False)
        return self._plans[key]

    def run(self, spec, operands, plains, like: Like, out_layout=None) -> CipherTensor:
        """Plan (cached) and execute; used by :func:`fhe.einsum`."""
        p, cache = self._plan(spec, operands, out_layout)
        cts = [x.ciphertexts if isinstance(x, CipherTensor) else None for x in operands]
        out = execute(p, self.backend, cts, plains, generate_keys=self.auto_keys, cache=cache)
        return CipherTensor(self, p.output_layout, out, like)


def fewest_levels(spec, shapes, encrypted, backend: str, ring_degree, scale_bits: int,
                  allow_insecure: bool, levels: int | None = None) -> tuple[int, Plan]:
    """The fewest levels (at least 1) any plan of ``spec`` on ``shapes`` needs, planned on the
    slots of the ring those levels imply — more levels can mean a bigger ring, hence more
    slots and another plan: repeated until the two agree — and that plan. With ``levels``
    given: that many, or :class:`OutOfLevels` when too few."""
    lv = max(int(levels), 0) if levels is not None else 1
    for _ in range(64):
        slots = _slots(backend, ring_degree, lv, scale_bits, allow_insecure)
        try:
            return lv, plan(spec, *shapes, slots=slots, encrypted=encrypted, levels=lv)
        except OutOfLevels as exc:
            if levels is not None:
                raise
            lv = max(lv + 1, exc.needed or 0)
    raise OutOfLevels(f"einsum '{spec}': no level count up to {lv} fits its plans", needed=lv, have=lv)


def _holds(backend: str, ring_degree, levels: int, scale_bits: int, allow_insecure: bool,
           slots: int) -> bool:
    """Whether ``levels`` fit (securely, unless allowed) a ring of ``slots`` slots."""
    try:
        return _slots(backend, ring_degree, levels, scale_bits, allow_insecure) == slots
    except (FHEError, ValueError):  # InsecureParameters, or a ring that cannot hold them
        return False


def _slots(backend: str, ring_degree, levels: int, scale_bits: int, allow_insecure: bool) -> int:
    """Slots of the context ``Context(backend, ring_degree, levels, ...)`` would make, without
    making keys (the parameter choice of :mod:`fhe.backends.params`)."""
    from .backends import params

    if backend == "sim":
        if ring_degree is not None:  # any power of two: no security to check
            return int(ring_degree) // 2
        allow_insecure = True
    if backend == "desilo":
        return params.desilo_params(ring_degree, max(levels, 1), scale_bits,
                                    allow_insecure).ring_degree // 2
    return params.seal_params(ring_degree, levels, scale_bits, allow_insecure).ring_degree // 2
