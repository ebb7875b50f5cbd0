"""Encrypted inference of whole models, compiled once from the circuits Graph (:func:`fhe.compile`).

    program = fhe.compile(model, (16, 64), activation=fhe.relu_approx(bound=8))
    print(program)                                   # per layer: layout, rotations, levels, keys
    ctx = program.context()                          # levels and ring for the whole network
    y = program.run(ctx.encrypt(x, program.input_layout))
    ctx.decrypt(y)

The model is traced by :func:`circuits.trace` — the graph the zk side proves — and lowered node
by node, before anything is encrypted, into steps on named values (each reads the values it
names and writes its node's output; a run keeps the live ciphertexts by name and drops each
after its last use). Plaintext operands are the model's parameters and the graph's constants
(the weights of average pooling and means).

1. ``einsum`` of an encrypted value with a plaintext one (in either position): planned by
   :func:`fhe.plan` from the layout its input has (layouts chain from layer to layer, nothing
   is decrypted).
2. ``add`` of a plaintext (a bias): a plaintext addition packed into the value's layout (no level).
3. ``add`` of two encrypted values of one shape (a residual): :func:`fhe.ops.add`. When their
   layouts differ, the one with more levels left is first brought to the other's layout by a
   relayout einsum planned here (its levels and rotation keys are the program's).
4. ``rescale``: nothing (it is the identity on real values); ``reshape`` of a tensor to its own
   shape: nothing.
5. ``relu``: the program's :class:`Activation`, a polynomial evaluated on ``t = z / bound``. The
   ``1 / bound`` is folded into the linear layers before it — back through biases and both
   branches of a residual add to their einsums' plaintext operands — so it costs no level; the
   polynomial keeps ``t`` in ``[-1, 1]``, where powers stay small. Where a value on the way is
   read elsewhere too, or is the input or an activation's output, a bound other than 1 is refused
   (ValueError naming the activation and the value).

Anything else that reads an encrypted value (a product of two of them, a reshape that changes
the shape) raises :class:`circuits.UnsupportedOp` naming the node.

The program knows its depth (the levels consumed along the output's deepest path: a step adds
its levels to its input's; a residual add takes the larger of its two operands', the relayouted
one's plus the relayout's), the rotation keys it needs (the union of its plans') and each
activation's error bound on its declared range; :meth:`Program.context` makes a context with
exactly those levels and keys.

Deeper than a ring holds: on SEAL, :class:`OutOfLevels` says how many levels are missing.
``compile(..., bootstrap=L)`` targets desilo's bootstrap preset instead (32768 slots, ``L``
levels after each bootstrap): a bootstrap is inserted before an activation whenever the levels
left do not cover that activation and the layers up to the next one. There the values are
``t = z / bound``, inside [-1, 1] as bootstrapping requires. Only chains bootstrap: a model with
a residual add is refused (a bootstrap on one branch would leave the other at its level).
"""
from __future__ import annotations

import math
import string
import weakref
from dataclasses import dataclass, field

import numpy as np

from .errors import OutOfLevels, ShapeMismatch, UnsupportedInput
from .execute import execute
from .layout import Layout
from .plan import Plan, plan as plan_einsum
from .tensor import CipherTensor

__all__ = ["Activation", "Program", "compile", "gelu_approx", "polynomial", "relu_approx", "square"]

#: points of the grid an activation's error bound is measured on
ERROR_GRID = 20001
#: points (Chebyshev-spaced) of the grid each stage of a composite approximation is fitted on
STAGE_GRID = 4001
#: highest degree of an approximation
MAX_DEGREE = 31
#: seconds per op on SEAL at N = 2^14 with 10 primes (8 levels), measured on the 2-core box; an
#: estimate scales them by N / 2^14 and by the primes left at the op's level (squared for the
#: key-switching ops, rotate and mul)
OP_SECONDS = {"rotate": 36e-3, "mul": 43e-3, "mul_plain": 8e-3, "add": 0.35e-3}
#: seconds of one desilo bootstrap (N = 2^16, small bootstrap key) on the 2-core box (docs/fhe.md: ~2 min)
BOOTSTRAP_SECONDS = 120.0
_KEY_SWITCHING = ("rotate", "mul")
#: largest sum of |coefficients| of an approximation (the power basis CKKS evaluates): the
#: encryption noise grows by about that factor (ReLU: 3e3 at degree 15, 1.5e4 at 17, 2e6 at 23)
MAX_COEFFICIENT_SUM = 1e4


