"""CKKS backend on desilofhe (``desilofhe.Engine``), CPU or CUDA.

desilofhe chooses its own prime chain from ``Engine(max_level=L)`` (scale fixed at 2^40)
and rescales inside ``multiply``. :func:`fhe.backends.params.desilo_params` picks the
smallest engine that is 128-bit secure by the HE standard, has at least ``levels`` levels
and, if asked, the requested ring degree; fresh ciphertexts are encrypted at ``levels``
(below the engine's own max level when a larger ring was needed), and the
relinearisation and rotation keys are generated at that level, which keeps them small.

Rotation keys: one ``FixedRotationKey`` per requested slot shift. desilofhe's general
``RotationKey`` covers every shift with ``log2(slots)`` power-of-two keys, but then each
rotation costs up to ``log2(slots)`` key switches; a fixed key costs one, and the planner
knows every shift in advance.

Client/server: :meth:`DesiloBackend.public_parts` serialises the public key, the
relinearisation key and the fixed rotation keys with desilofhe's own ``serialize_*``; desilofhe's
deserialisers do not check an object against the engine, so the loader compares each object's
size with one these parameters make (a throwaway key set) and the ciphertext's level.

Per-op costs (measured with ``benchmarks/bench_desilo.py``; why desilo is slower than SEAL at the
same ring and levels): desilofhe's ``max_level=3`` engine at N = 2^14 keeps 6 words per
coefficient at the top level (SEAL: 4 data primes plus one special prime), so rotations and
relinearisations at the top level cost about twice SEAL's; below the top level 4 words. What the
backend itself controls:

* plaintexts are desilofhe *light* plaintexts (``encode_to_light_plaintext``) at the
  ciphertext's level: encoding is ~10x cheaper than ``encode`` (which costs the same at every
  level), the plaintext is 6x smaller, and ``multiply`` with it is as fast and as precise.
  Light plaintexts cannot sit at level 0; there (``add_plain`` only) a regular plaintext is used.
* ``mul(a, a)`` is ``square`` (one tensor product fewer);
* :meth:`DesiloBackend.rotate_many` rotates one ciphertext by several amounts with one shared
  decomposition (desilofhe's hoisted ``rotate_many``), for executors that batch rotations.

Bootstrapping: desilofhe bootstraps only on its bootstrap preset, ``Engine(bootstrap=True)``
(N = 2^16, 32768 slots, max level 17), made with ``DesiloBackend(bootstrap=True)``.
:meth:`DesiloBackend.bootstrap` refreshes a ciphertext to :attr:`levels_after_bootstrap`
(= ``levels``) levels with desilofhe's *small* bootstrap key (the ``medium`` key peaks above
17 GB of memory while it is made). The preset's modulus (at least 1788 bits, read from the
public key's primes) is above the HE standard's 128-bit bound for N = 2^16 (1747 bits, the
table :mod:`fhe.backends.params` applies), so it is rated ~125 bits and needs
``allow_insecure=True``.
"""
from __future__ import annotations

import numpy as np

from ..errors import BootstrapUnavailable, FHEError, OutOfLevels, UnsupportedBackend
from .base import Backend, SerializationError, field, key_id_field, shifts_field
from .params import DESILO_ENGINES, DESILO_SCALE_BITS, DesiloParams, check_security, desilo_params


try:
    import desilofhe as _desilo
except ImportError:  # pragma: no cover - exercised only without desilofhe
    _desilo = None


def _major_version() -> int | None:
    """The major version of the desilofhe build actually imported (``desilofhe`` or a CUDA build
    such as ``desilofhe-cu130``: its dist-info sits beside the module), None if unknown."""
    import re
    from pathlib import Path

    if _desilo is None or not getattr(_desilo, "__file__", None):
        return None
    for info in sorted(Path(_desilo.__file__).parent.glob("desilofhe*.dist-info")):
        match = re.fullmatch(r"desilofhe(?:_cu\d+)?-(\d+)\..*\.dist-info", info.name)
        if match:
            return int(match.group(1))
    return None


