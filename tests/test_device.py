"""zk.device: the prover's loops on the gpu kernels give the same proofs, bit for bit, as the CPU path.

Without a GPU the kernel path runs on the host build of the same CUDA sources (device "host"),
which exercises every line of the dispatch; the same checks run on "cuda" where a GPU is present.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpu
from gpu import runtime
from zk import commit, device, einsum, field, group, mle, openings, sumcheck, training
from zk.sumcheck import SumcheckProver


@pytest.fixture(scope="module")
def host():
    try:
        runtime.host_backend()
    except runtime.HostBuildError as exc:
        pytest.skip(f"host build of gpu/kernels unavailable: {exc}")
    return device.resolve("host")


@pytest.fixture(scope="module")
def cuda():
    if not gpu.available():
        pytest.skip("no CUDA device visible to cupy (gpu.available() is False)")
    return device.resolve("cuda")


def seeded_randomness(monkeypatch, seed: int) -> None:
    """Replace the prover's OS randomness by a seeded stream (tests only), so two runs that draw
    the same number of blinds in the same order produce the same proof."""
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(field, "random", lambda shape=(): field.random_seeded(shape, rng))


def prove_twice(monkeypatch, prove, devices):
    out = []
    for dev in devices:
        seeded_randomness(monkeypatch, 11)
        out.append(prove(dev))
    return out


# ---------------------------------------------------------------------------------------------
# whole proofs
# ---------------------------------------------------------------------------------------------
def einsum_proofs(monkeypatch, dev):
    rng = np.random.default_rng(3)
    cases = [("ij,jk->ik", (8, 20), (20, 6)), ("bij,bjk->bik", (3, 4, 5), (3, 5, 2))]
    out = []
    for spec, sa, sb in cases:
        a, b = rng.integers(-500, 500, sa), rng.integers(-500, 500, sb)
        cpu, other = prove_twice(monkeypatch, lambda d: einsum.prove_einsum(spec, a, b, device=d), ["cpu", dev])
        assert einsum.verify_einsum(other)
        out.append((cpu.to_bytes(), other.to_bytes()))
    return out


def training_proofs(monkeypatch, dev):
    widths = (12, 8, 8, 4)
    model = training.synthetic_mlp(widths, 0, bias=True)  # biases: the public ONES tensor too
    data = training.synthetic_batches(widths, 3, 2, 1)
    cpu, other = prove_twice(monkeypatch, lambda d: training.prove_training(model, data, 0.05, device=d)[0],
                             ["cpu", dev])
    assert training.verify_training(other)
    x = data[0][0]
    cpu_inf, other_inf = prove_twice(monkeypatch, lambda d: training.prove_inference(model, x, device=d),
                                     ["cpu", dev])
    assert training.verify_inference(other_inf)
    return [(cpu.to_bytes(), other.to_bytes()), (cpu_inf.to_bytes(), other_inf.to_bytes())]


def test_einsum_proofs_are_identical_on_the_kernel_path(monkeypatch, host):
    for cpu, other in einsum_proofs(monkeypatch, "host"):
        assert cpu == other


def test_training_and_inference_proofs_are_identical_on_the_kernel_path(monkeypatch, host):
    for cpu, other in training_proofs(monkeypatch, "host"):
        assert cpu == other


@pytest.mark.gpu
def test_gpu_proofs_are_identical_to_cpu_proofs(monkeypatch, cuda):
    for cpu, other in einsum_proofs(monkeypatch, "cuda") + training_proofs(monkeypatch, "cuda"):
        assert cpu == other


def test_the_seeded_stream_really_drives_the_blinds(monkeypatch):
    """Guards the identity tests above: different seeds give different proofs of the same relation."""
    a, b = np.arange(6).reshape(2, 3), np.arange(6).reshape(3, 2)
    seeded_randomness(monkeypatch, 1)
    one = einsum.prove_einsum("ij,jk->ik", a, b, device="cpu").to_bytes()
    seeded_randomness(monkeypatch, 2)
    assert einsum.prove_einsum("ij,jk->ik", a, b, device="cpu").to_bytes() != one


# ---------------------------------------------------------------------------------------------
# the four loops
# ---------------------------------------------------------------------------------------------
def test_row_commitments_match_for_bits_small_ints_and_field_tables(host):
    rng = np.random.default_rng(5)
    key = commit.DEFAULT_KEY
    h = commit._fixed_base(key.label + b"/H")
    blinds = field.random_seeded(4, rng)
    for ints in (rng.integers(0, 2, (4, 16)), rng.integers(-1000, 1000, (4, 16))):
        table = field.from_int(ints).reshape(4, 16, 4)
        expected = device.CpuDevice.commit_rows(key, table, ints, blinds, h)
        assert host.commit_rows(key, table, ints, blinds, h) == expected
    table = field.random_seeded((4, 16), rng)
    assert host.commit_rows(key, table, None, blinds, h) == device.CpuDevice.commit_rows(key, table, None, blinds, h)


def test_generator_msms_match_with_repeated_indices_zero_sums_and_growing_keys(host):
    rng = np.random.default_rng(9)
    key = commit.CommitKey(b"test/device")
    s = field.random_seeded(6, rng)
    jobs = [(np.array([3, 3, 0, 5, 1, 3]), s),  # repeated generators share a bucket
            (np.array([2, 2]), np.stack([s[0], field.neg(s[0])])),  # sums to the identity
            (np.array([], dtype=np.int64), field.zeros(0))]
    expected = device.CpuDevice.generator_msms(key, jobs)
    assert expected[1] == group.identity() == expected[2]
    assert host.generator_msms(key, jobs) == expected
    # a later job reaching further grows the cached generators (a prefix family)
    far = [(np.array([0, 40, 7]), field.random_seeded(3, rng))]
    assert host.generator_msms(key, far) == device.CpuDevice.generator_msms(key, far)
    assert host.generator_msms(key, []) == []


def test_kernel_sumcheck_matches_the_cpu_prover_round_by_round(host):
    rng = np.random.default_rng(6)
    tables = [field.random_seeded(32, rng) for _ in range(3)]
    terms = [(5, (0, 1)), (-1, (0, 0, 2)), (field.random_seeded((), rng), (2,))]
    cpu, dev = SumcheckProver(tables, terms), host.sumcheck(tables, terms)
    assert (dev.num_vars, dev.degree) == (cpu.num_vars, cpu.degree) == (5, 3)
    for _ in range(5):
        assert np.array_equal(dev.round_polynomial(), cpu.round_polynomial())
        c = field.random_seeded((), rng)
        cpu.bind(c)
        dev.bind(c)
    assert np.array_equal(dev.final_evaluations(), cpu.final_evaluations())
    with pytest.raises(ValueError, match="already bound"):
        dev.round_polynomial()


def test_kernel_sumcheck_rejects_what_the_cpu_prover_rejects(host):
    t = field.ones(8)
    with pytest.raises(ValueError, match="refers to table 3"):
        host.sumcheck([t], [(1, (3,))])
    with pytest.raises(ValueError, match="no terms"):
        host.sumcheck([t], [])
    with pytest.raises(ValueError, match="one shape"):
        host.sumcheck([t, field.ones(4)], [(1, (0, 1))])
    with pytest.raises(ValueError, match="without tables"):
        host.sumcheck([t], [(1, ())])
    with pytest.raises(ValueError, match="still unbound"):
        host.sumcheck([t], [(1, (0,))]).final_evaluations()


def test_eq_tables_and_vecmat_match(host):
    rng = np.random.default_rng(7)
    point = field.random_seeded(7, rng)
    assert np.array_equal(host.download(host.eq_table(point)), mle.eq_table(point))
    for rows, cols in ((1, 8), (3, 5), (130, 16)):
        v, m = field.random_seeded(rows, rng), field.random_seeded((rows, cols), rng)
        assert np.array_equal(host.vecmat(v, m), field.vecmat(v, m))
        ints = rng.integers(-2**40, 2**40, (rows, cols))
        assert np.array_equal(host.vecmat(v, ints), field.vecmat(v, field.from_int(ints)))


def test_a_kernel_sumcheck_sends_the_cpu_provers_messages(host):
    """The kernel prover, driven through zk.sumcheck.prove's protocol, sends the CPU prover's
    messages and ends at its point with its final evaluations."""
    from zk.transcript import Transcript

    rng = np.random.default_rng(8)
    tables = [field.random_seeded(16, rng) for _ in range(2)]
    prover = host.sumcheck(tables, [(1, (0, 1))])
    t = Transcript(b"test")
    messages = []
    for _ in range(prover.num_vars):
        messages.append(prover.round_polynomial())
        t.absorb_scalars("sumcheck/round", messages[-1])
        prover.bind(t.challenge_scalar("sumcheck/challenge"))
    cpu = sumcheck.prove(tables, [(1, (0, 1))], Transcript(b"test"))
    assert np.array_equal(np.stack(messages), cpu.messages)
    assert np.array_equal(prover.final_evaluations(), cpu.finals)


# ---------------------------------------------------------------------------------------------
# choosing a device
# ---------------------------------------------------------------------------------------------
def test_resolve_names_and_errors():
    assert device.resolve("cpu").name == "cpu"
    assert device.resolve("auto").name == ("cuda" if gpu.available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        device.resolve("tpu")
    if not gpu.available():
        with pytest.raises(RuntimeError, match="sees no CUDA device"):
            device.resolve("cuda")
        with pytest.raises(RuntimeError, match="sees no CUDA device"):
            einsum.prove_einsum("ij,jk->ik", np.ones((2, 2), int), np.ones((2, 2), int), device="cuda")


def test_devices_are_devices_and_resolve_to_themselves():
    assert device.resolve("cpu") is device.CPU and isinstance(device.CPU, device.Device)
    assert device.resolve(device.CPU) is device.CPU
    with pytest.raises(TypeError):  # the interface is abstract
        device.Device()


def test_tables_never_reach_host_field_arithmetic_on_a_kernel_device(monkeypatch, host):
    """On a kernel device the committed tables stay device arrays: zk.field (the host's arithmetic)
    only ever sees vectors of one row (the inner-product argument's) per evaluation claim (the
    openings' reduction, zk.openings), never a table."""
    largest: dict = {}
    claims = []
    prove_openings = openings.Openings.prove

    def counted(self, t):
        claims.append(len(self))
        return prove_openings(self, t)
    monkeypatch.setattr(openings.Openings, "prove", counted)
    for name in ("add", "sub", "mul", "sum", "inner", "vecmat", "square", "neg"):
        def spy(*args, _f=getattr(field, name), _name=name, **kwargs):
            size = max((a.size // 4 for a in args if isinstance(a, np.ndarray)), default=0)
            largest[_name] = max(largest.get(_name, 0), size)
            return _f(*args, **kwargs)
        monkeypatch.setattr(field, name, spy)
    widths = (40, 24, 24, 8)  # stacks of up to 64 instances of 512 entries: tables of 32768
    model, data = training.synthetic_mlp(widths, 0), training.synthetic_batches(widths, 8, 1, 0)
    training.prove_training(model, data, 0.05, device="cpu")
    assert max(largest.values()) > 1 << 12  # the CPU path does work on whole tables here
    largest.clear()
    claims.clear()
    training.prove_training(model, data, 0.05, device="host")
    assert max(largest.values()) <= claims[0] << 10, largest  # one row of 2^10 columns per claim at most


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(widths=st.lists(st.integers(1, 9), min_size=2, max_size=4), batch=st.integers(1, 5),
       steps=st.integers(1, 2), bias=st.booleans(), seed=st.integers(0, 1000))
def test_random_training_circuits_prove_identically_on_the_kernel_path(monkeypatch, host, widths, batch,
                                                                       steps, bias, seed):
    model = training.synthetic_mlp(widths, seed, bias=bias)
    data = training.synthetic_batches(widths, batch, steps, seed)
    cpu, other = prove_twice(monkeypatch, lambda d: training.prove_training(model, data, 0.1, device=d)[0],
                             ["cpu", "host"])
    assert cpu.to_bytes() == other.to_bytes()


def test_lookup_proof_on_the_kernel_path_is_byte_identical(monkeypatch, host):
    """A lookup of several columns (a stack with a zero-instance padding, a scaled column, a
    single entry, two row widths: two batched openings) proves identically on the CPU and the
    kernels' host build, and the kernel proof verifies (from its bytes, commitments only)."""
    from zk import lookup, stack
    from zk.transcript import Transcript

    rng = np.random.default_rng(5)
    values = rng.integers(0, 64, (6, 10))
    instances = rng.integers(0, 16, (3, 4, 8))  # [0, 16): also at scale 4

    def prove(dev):
        d = device.resolve(dev) if isinstance(dev, str) else dev
        c, o = commit.commit(values, device=d)
        parts = [commit.commit(v, device=d) for v in instances]
        one = commit.commit(np.array([63]), device=d)
        s = stack.stack([p for p, _ in parts], [q for _, q in parts], device=d)
        columns = [lookup.Column(stack.stack([c], [o], device=d)), lookup.Column(s), lookup.Column(s, 4),
                   lookup.Column(stack.stack([one[0]], [one[1]], device=d))]
        coms = ([c], [p for p, _ in parts], [p for p, _ in parts], [one[0]])
        t, evals = Transcript("t"), openings.Openings(device=d)
        proof = lookup.prove(columns, 6, t, evals, device=d)
        return coms, (proof, evals.prove(t))

    (coms, cpu), (_, other) = prove_twice(monkeypatch, prove, ["cpu", host])
    assert [cpu[0].to_bytes(), *cpu[1].sections()] == [other[0].to_bytes(), *other[1].sections()]
    columns = [lookup.Column(stack.stack(cs), scale) for cs, scale in zip(coms, (1, 1, 4, 1))]
    assert len({c.stack.commitment.col_vars for c in columns}) > 1
    t, claims = Transcript("t"), openings.Claims()
    lookup.verify(columns, 6, lookup.LookupProof.from_bytes(other[0].to_bytes(), columns, 6), t, claims)
    claims.verify(other[1], t)