@dataclass(frozen=True)
class Activation:
    """A polynomial standing for an activation on ``t = z / bound``: ``coeffs`` (highest degree
    first, numpy.polyval's order) of ``p(t) ~ f(bound * t)``; ``error``: max ``|p(z / bound) -
    f(z)|`` over ``|z| <= bound`` (0 when exact). ``even``: when ``p(t) = linear * t + e(t^2)``
    (ReLU and GELU: ``f(z) - z/2`` is even), the coefficients of ``e`` (highest first), which is
    evaluated on ``u = t^2``: half the products of evaluating ``p`` directly, at the same depth.

    ``stages``: a composite polynomial instead (:func:`relu_approx` with ``stages=``):
    ``p(t) = t * s_k(...s_2(s_1(t)))``, each stage's coefficients highest first (``coeffs``
    is then empty); low-degree stages reach what a single polynomial of their product degree
    would, with small coefficients."""

    name: str
    coeffs: tuple[float, ...]
    bound: float = 1.0
    error: float = 0.0
    even: tuple[float, ...] | None = None
    linear: float = 0.0
    stages: tuple[tuple[float, ...], ...] = ()

    @property
    def degree(self) -> int:
        if self.stages:
            return 1 + math.prod(len(c) - 1 for c in self.stages)
        return len(self.coeffs) - 1

    @property
    def levels(self) -> int:
        from .ops import polyval_levels

        if self.stages:
            return 1 + sum(polyval_levels(c) for c in self.stages)
        if self.even is not None:
            return max(1 + polyval_levels(self.even), 1 if self.linear else 0)
        return polyval_levels(self.coeffs)

    def evaluate(self, x: CipherTensor) -> CipherTensor:
        """The polynomial on an encrypted ``t``."""
        from .ops import add, multiply, polyval

        if self.stages:
            y = x
            for c in self.stages:
                y = polyval(y, c)
            return multiply(x, y)
        if self.even is None:
            return polyval(x, self.coeffs)
        out = polyval(multiply(x, x), self.even)
        return add(out, multiply(x, self.linear)) if self.linear else out

    def on_t(self, t: np.ndarray) -> np.ndarray:
        """The polynomial on plaintext ``t`` (what :meth:`evaluate` computes, in float64)."""
        t = np.asarray(t, dtype=np.float64)
        if not self.stages:
            return np.polyval(self.coeffs, t)
        y = t
        for c in self.stages:
            y = np.polyval(c, y)
        return t * y

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """The polynomial on plaintext pre-activations ``z`` (what the encrypted program computes)."""
        return self.on_t(np.asarray(z, dtype=np.float64) / self.bound)

    def describe(self) -> str:
        exact = "exact" if self.error == 0 else f"max error {self.error:.3g} on [-{self.bound:g}, {self.bound:g}]"
        if self.stages:
            degrees = " o ".join(str(len(c) - 1) for c in reversed(self.stages))
            return f"{self.name} (t * composite of degrees {degrees}, {self.levels} levels, {exact})"
        return f"{self.name} (degree {self.degree}, {self.levels} levels, {exact})"


def square() -> Activation:
    """``z^2`` (exact, one level)."""
    return Activation("square", (1.0, 0.0, 0.0))


def polynomial(coeffs, name: str = "polynomial") -> Activation:
    """A user polynomial in ``z`` (highest degree first), exact by definition."""
    c = tuple(float(v) for v in np.atleast_1d(np.asarray(coeffs, dtype=np.float64)))
    if not c or not np.all(np.isfinite(c)):
        raise UnsupportedInput(f"polynomial coefficients must be finite reals, got {coeffs!r}")
    return Activation(name, c)


def _remez(f, vander, size: int, grid: np.ndarray, iterations: int = 60) -> np.ndarray:
    """Coefficients (in the basis ``vander(x)`` evaluates: ``size`` columns) of the minimax
    approximation of ``f`` on the points ``grid`` (sorted): Remez exchange — solve ``p(x_i) +
    (-1)^i E = f(x_i)`` on ``size + 1`` points, move the points to the error's alternating
    extrema, keep the best approximation seen."""
    target = f(grid)
    points = grid[np.round((1 - np.cos(np.pi * np.arange(size + 1) / size)) / 2
                           * (len(grid) - 1)).astype(int)]
    signs = (-1.0) ** np.arange(size + 1)
    best, best_error = None, np.inf
    for _ in range(iterations):
        try:
            solved = np.linalg.solve(np.hstack([vander(points), signs[:, None]]), f(points))
        except np.linalg.LinAlgError:  # points merged: the best so far is as good as it gets
            break
        coeffs = solved[:-1]
        error = vander(grid) @ coeffs - target
        if np.abs(error).max() < best_error:
            best, best_error = coeffs, np.abs(error).max()
        # one extremum per run of equal sign, then trimmed at the ends to size + 1
        sign = np.where(error >= 0, 1, -1)
        cuts = np.flatnonzero(np.diff(sign)) + 1
        extrema = [run[np.argmax(np.abs(error[run]))] for run in np.split(np.arange(len(grid)), cuts)]
        while len(extrema) > size + 1:
            extrema.pop(0 if abs(error[extrema[0]]) < abs(error[extrema[-1]]) else -1)
        if len(extrema) < size + 1:
            break
        points = grid[extrema]
    return best


def _check_coefficients(name: str, power: np.ndarray) -> None:
    """Refuse power-basis coefficients whose absolute sum exceeds :data:`MAX_COEFFICIENT_SUM`."""
    if np.abs(power).sum() > MAX_COEFFICIENT_SUM:
        raise ValueError(f"{name}: its power-basis coefficients sum to {np.abs(power).sum():.3g} in absolute "
                         f"value (at most {MAX_COEFFICIENT_SUM:g}), which would amplify the encryption noise as "
                         "much; use a lower degree")


