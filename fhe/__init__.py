"""fhe: encrypted einsum on RNS-CKKS (EinHops-style), on the ``sim``, ``seal`` and ``desilo``
backends.

    import fhe
    ctx = fhe.Context()                      # SEAL, 128-bit secure, sized by its first einsum (sim: no encryption)
    x = ctx.encrypt(a)                       # CipherTensor
    y = fhe.einsum("ij,jk->ik", x, b)        # b: plaintext array/tensor, or another CipherTensor
    ctx.decrypt(y)
    z = fhe.polyval(x @ b + 1.0, [0.5, 0.0, 1.0])   # operators: + - * @ sum ** polyval (fhe/ops.py)
    print(fhe.plan("ij,jk->ik", (64, 64), (64, 64), slots=8192))   # the packing plan, no keys
    program = fhe.compile(model, (16, 64), fhe.relu_approx(bound=4))  # a whole model (fhe/compiler.py)

See docs/fhe.md.
"""
from .context import Context
from .errors import (
    BootstrapUnavailable,
    ContextMismatch,
    FHEError,
    InsecureParameters,
    InvalidSpec,
    MissingRotationKey,
    NoSecretKey,
    OutOfLevels,
    ScaleOverflowWarning,
    SerializationError,
    ShapeMismatch,
    UnsupportedBackend,
    UnsupportedInput,
    ValueTooLarge,
)
from .compiler import Activation, Program, compile, gelu_approx, polynomial, relu_approx, square
from .execute import einsum, execute
from .layout import Layout
from .ops import broadcast_shapes, matmul, polyval
from .plan import Cost, Plan, plan
from .serial import (PublicContext, context_from_bytes, context_to_bytes, public_context, rotation_keys_for,
                     tensor_from_bytes, tensor_to_bytes)
from .tensor import CipherTensor

__all__ = [
    "CipherTensor", "Context", "Cost", "Layout", "Plan", "einsum", "execute", "plan",
    "broadcast_shapes", "matmul", "polyval",
    "Activation", "Program", "compile", "gelu_approx", "polynomial", "relu_approx", "square",
    "PublicContext", "context_from_bytes", "context_to_bytes", "public_context", "rotation_keys_for",
    "tensor_from_bytes", "tensor_to_bytes",
    "FHEError", "ShapeMismatch", "InvalidSpec", "UnsupportedInput", "OutOfLevels",
    "MissingRotationKey", "ContextMismatch", "InsecureParameters", "UnsupportedBackend",
    "NoSecretKey", "SerializationError", "ValueTooLarge", "ScaleOverflowWarning", "BootstrapUnavailable",
]