#: desilofhe 2 rotates a fixed-key rotation by k to the left (slot i receives slot i + k); the 1.x
#: builds (the CUDA 13.0 wheel is 1.17) rotate to the right, so their keys take the shift -k.
_ROTATION_SIGN = -1 if (_major_version() or 2) < 2 else 1

#: ``device`` argument -> desilofhe engine mode. "parallel" is desilofhe's multi-threaded
#: CPU mode; its GPU mode ("gpu") needs a CUDA build of desilofhe (``desilofhe-cu1xx``) and a device.
_MODES = {"cpu": "parallel", "cuda": "gpu", "gpu": "gpu"}

#: desilofhe's bootstrap preset (``Engine(bootstrap=True)``), measured for desilofhe 2.0: ring
#: degree, max level, and a lower bound on log2 Q·P (the bit sizes of the 31 primes of its public
#: key: 12 x 55, 30, 18 x 61 bits; the key-switching primes come on top).
BOOTSTRAP_RING_DEGREE = 65536
BOOTSTRAP_MAX_LEVEL = 17
BOOTSTRAP_LOG_QP = 1788


def bootstrap_params(ring_degree: int | None, levels: int, scale_bits: int,
                     allow_insecure: bool) -> DesiloParams:
    """The parameters of desilofhe's bootstrap preset, fresh ciphertexts at ``levels``."""
    if scale_bits != DESILO_SCALE_BITS:
        raise ValueError(f"desilofhe fixes the CKKS scale at 2^{DESILO_SCALE_BITS}; got scale_bits={scale_bits}")
    if ring_degree not in (None, BOOTSTRAP_RING_DEGREE):
        raise ValueError(f"desilofhe bootstraps only on its bootstrap preset, ring degree "
                         f"{BOOTSTRAP_RING_DEGREE}; got ring_degree={ring_degree}")
    if not 1 <= levels <= BOOTSTRAP_MAX_LEVEL:
        raise ValueError(f"desilofhe's bootstrap preset holds 1..{BOOTSTRAP_MAX_LEVEL} levels; "
                         f"got levels={levels}")
    try:
        sec = check_security(BOOTSTRAP_RING_DEGREE, BOOTSTRAP_LOG_QP, allow_insecure)
    except FHEError as exc:  # InsecureParameters: say why this preset is refused
        raise type(exc)(f"desilofhe's bootstrap preset (ring degree {BOOTSTRAP_RING_DEGREE}, a "
                        f"modulus of at least {BOOTSTRAP_LOG_QP} bits) is above the HE "
                        f"standard's 128-bit bound; pass allow_insecure=True to use it ({exc})") from None
    return DesiloParams(BOOTSTRAP_MAX_LEVEL, BOOTSTRAP_RING_DEGREE, BOOTSTRAP_LOG_QP, levels, sec)