def _check_range(name: str, bound) -> None:
    if not (isinstance(bound, (int, float)) and np.isfinite(bound) and bound > 0):
        raise ValueError(f"{name}: the input range bound must be a positive number, got {bound!r}")


def _approximate(name: str, f, bound: float, degree: int) -> Activation:
    """The minimax polynomial of ``f`` on ``[-bound, bound]`` (:func:`_remez`), in ``t = z / bound``,
    for an ``f`` with ``f(z) - z/2`` even (ReLU, GELU): its odd part is set to exactly ``z/2``
    (the minimax polynomial's odd part is that, up to rounding), so it evaluates as
    ``bound/2 * t + e(t^2)``."""
    _check_range(name, bound)
    if not (isinstance(degree, int) and 1 <= degree <= MAX_DEGREE):
        raise ValueError(f"{name}: degree must be an integer in [1, {MAX_DEGREE}], got {degree!r}")
    cheb = np.polynomial.chebyshev
    t = np.linspace(-1.0, 1.0, ERROR_GRID)
    fit = _remez(lambda t: f(bound * t), lambda x: cheb.chebvander(x, degree), degree + 1, t)
    power = cheb.cheb2poly(fit)  # lowest degree first
    power[1::2] = 0.0
    if len(power) > 1:
        power[1] = bound / 2
    coeffs = tuple(float(c) for c in power[::-1])
    _check_coefficients(f"{name} of degree {degree}", power)
    error = float(np.max(np.abs(np.polyval(coeffs, t) - f(bound * t))))
    even = tuple(float(c) for c in power[0::2][::-1])
    return Activation(f"{name} ~ minimax", coeffs, float(bound), error, even, float(bound) / 2 if degree else 0.0)


def _sign_stages(degrees, gap: float) -> tuple[list[np.ndarray], float]:
    """Odd polynomials ``s_1..s_k`` (power basis, lowest first) with ``s_k(...s_1(t))`` close to
    ``sign(t)`` for ``gap <= |t| <= 1`` (Lee et al.'s composite minimax construction): stage ``i``
    is the odd minimax approximation of 1 on the interval ``[lo_i, 1]`` the previous stages
    leave (``lo_1 = gap``), scaled so that it maps ``[-1, 1]`` into ``[-1, 1]`` (the next
    stage's domain; the last one is centred on 1 instead). Returns the stages and ``delta``,
    the largest ``|s(t) - sign(t)|`` for ``|t| >= gap``."""
    cheb, poly = np.polynomial.chebyshev, np.polynomial.polynomial
    unit = np.linspace(0.0, 1.0, STAGE_GRID)
    lo, stages = gap, []
    for i, d in enumerate(degrees):
        grid = lo + (1 - lo) * (1 - np.cos(np.pi * np.arange(STAGE_GRID) / (STAGE_GRID - 1))) / 2
        if 1 - lo < 1e-12:  # already exact to double precision: the identity
            power = np.array([0.0, 1.0])
        else:
            odd = _remez(np.ones_like, lambda x, d=d: cheb.chebvander(x, d)[:, 1::2], (d + 1) // 2, grid)
            full = np.zeros(d + 1)
            full[1::2] = odd
            power = cheb.cheb2poly(full)
        on_domain = poly.polyval(grid, power)
        if i + 1 < len(degrees):
            power = power / np.abs(poly.polyval(unit, power)).max()
            lo = float(poly.polyval(grid, power).min())
        else:
            power = power * 2 / (on_domain.min() + on_domain.max())
        stages.append(power)
    final = poly.polyval(grid, stages[-1])
    return stages, float(np.abs(final - 1).max())


def relu_approx(bound: float, degree: int = 15, *, stages=None) -> Activation:
    """ReLU on ``[-bound, bound]`` by a degree-``degree`` polynomial; pre-activations outside the
    range are not approximated (declare a bound that holds them; :meth:`Program.calibrate` checks samples).

    ``stages`` (odd degrees, e.g. ``(7, 7, 7)``): a composite instead, ``relu(z) = z/2 * (1 +
    sign(z))`` with ``sign`` by :func:`_sign_stages`; its gap is chosen where the error near 0
    (``|t| < gap``) and the error beyond it balance. Depth ``1 + sum(ceil(log2(d + 1)))``: (7, 7, 7)
    takes 10 levels for about a fifth of the degree-15 polynomial's error, with coefficients
    summing to ~130 where a single polynomial of that accuracy would need ~1e6."""
    def relu(z):
        return np.maximum(z, 0.0)
    if stages is None:
        return _approximate("relu", relu, bound, degree)
    _check_range("relu", bound)
    degrees = tuple(stages)
    if not degrees or not all(isinstance(d, int) and 3 <= d <= MAX_DEGREE and d % 2 for d in degrees):
        raise ValueError(f"relu: stages must be odd degrees in [3, {MAX_DEGREE}], got {stages!r}")
    def build(gap: float) -> Activation:
        parts, _ = _sign_stages(degrees, gap)
        parts[-1] = (parts[-1] + np.eye(len(parts[-1]))[0]) * (bound / 2)  # t * bound/2 (1 + s(t))
        act = Activation("relu ~ composite minimax", (), float(bound),
                         stages=tuple(tuple(float(v) for v in c[::-1]) for c in parts))
        t = np.union1d(np.linspace(-1.0, 1.0, ERROR_GRID), np.linspace(-2 * gap, 2 * gap, ERROR_GRID))
        error = float(np.max(np.abs(act.on_t(t) - bound * relu(t))))
        return Activation(act.name, (), float(bound), error, stages=act.stages)

    # the gap trades the error near 0 against the error beyond it: minimise the measured
    # error, on a log grid and then by golden section around the best point
    gaps = np.geomspace(1e-4, 0.5, 12)
    errors = [build(g).error for g in gaps]
    k = int(np.argmin(errors))
    lo, hi = math.log(gaps[max(k - 1, 0)]), math.log(gaps[min(k + 1, len(gaps) - 1)])
    golden = (math.sqrt(5) - 1) / 2
    for _ in range(8):
        a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
        if build(math.exp(a)).error < build(math.exp(b)).error:
            hi = b
        else:
            lo = a
    act = build(math.exp((lo + hi) / 2))
    for k, c in enumerate(act.stages):
        _check_coefficients(f"relu stage {k + 1} (degree {degrees[k]})", np.asarray(c))
    return act


def gelu_approx(bound: float, degree: int = 15) -> Activation:
    """GELU (tanh form, as torch's ``approximate="tanh"``) on ``[-bound, bound]``."""
    def gelu(z):
        return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))
    return _approximate("gelu", gelu, bound, degree)


