"""Crafted statements: the parser refuses what the bytes cannot hold before allocating."""
import struct
import subprocess
import sys
import textwrap

import pytest

import zk
from zk.proof_format import VERSION

HUGE = textwrap.dedent("""
    import resource, struct, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import zk
    from zk.proof_format import VERSION
    steps, layers, lr, scale = 4096, 64, float(sys.argv[1]), int(sys.argv[2])
    arch = zk.Architecture.mlp((512,) * (layers + 1), (), scale, scale).data
    head = struct.pack("<I", len(arch)) + arch
    head += struct.pack("<IIBBddddBB", 512, steps, 40, 40, lr, 0, 0, 0, 0, 0) + bytes(32)
    head += struct.pack("<II", 0, 512) * steps
    commitment = struct.pack("<I", 51) + bytes([1, 18, 12]) + bytes(48)
    stmt = head + commitment * (2 * steps + 2 * layers)
    data = b"ZKTRAIN\\0" + bytes([VERSION]) + struct.pack("<I", len(stmt)) + stmt
    t0 = time.perf_counter()
    try:
        zk.TrainingProof.from_bytes(data)
    except zk.ProofFormatError as exc:
        print(f"{time.perf_counter() - t0:.3f} {len(data)} {exc}")
""")


@pytest.mark.parametrize("lr, scale, reason", [(1e-300, 40, "too small for scale"),
                                               (0.01, 16, "the statement implies")])
def test_a_crafted_huge_statement_fails_fast_under_a_memory_cap(lr, scale, reason):
    out = subprocess.run([sys.executable, "-c", HUGE, str(lr), str(scale)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seconds, size, message = out.stdout.split(" ", 2)  # seconds: reported, not asserted
    assert int(size) > 450_000 and reason in message


def test_old_versions_are_refused_by_name():
    with pytest.raises(zk.ProofFormatError, match="unsupported proof version 2"):
        zk.TrainingProof.from_bytes(b"ZKTRAIN\0\x02" + bytes(100))
    with pytest.raises(zk.ProofFormatError, match=f"unsupported proof version {VERSION - 1}"):
        zk.TrainingProof.from_bytes(b"ZKTRAIN\0" + bytes([VERSION - 1]) + bytes(100))  # bit planes, booleanity
    with pytest.raises(zk.ProofFormatError, match="unsupported version 1"):
        zk.EinsumProof.from_bytes(b"ZKEINSUM\x01" + bytes(100))


def test_truncated_statement_sections_are_refused():
    arch = zk.Architecture.mlp((4, 4, 4)).data
    head = struct.pack("<I", len(arch)) + arch + struct.pack("<IIBBddddBB", 2, 2, 18, 16, 0.1, 0, 0, 0, 0, 0)
    head += bytes(32) + struct.pack("<II", 0, 2) * 2
    data = b"ZKTRAIN\0" + bytes([VERSION]) + struct.pack("<I", len(head)) + head
    with pytest.raises(zk.ProofFormatError, match="commitments"):
        zk.TrainingProof.from_bytes(data)