class DesiloBackend(Backend):
    """desilofhe CKKS engine with its keys; the secret key never leaves this object."""

    name = "desilo"

    def __init__(
        self,
        ring_degree: int | None = None,
        levels: int = 3,
        scale_bits: int = DESILO_SCALE_BITS,
        allow_insecure: bool = False,
        device: str = "cpu",
        bootstrap: bool = False,
        threads: int | None = None,
    ) -> None:
        """``bootstrap=True``: desilofhe's bootstrap preset (N = 2^16, ``levels`` <= 17, needs
        ``allow_insecure=True``, see the module notes); ``threads``: desilofhe's CPU thread
        count (default: its own choice)."""
        super().__init__()
        if _desilo is None:
            raise UnsupportedBackend("the 'desilo' backend needs desilofhe: pip install desilofhe")
        if device not in _MODES:
            raise ValueError(f"device must be one of {sorted(_MODES)}, got {device!r}")
        params = (bootstrap_params(ring_degree, levels, scale_bits, allow_insecure) if bootstrap
                  else desilo_params(ring_degree, levels, scale_bits, allow_insecure))
        self._setup(params, device, bootstrap=bootstrap, threads=threads)
        self._secret_key = self._engine.create_secret_key()
        self._public_key = self._engine.create_public_key(self._secret_key)
        self._relin_key = self._engine.create_relinearization_key(self._secret_key, levels)

    def _setup(self, params: DesiloParams, device: str, bootstrap: bool = False,
               threads: int | None = None) -> None:
        if _desilo is None:
            raise UnsupportedBackend("the 'desilo' backend needs desilofhe: pip install desilofhe")
        if device not in _MODES:
            raise ValueError(f"device must be one of {sorted(_MODES)}, got {device!r}")
        if threads is not None and (type(threads) is not int or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        self.params = params
        self.device = device
        self._sizes: dict | None = None
        self._bootstrap_engine = bool(bootstrap)
        self._bootstrap_keys: tuple | None = None
        options = {"mode": _MODES[device]}
        if threads is not None:
            options["thread_count"] = threads
        if bootstrap:
            options["bootstrap"] = True
        else:
            options["max_level"] = self.params.engine_max_level
        try:
            self._engine = _desilo.Engine(**options)
        except RuntimeError as exc:
            if device == "cpu":
                raise
            raise UnsupportedBackend(
                f"desilofhe cannot run on {device!r} ({exc}); it needs a CUDA build of desilofhe "
                f"(desilofhe-cu1xx) and a visible CUDA device") from exc
        if self._engine.slot_count * 2 != self.params.ring_degree:
            raise UnsupportedBackend(
                f"desilofhe {getattr(_desilo, '__version__', '')} chose ring degree "
                f"{self._engine.slot_count * 2} for max_level={self.params.engine_max_level}, not the "
                f"{self.params.ring_degree} this backend's security table expects")

    def __getstate__(self):
        if self.has_secret_key:
            raise TypeError("a DesiloBackend holds a secret key and cannot be pickled; export its "
                            "public part with fhe.serial (public_bytes)")
        raise TypeError("a public DesiloBackend is not pickled: use public_bytes() / "
                        "from_public_bytes()")

    def __repr__(self) -> str:
        p = self.params
        public = ", public (no secret key)" if not self.has_secret_key else ""
        boot = ", bootstrap=True" if self._bootstrap_engine else ""
        return (f"DesiloBackend(ring_degree={p.ring_degree}, levels={p.levels}, "
                f"engine_max_level={p.engine_max_level}{boot}, device={self.device!r}, "
                f"security_bits={p.security_bits}{public})")

    # -- client / server -----------------------------------------------------------------
    @property
    def has_secret_key(self) -> bool:
        return self._secret_key is not None

    def public(self) -> "DesiloBackend":
        pub = DesiloBackend.__new__(DesiloBackend)
        Backend.__init__(pub)
        pub.__dict__.update({k: v for k, v in self.__dict__.items()
                             if k not in ("counters", "_secret_key", "_rotation_keys")})
        pub._secret_key = None
        pub._rotation_keys = dict(self._rotation_keys)
        return pub

    def public_parts(self):
        if self._bootstrap_engine:
            raise SerializationError("a desilo context with bootstrap=True cannot be exported yet "
                                     "(its bootstrap keys take several GB)")
        p, e = self.params, self._engine
        shifts = sorted(self._rotation_keys)
        meta = {"backend": self.name, "ring_degree": p.ring_degree, "levels": p.levels,
                "engine_max_level": p.engine_max_level, "scale_bits": DESILO_SCALE_BITS,
                "key_id": self.key_id.hex(), "rotation_shifts": shifts,
                "rotation_sign": _ROTATION_SIGN, "desilo": "public_key,relin_key,fixed_rotation_key*"}
        blobs = [e.serialize_public_key(self._public_key), e.serialize_relinearization_key(self._relin_key)]
        blobs += [e.serialize_fixed_rotation_key(self._rotation_keys[s]) for s in shifts]
        return meta, blobs

    def _reference_sizes(self) -> dict:
        """``nbytes`` of well-formed objects of these parameters (from a throwaway key set, not
        the client's): desilofhe's deserialisers do not check an object against the engine."""
        if self._sizes is None:
            e, lv = self._engine, self.max_level
            sk = e.create_secret_key()
            pk = e.create_public_key(sk)
            ct = e.encrypt(np.zeros(self.slots), pk, lv)
            self._sizes = {
                "public_key": pk.nbytes,
                "relin_key": e.create_relinearization_key(sk, lv).nbytes,
                "rotation_key": e.create_fixed_rotation_key(sk, 1, lv).nbytes,
                "ciphertext": {lvl: e.level_down(ct, lvl).nbytes if lvl < lv else ct.nbytes
                               for lvl in range(lv + 1)},
            }
        return self._sizes

    @classmethod
    def from_public_parts(cls, meta, blobs, allow_insecure: bool = False,
                          device: str = "cpu") -> "DesiloBackend":
        what = "desilo public context"
        n = field(meta, "ring_degree", int, what)
        levels = field(meta, "levels", int, what, lambda v: 1 <= v <= 64)
        engine_level = field(meta, "engine_max_level", int, what, lambda v: v in DESILO_ENGINES)
        if field(meta, "rotation_sign", int, what) != _ROTATION_SIGN:
            raise SerializationError(f"{what}: exported by a desilofhe build whose rotations run "
                                     f"the other way; this build cannot use its rotation keys")
        ring, log_qp = DESILO_ENGINES[engine_level]
        if ring != n or levels > engine_level:
            raise SerializationError(f"{what}: engine max level {engine_level} (ring degree "
                                     f"{ring}) cannot hold ring degree {n} with {levels} levels")
        params = DesiloParams(engine_level, n, log_qp, levels,
                              check_security(n, log_qp, allow_insecure))
        pub = cls.__new__(cls)
        Backend.__init__(pub)
        pub._setup(params, device)
        pub._secret_key = None
        pub.key_id = key_id_field(meta, what)
        shifts = shifts_field(meta, pub.slots, what)
        if len(blobs) != 2 + len(shifts):
            raise SerializationError(f"{what}: {len(blobs)} key blobs for {len(shifts)} "
                                     f"rotation keys (expected {2 + len(shifts)})")
        e, sizes = pub._engine, pub._reference_sizes()

        def load(kind, blob, reader):
            try:
                obj = reader(bytes(blob))
            except (RuntimeError, ValueError, TypeError) as exc:
                raise SerializationError(f"{what}: desilofhe rejected the {kind} ({exc})") from None
            if obj.nbytes != sizes[kind]:
                raise SerializationError(f"{what}: {kind} of {obj.nbytes} bytes, these "
                                         f"parameters make {sizes[kind]}")
            return obj

        pub._public_key = load("public_key", blobs[0], e.deserialize_public_key)
        pub._relin_key = load("relin_key", blobs[1], e.deserialize_relinearization_key)
        for shift, blob in zip(shifts, blobs[2:]):
            pub._rotation_keys[shift] = load("rotation_key", blob, e.deserialize_fixed_rotation_key)
        return pub

    def ciphertext_bytes(self, ct) -> bytes:
        return bytes(self._engine.serialize_ciphertext(ct))

    def ciphertext_from_bytes(self, data):
        what = "desilo ciphertext"
        try:
            ct = self._engine.deserialize_ciphertext(bytes(data))
        except (RuntimeError, ValueError, TypeError) as exc:
            raise SerializationError(f"{what}: desilofhe rejected the data ({exc})") from None
        expected = self._reference_sizes()["ciphertext"].get(ct.level)
        if expected is None or ct.nbytes != expected or ct.polynomial_count != 2:
            raise SerializationError(f"{what}: level {ct.level}, {ct.nbytes} bytes does not fit "
                                     f"these parameters (levels 0..{self.max_level})")
        return ct

    # -- parameters -------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self._engine.slot_count

    @property
    def max_level(self) -> int:
        return self.params.levels

    @property
    def security_bits(self) -> int:
        return self.params.security_bits

    # -- keys ---------------------------------------------------------------------------
    def _make_rotation_key(self, shift: int):
        if self._secret_key is None:
            raise self._no_secret_key("generate rotation keys")
        return self._engine.create_fixed_rotation_key(self._secret_key, _ROTATION_SIGN * shift % self.slots,
                                                      self.max_level)

    # -- encoding and encryption -----------------------------------------------------------
    def encode(self, values, level: int | None = None):
        """A plaintext for ciphertexts at ``level``: a light plaintext (cheap to make, 6x
        smaller than a regular one, as fast in ``multiply``) except at level 0, where desilofhe
        has no light plaintexts (a level-0 plaintext only serves ``add_plain``)."""
        level = self.max_level if level is None else level
        if not 0 <= level <= self.max_level:
            raise OutOfLevels(f"level {level} is outside 0..{self.max_level}")
        return self._encode(self._vector(values), level)

    def _encode(self, vector: np.ndarray, level: int):
        if level >= 1:
            return self._engine.encode_to_light_plaintext(vector, level)
        return self._engine.encode(vector, level)

    def _plain(self, values, level: int):
        """A desilofhe plaintext at ``level`` from a vector or an :meth:`encode` result."""
        if isinstance(values, (_desilo.Plaintext, _desilo.LightPlaintext)):
            if values.level == level:
                return values
            if values.level < level:
                raise OutOfLevels(f"plaintext at level {values.level} cannot meet a ciphertext "
                                  f"at level {level}")
            if isinstance(values, _desilo.Plaintext):
                return self._engine.level_down(values, level)
            if level >= 1:
                return self._engine.change_level(values, level)
            raise OutOfLevels("a light plaintext cannot be brought to level 0; encode the "
                              "vector at level 0 instead")
        return self._encode(self._vector(values), level)

    def encrypt(self, values):
        return self._engine.encrypt(self._vector(values), self._public_key, self.max_level)

    def decrypt(self, ct) -> np.ndarray:
        if self._secret_key is None:
            raise self._no_secret_key("decrypt")
        return np.real(self._engine.decrypt(ct, self._secret_key)).astype(np.float64)

    def level(self, ct) -> int:
        return ct.level

    # -- arithmetic (desilofhe aligns levels itself: the higher operand is levelled down) ----
    def add(self, a, b):
        self.counters["add"] += 1
        return self._engine.add(a, b)

    def sub(self, a, b):
        self.counters["add"] += 1
        return self._engine.subtract(a, b)

    def add_plain(self, a, values):
        self.counters["add"] += 1
        return self._engine.add(a, self._plain(values, a.level))

    def _need_level(self, level: int, what: str) -> None:
        if level < 1:
            raise OutOfLevels(f"{what} needs a level but the ciphertext is at level 0; "
                              f"use more levels (max_level={self.max_level})")

    def mul(self, a, b):
        return self.finish(self.product(a, b))

    #: desilofhe rescales inside ``multiply``, but relinearises only when given the key: a sum
    #: of ct x ct products (3 polynomials each) is relinearised once (ct x pt: nothing to defer)
    lazy_products = True

    def product(self, a, b):
        self._need_level(min(a.level, b.level), "mul")
        self.counters["mul"] += 1
        self.counters["rescale"] += 1
        if a is b:  # one tensor product fewer
            return self._engine.square(a)
        return self._engine.multiply(a, b)

    def finish(self, a):
        if a.polynomial_count > 2:
            self.counters["relinearize"] += 1
            return self._engine.relinearize(a, self._relin_key)
        return a

    def mul_plain(self, a, values):
        self._need_level(a.level, "mul_plain")
        self.counters["mul_plain"] += 1
        self.counters["rescale"] += 1
        return self._engine.multiply(a, self._plain(values, a.level))

    def rotate(self, a, step: int):
        shift, key = self._rotation_key(step)
        if shift == 0:
            return a
        self.counters["rotate"] += 1
        return self._engine.rotate(a, key)

    def rotate_many(self, a, steps) -> list:
        """``[rotate(a, s) for s in steps]`` with one shared (hoisted) decomposition of ``a``:
        desilofhe's ``rotate_many``. Counts one rotation per distinct non-zero shift."""
        steps = [int(s) for s in steps]
        keyed = {}
        for s in steps:
            shift, key = self._rotation_key(s)
            if shift:
                keyed.setdefault(shift, key)
        done = {0: a}
        if len(keyed) == 1:
            (shift, key), = keyed.items()
            done[shift] = self._engine.rotate(a, key)
        elif keyed:
            done.update(zip(keyed, self._engine.rotate_many(a, list(keyed.values()))))
        self.counters["rotate"] += len(keyed)
        return [done[self._shift(s)] for s in steps]

    # -- bootstrapping ------------------------------------------------------------------------
    @property
    def can_bootstrap(self) -> bool:
        """Whether :meth:`bootstrap` can run: a ``bootstrap=True`` engine whose keys exist or
        can be made (a public backend needs them exported, which is not supported yet)."""
        return self._bootstrap_engine and (self._bootstrap_keys is not None
                                           or self._secret_key is not None)

    @property
    def levels_after_bootstrap(self) -> int | None:
        """Levels of a bootstrapped ciphertext (``levels``), None when this engine cannot
        bootstrap."""
        return self.max_level if self._bootstrap_engine else None

    def ensure_bootstrap_key(self) -> None:
        """Make the bootstrap keys once: a relinearisation and a conjugation key at the engine's
        top level, a roll key and desilofhe's small bootstrap key (about 4.6 GB together)."""
        if self._bootstrap_keys is not None:
            return
        if not self._bootstrap_engine:
            raise self._no_bootstrap()
        if self._secret_key is None:
            raise self._no_secret_key("make bootstrap keys")
        e, sk = self._engine, self._secret_key
        relin = (self._relin_key if self.max_level == BOOTSTRAP_MAX_LEVEL
                 else e.create_relinearization_key(sk))
        self._bootstrap_keys = (relin, e.create_conjugation_key(sk), e.create_roll_key(sk),
                                e.create_small_bootstrap_key(sk))

    def _no_bootstrap(self) -> BootstrapUnavailable:
        p = self.params
        return BootstrapUnavailable(
            f"this desilo engine (ring degree {p.ring_degree}, engine max level "
            f"{p.engine_max_level}) cannot bootstrap: desilofhe bootstraps only on its bootstrap "
            f"preset (ring degree {BOOTSTRAP_RING_DEGREE}); make the context with "
            f"fhe.Context('desilo', levels=L, bootstrap=True, allow_insecure=True), L <= "
            f"{BOOTSTRAP_MAX_LEVEL}")

    def bootstrap(self, ct):
        """A ciphertext of the same values at :attr:`levels_after_bootstrap` levels (tested with
        inputs at level 0, products included: those are in NTT form and are brought back to
        coefficients first). Values should lie in [-1, 1] (desilofhe's modular-reduction
        approximation; tested there: max error ~1e-4). Makes the bootstrap keys on first use
        (:meth:`ensure_bootstrap_key`). Slow on a CPU: minutes."""
        if not self._bootstrap_engine:
            raise self._no_bootstrap()
        self.ensure_bootstrap_key()
        relin, conj, roll, small = self._bootstrap_keys
        try:
            out = self._engine.bootstrap(ct, relin, conj, roll, small)
        except RuntimeError as exc:  # products come out in NTT form; bootstrap wants coefficients
            if "NTT form" not in str(exc):
                raise
            out = self._engine.bootstrap(self._engine.intt(ct), relin, conj, roll, small)
        self.counters["bootstrap"] += 1
        if out.level > self.max_level:
            out = self._engine.level_down(out, self.max_level)
        return out