@dataclass
class Step:
    """One lowered node, an operation on named values: it reads ``inputs`` and writes ``name``
    (the node's output). ``kind``: ``einsum`` (``plan``, with the plaintext operand ``plain``),
    ``add`` (of the plaintext ``plain``: a bias), ``residual`` (the sum of two encrypted values;
    ``plan``, when their layouts differ: the relayout of the second to the first's layout),
    ``activation`` or ``bootstrap``. ``levels``: what the step consumes, on its last input (the
    only one, or the residual's relayouted operand)."""

    kind: str
    name: str
    layout: Layout
    levels: int
    plan: Plan | None = None
    plain: np.ndarray | None = None
    activation: Activation | None = None
    inputs: tuple[str, ...] = ()
    #: per backend, the plan's encoded masks, kept between runs
    caches: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)
    ops: dict = field(default_factory=dict)  # op counts of one run (measured on the simulator)
    seconds: float = 0.0  # estimated SEAL time of the step (OP_SECONDS)

    def used(self, inputs: list[int]) -> int:
        """Levels consumed at the output, given those consumed at each input."""
        return max(inputs[0], inputs[-1] + self.levels)

    def run(self, args: list[CipherTensor]) -> CipherTensor:
        """The step on its encrypted inputs."""
        from .ops import add, bootstrap

        x = args[-1] if self.plan is None else self._execute(args[-1])  # an einsum, or a relayout
        if self.kind == "residual":
            return add(args[0], x)  # one layout now: ops.add only brings the levels together
        if self.kind == "add":
            return add(x, self.plain)
        if self.kind == "bootstrap":
            return bootstrap(x)
        if self.kind == "activation":
            return self.activation.evaluate(x)
        return x

    def _execute(self, x: CipherTensor) -> CipherTensor:
        """The plan on ``x`` (its encrypted operand) and :attr:`plain` (the other, if any)."""
        ctx, encrypted = x.context, self.plan.encrypted
        out = execute(self.plan, ctx.backend, [x.ciphertexts if e else None for e in encrypted],
                      [None if e else self.plain for e in encrypted], generate_keys=ctx.auto_keys,
                      cache=self.caches.setdefault(ctx.backend, {}))
        return CipherTensor(ctx, self.plan.output_layout, out, x.like)

    def reference(self, args: list[np.ndarray]) -> np.ndarray:
        """The step on plaintext inputs, in float64 (what :meth:`run` computes)."""
        h = args[-1]
        if self.plan is not None:
            h = np.einsum(str(self.plan.spec), *(h if e else self.plain for e in self.plan.encrypted))
        if self.kind == "residual":
            return args[0] + h
        if self.kind == "add":
            return h + self.plain
        if self.kind == "activation":
            return self.activation.on_t(h)
        return h  # an einsum (computed above) or a bootstrap (the identity)

    def describe(self) -> str:
        if self.kind == "einsum":
            c = self.plan.cost()
            what = (f"einsum {self.plan.spec} ({self.plan.strategy}): {c.rotations} rotations, "
                    f"{c.ct_pt_mults} ct-pt mults, {c.keys} keys")
        elif self.kind == "add":
            what = "plaintext addition (bias)"
        elif self.kind == "residual":
            c = self.plan and self.plan.cost()
            what = "addition of two encrypted values" + (
                f" ({self.inputs[1]} relayouted: {c.rotations} rotations, {c.keys} keys)" if c else "")
        elif self.kind == "bootstrap":
            what = "bootstrap (levels back, values in [-1, 1])"
        else:
            what = self.activation.describe()
        ops = ", ".join(f"{n} {self.ops[n]}" for n in ("rotate", "mul", "mul_plain", "add", "bootstrap")
                        if self.ops.get(n))
        return (f"  {self.name:18s} <- {', '.join(self.inputs)}: {what}; {self.levels} level(s); "
                f"out {self.layout}; ops: {ops or 'none'}; ~{self.seconds * 1e3:.0f} ms")


class Program:
    """A model compiled for encrypted inference (:func:`compile`): steps on named values, from
    the encrypted input ``input_name`` to ``output_name``."""

    def __init__(self, steps: list[Step], input_name: str, input_layout: Layout, output_name: str,
                 slots: int, scale_bits: int = 40, bootstrap: int | None = None) -> None:
        self.steps = steps
        self.scale_bits = scale_bits
        #: levels after each bootstrap (desilo's preset), None when the program never bootstraps
        self.bootstrap = bootstrap
        self.input_name = input_name
        self.input_layout = input_layout
        self.output_layout = next((s.layout for s in steps if s.name == output_name), input_layout)
        self.output_name = output_name
        self.slots = slots

    @property
    def depth(self) -> int:
        """Multiplicative depth of the whole network: the levels consumed along the output's
        deepest path (bootstraps give none back here)."""
        used = {self.input_name: 0}
        for s in self.steps:
            used[s.name] = s.used([used[n] for n in s.inputs])
        return used[self.output_name]

    @property
    def levels(self) -> int:
        """Levels a fresh input must have: the depth, or the levels after a bootstrap."""
        return self.bootstrap if self.bootstrap is not None else self.depth

    @property
    def rotation_keys(self) -> tuple[int, ...]:
        keys = {k for s in self.steps if s.plan is not None for k in s.plan.rotation_keys}
        return tuple(sorted(keys, key=lambda k: (abs(k), k)))

    @property
    def error_bounds(self) -> list[tuple[str, float]]:
        return [(s.name, s.activation.error) for s in self.steps if s.kind == "activation"]

    @property
    def seconds(self) -> float:
        """Estimated time of one run on SEAL at this program's ring (rough: :data:`OP_SECONDS`)."""
        return sum(s.seconds for s in self.steps)

    def __str__(self) -> str:
        boots = sum(s.kind == "bootstrap" for s in self.steps)
        where = (f"depth {self.depth} in {self.levels}-level stretches, {boots} bootstrap(s) on desilo"
                 if self.bootstrap is not None else f"{self.levels} levels")
        lines = [f"fhe program: input {self.input_name} {self.input_layout}, {where}, {self.slots} slots, "
                 f"{len(self.rotation_keys)} rotation keys, ~{self.seconds:.2f} s per run "
                 f"on {'desilo' if self.bootstrap is not None else 'SEAL'} (estimated)"]
        lines += [s.describe() for s in self.steps]
        return "\n".join(lines)

    def context(self, backend: str | None = None, **options):
        """A :class:`fhe.Context` with this program's levels, scale and ring, and its rotation
        keys generated (nothing else). ``backend``: ``"seal"`` by default; a program that
        bootstraps runs on ``"desilo"`` (its bootstrap preset is rated ~125 bits: pass
        ``allow_insecure=True``) or ``"sim"``."""
        from .context import Context

        if self.bootstrap is not None:
            backend = backend or "desilo"
            if backend not in ("desilo", "sim"):
                raise ValueError(f"this program bootstraps: run it on 'desilo' (or 'sim'), not {backend!r}")
            options["bootstrap"] = True
        ctx = Context(backend=backend or "seal", ring_degree=2 * self.slots, levels=self.levels,
                      scale_bits=self.scale_bits, rotation_keys="manual", **options)
        ctx.generate_rotation_keys(self.rotation_keys)
        return ctx

    def run(self, x: CipherTensor) -> CipherTensor:
        """Evaluate the program on an encrypted input in :attr:`input_layout` (any context with
        the program's slots, levels and rotation keys: a public one does)."""
        if not isinstance(x, CipherTensor):
            raise UnsupportedInput(f"run takes a CipherTensor (ctx.encrypt(x, program.input_layout)), got "
                                   f"{type(x).__name__}")
        if not x.context.sized:  # fhe.Context() with nothing run yet: sized for this program
            x.context._size_for_program(self)
        if x.layout != self.input_layout:
            raise ShapeMismatch(f"the input is in layout {x.layout}; the program was compiled for "
                                f"{self.input_layout} (encrypt with ctx.encrypt(x, program.input_layout))")
        if x.level < self.levels:
            raise OutOfLevels(f"the program needs {self.levels} levels, the input has {x.level}: use "
                              f"program.context() (levels={self.levels})", needed=self.levels, have=x.level)
        return self.run_steps(x)

    def run_steps(self, x: CipherTensor) -> CipherTensor:
        """The steps on ``x``, without :meth:`run`'s checks of layout and levels."""
        return self._walk(x, Step.run)

    def _walk(self, x, apply):
        """The steps from the input value ``x``, each step's output ``apply(step, its input
        values)``; every value is dropped after its last use."""
        last = {n: i for i, s in enumerate(self.steps) for n in s.inputs}
        live = {self.input_name: x}
        for i, step in enumerate(self.steps):
            live[step.name] = apply(step, [live[n] for n in step.inputs])
            for n in set(step.inputs):
                if last[n] == i and n != self.output_name:
                    del live[n]
        return live[self.output_name]

    def _plaintext_run(self, x: np.ndarray, before_activation=None) -> np.ndarray:
        """The steps on plaintext ``x`` in float64; ``before_activation(step, h)`` sees each
        activation's input."""
        def apply(step, args):
            if before_activation is not None and step.kind == "activation":
                before_activation(step, args[0])
            return step.reference(args)
        return self._walk(np.asarray(x, dtype=np.float64), apply)

    def calibrate(self, x: np.ndarray) -> list[tuple[str, float]]:
        """``(activation, max |t|)`` on plaintext sample inputs ``x``: each must stay within 1,
        the range its polynomial approximates (ValueError naming the first that does not)."""
        out = []

        def check(step, h):
            reach = float(np.max(np.abs(h))) if h.size else 0.0
            out.append((step.name, reach))
            if reach > 1.0 and step.activation.error:
                raise ValueError(f"activation {step.name}: the samples reach {reach * step.activation.bound:.3g}, "
                                 f"beyond the declared range +-{step.activation.bound:g}; compile with a larger bound")
        self._plaintext_run(x, check)
        return out

    def reference(self, x: np.ndarray) -> np.ndarray:
        """The program on plaintext ``x`` in float64 (the approximations included): what
        :meth:`run` decrypts to, up to CKKS noise."""
        return self._plaintext_run(x)


def _params(model) -> dict[str, np.ndarray]:
    return {k: v.detach().double().cpu().numpy() for k, v in model.state_dict().items()}


def compile(model, input_shape, activation: Activation | None = None, *, slots: int | None = None,
            scale_bits: int = 40, params: dict | None = None, bootstrap: int | None = None) -> Program:
    """Compile ``model`` (a torch module :func:`circuits.trace` takes, or a
    :class:`circuits.Graph` with ``params``) for encrypted inference on inputs of
    ``input_shape`` (batch first): a :class:`Program`. ``activation``: what each ReLU becomes
    (:func:`relu_approx`, :func:`square`, :func:`polynomial`); required when the model has
    one. ``slots``: the ciphertexts' slots (ring degree / 2); by default the fewest whose
    128-bit secure SEAL ring holds the program's levels at ``scale_bits`` (planned again at
    the larger ring when the depth needs one; OutOfLevels saying how many levels are missing
    when no secure ring holds them). ``bootstrap=L``: for desilo's bootstrap preset instead,
    ``L`` levels after each bootstrap (module docstring)."""
    import circuits

    if isinstance(model, circuits.Graph):
        graph = model
        if params is None:
            raise ValueError("compiling a Graph needs params= (its parameters by name)")
    else:
        graph = circuits.trace(model, np.zeros(tuple(input_shape)), 16)
        params = _params(model) if params is None else params
    values = {**{k: np.asarray(v, dtype=np.float64) for k, v in params.items()}, **graph.constants}
    if bootstrap is not None:
        return _bootstrapped(graph, values, tuple(input_shape), activation, slots, scale_bits, bootstrap)
    if slots is not None:
        return _lower(graph, values, tuple(input_shape), activation, slots, scale_bits)
    from .backends.params import seal_params
    from .errors import InsecureParameters

    slots = 4096
    for _ in range(4):  # the ring grows with the depth, the depth may change with the ring
        program = _lower(graph, values, tuple(input_shape), activation, slots, scale_bits)
        try:
            ring = seal_params(None, program.levels, scale_bits, False).ring_degree
        except InsecureParameters:
            most = _most_levels(scale_bits)
            raise OutOfLevels(f"the program needs {program.levels} levels; SEAL's largest 128-bit secure ring holds "
                              f"{most} at a {scale_bits}-bit scale: {program.levels - most} missing. Use a lower-degree "
                              "activation or fewer layers, or compile with bootstrap=L to bootstrap on desilo's "
                              "bootstrap preset", needed=program.levels, have=most) from None
        if ring // 2 <= slots:
            return program
        slots = ring // 2
    return program


def _bootstrapped(graph, values, input_shape, activation, slots, scale_bits: int, levels: int) -> Program:
    """The program for desilo's bootstrap preset, ``levels`` levels after each bootstrap: a
    bootstrap before each activation whose stretch (it and the layers up to the next
    activation) the levels left do not cover. Chains only (no residual adds)."""
    import circuits
    from .backends.desilo import BOOTSTRAP_MAX_LEVEL, BOOTSTRAP_RING_DEGREE
    from .backends.params import DESILO_SCALE_BITS

    if not (isinstance(levels, int) and 1 <= levels <= BOOTSTRAP_MAX_LEVEL):
        raise ValueError(f"bootstrap= is the levels after a bootstrap: 1..{BOOTSTRAP_MAX_LEVEL} on desilo's "
                         f"bootstrap preset, got {levels!r}")
    if scale_bits != DESILO_SCALE_BITS:
        raise ValueError(f"desilofhe fixes the scale at 2^{DESILO_SCALE_BITS}; got scale_bits={scale_bits}")
    slots = slots or BOOTSTRAP_RING_DEGREE // 2
    plain = _lower(graph, values, input_shape, activation, slots, scale_bits, count=False)
    residual = next((s.name for s in plain.steps if s.kind == "residual"), None)
    if residual is not None:
        raise circuits.UnsupportedOp(f"node {residual} adds two encrypted branches: bootstrap= places bootstraps "
                                     "on chains of layers only (a bootstrap on one branch leaves the other at its "
                                     "level); compile without bootstrap=")
    steps, stretch = [], []  # stretch: the steps since the last activation (or the input)
    for step in plain.steps + [None]:
        if step is None or step.kind == "activation":
            need = sum(s.levels for s in stretch)
            where = stretch[0].name if stretch else "the input"
            if need > levels:
                raise OutOfLevels(f"{where} and the layers up to the next activation need {need} levels, more than "
                                  f"the {levels} a bootstrap gives: compile with bootstrap={need} (at most "
                                  f"{BOOTSTRAP_MAX_LEVEL})", needed=need, have=levels)
            left = levels - sum(s.levels for s in steps[_last_bootstrap(steps):])
            if stretch and stretch[0].kind == "activation" and need > left:
                act = stretch[0]
                steps.append(Step("bootstrap", f"{act.name}.boot", act.layout, 0, inputs=act.inputs))
                act.inputs = (steps[-1].name,)
            steps += stretch
            stretch = []
        if step is not None:
            stretch.append(step)
    program = Program(steps, plain.input_name, plain.input_layout, plain.output_name, slots, scale_bits,
                      bootstrap=levels)
    _count_ops(program)
    return program


def _last_bootstrap(steps: list[Step]) -> int:
    """Index of the first step after the last bootstrap (0 when there is none)."""
    return next((len(steps) - i for i, s in enumerate(reversed(steps)) if s.kind == "bootstrap"), 0)


def _most_levels(scale_bits: int) -> int:
    """The most levels a 128-bit secure SEAL ring holds at ``scale_bits``."""
    from .backends.params import seal_params
    from .errors import InsecureParameters

    levels = 0
    while True:
        try:
            seal_params(None, levels + 1, scale_bits, False)
        except InsecureParameters:
            return levels
        levels += 1


#: what :func:`_lower` lowers (for its refusals)
LOWERED = ("Linear, ReLU, Flatten of a 2-D activation, residual adds of two activations of one shape, "
           "average pooling and means are")


def _lower(graph, values: dict, input_shape: tuple, activation, slots: int, scale_bits: int,
           count: bool = True) -> Program:
    """Steps 1-5 of the module docstring at ``slots`` slots: the nodes that read encrypted
    values, in graph order; then the steps the output needs, the bounds folded."""
    x_name = next(t.name for t in graph.inputs if t.role == "data")
    if tuple(graph[x_name].shape) != input_shape:
        raise ShapeMismatch(f"the graph takes inputs {graph[x_name].shape}, not {input_shape}")
    layouts = {x_name: Layout.row_major(input_shape, slots)}  # encrypted value -> its layout
    used = {x_name: 0}  # encrypted value -> levels consumed up to it
    alias: dict[str, str] = {}  # output of an identity node -> the value it is
    steps = []
    for node in graph.nodes:
        names = [alias.get(i, i) for i in node.inputs]
        if not any(n in layouts for n in names):
            continue
        step = _step(node, graph, names, values, layouts, used, activation, slots)
        if step is None:
            alias[node.output] = names[0]
            continue
        steps.append(step)
        layouts[step.name] = step.layout
        used[step.name] = step.used([used[n] for n in step.inputs])
    out = graph.outputs.get("out", steps[-1].name if steps else x_name)
    out = alias.get(out, out)
    steps = _needed(steps, out)
    if activation is not None and activation.bound != 1.0:
        _fold_bounds(steps, activation.bound)
    program = Program(steps, x_name, layouts[x_name], out, slots, scale_bits)
    if count:
        _count_ops(program)
    return program


def _step(node, graph, names: list[str], values: dict, layouts: dict, used: dict, activation,
          slots: int) -> Step | None:
    """The step of ``node``, whose inputs are the values ``names`` (those in ``layouts``
    encrypted, the others plaintext ``values``); None for an identity on real values."""
    import circuits

    encrypted = [n in layouts for n in names]
    x = names[encrypted.index(True)]
    clear = [n for n, e in zip(names, encrypted) if not e]
    one_plain = len(clear) == 1 == len(names) - 1 and clear[0] in values
    shape = tuple(graph[node.output].shape)
    if node.op == "einsum" and one_plain:
        p = plan_einsum(node.attrs["spec"], *(graph[i].shape for i in node.inputs), slots=slots,
                        encrypted=encrypted, layouts=[layouts.get(n) for n in names])
        return Step("einsum", node.output, p.output_layout, p.levels, plan=p, plain=values[clear[0]], inputs=(x,))
    if node.op == "add" and one_plain and shape == layouts[x].shape:
        return Step("add", node.output, layouts[x], 0, plain=values[clear[0]], inputs=(x,))
    if node.op == "add" and all(encrypted) and layouts[names[0]].shape == layouts[names[1]].shape:
        return _residual(node.output, names, layouts, used, slots)
    if node.op == "rescale" or (node.op == "reshape" and shape == layouts[x].shape):
        return None
    if node.op == "relu":
        if activation is None:
            raise ValueError(f"node {node.output} is a ReLU: give activation= (e.g. fhe.relu_approx(bound=...))")
        return Step("activation", node.output, layouts[x], activation.levels, activation=activation, inputs=(x,))
    raise circuits.UnsupportedOp(f"node {node} cannot be compiled for encrypted inference ({LOWERED})")


def _residual(name: str, names: list[str], layouts: dict, used: dict, slots: int) -> Step:
    """The sum of two encrypted values: as :func:`fhe.ops.add` does, the one with more levels
    left is brought to the other's layout first (an einsum relayout, planned here)."""
    keep, move = sorted(names, key=lambda n: -used[n])  # stable: on a tie the second moves
    if layouts[keep] == layouts[move]:
        return Step("residual", name, layouts[keep], 0, inputs=(keep, move))
    labels = string.ascii_lowercase[:len(layouts[move].shape)]
    p = plan_einsum(f"{labels}->{labels}", layouts[move].shape, slots=slots, layouts=[layouts[move]],
                    out_layout=layouts[keep])
    return Step("residual", name, layouts[keep], p.levels, plan=p, inputs=(keep, move))


def _needed(steps: list[Step], output: str) -> list[Step]:
    """The steps ``output`` depends on."""
    need, kept = {output}, []
    for s in reversed(steps):
        if s.name in need:
            need.update(s.inputs)
            kept.append(s)
    return kept[::-1]


def _count_ops(program: Program) -> None:
    """Run the program once on the simulator (zeros in) to count each step's ops, and estimate
    its SEAL time from them (each op at the level it runs at; a bootstrap at
    :data:`BOOTSTRAP_SECONDS`)."""
    from .context import Context

    boot = {"bootstrap": True} if program.bootstrap is not None else {}
    ctx = Context(backend="sim", ring_degree=2 * program.slots, levels=program.levels, allow_insecure=True, **boot)
    backend, ring = ctx.backend, 2 * program.slots / 16384

    def measured(step, args):
        before, level = dict(backend.counters), min(a.level for a in args)
        out = step.run(args)
        step.ops = {k: v - before.get(k, 0) for k, v in backend.counters.items() if v - before.get(k, 0)}
        primes = (level + 2 - step.levels / 2) / 10  # the chain shrinks while the step runs
        step.seconds = BOOTSTRAP_SECONDS if step.kind == "bootstrap" else ring * sum(
            OP_SECONDS.get(k, 0.0) * n * (primes ** 2 if k in _KEY_SWITCHING else primes) for k, n in step.ops.items())
        return out
    program._walk(ctx.encrypt(np.zeros(program.input_layout.shape), program.input_layout), measured)


def _fold_bounds(steps: list[Step], bound: float) -> None:
    """Scale the linear layers before each activation by ``1 / bound`` (the activation then sees
    ``t = z / bound`` at no level's cost)."""
    made = {s.name: s for s in steps}
    readers: dict[str, list[str]] = {}
    for s in steps:
        for n in s.inputs:
            readers.setdefault(n, []).append(s.name)
    for s in steps:
        if s.kind == "activation":
            _fold(s.inputs[0], bound, s.name, made, readers)


def _fold(name: str, bound: float, where: str, made: dict, readers: dict) -> None:
    """Divide value ``name`` by ``bound`` in the steps that make it: back through biases (and
    both operands of a residual add) to einsums, whose plaintext operands are scaled. Each
    value on the way must be read by that path alone (any other reader would see it scaled)."""
    step = made.get(name)
    if step is None or step.kind not in ("einsum", "add", "residual"):
        what = "the encrypted input" if step is None else f"an {step.kind} step"
        raise ValueError(f"activation {where}: an input range other than 1 needs linear layers before it (its "
                         f"1/bound is folded into them), and {name} is {what}; use an activation on [-1, 1] "
                         "(bound=1)")
    if len(readers[name]) > 1:
        raise ValueError(f"activation {where}: {name} is read by {', '.join(readers[name])}, so the 1/bound cannot "
                         "be folded into the layer making it (its other readers would see it scaled); use an "
                         "activation on [-1, 1] (bound=1)")
    if step.kind == "residual":
        for n in step.inputs:
            _fold(n, bound, where, made, readers)
        return
    step.plain = step.plain / bound
    if step.kind == "add":
        _fold(step.inputs[0], bound, where, made, readers)
