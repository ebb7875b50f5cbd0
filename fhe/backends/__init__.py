"""Backend registry: ``get_backend(name, **params)``.

``sim`` (numpy simulator, no encryption), ``seal`` (Microsoft SEAL through TenSEAL) and
``desilo`` (desilofhe). The real backends are imported only when asked for, so a missing
library only matters to someone who uses it.
"""
from __future__ import annotations

import importlib

from ..errors import UnsupportedBackend
from .base import Backend

__all__ = ["Backend", "BACKENDS", "backend_class", "get_backend"]

#: name -> (module, class, the pip package that provides the library)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "sim": ("fhe.backends.sim", "SimBackend", None),
    "seal": ("fhe.backends.seal", "SealBackend", "tenseal"),
    "desilo": ("fhe.backends.desilo", "DesiloBackend", "desilofhe"),
}


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name``, its library imported (:class:`UnsupportedBackend` for
    an unknown name or a library that does not import)."""
    try:
        module_name, class_name, package = BACKENDS[name]
    except (KeyError, TypeError):
        raise UnsupportedBackend(
            f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnsupportedBackend(
            f"backend {name!r} needs the '{package}' package, which failed to import ({exc}); "
            f"install it with: pip install {package}") from exc
    return getattr(module, class_name)


def get_backend(name: str, **params) -> Backend:
    """Instantiate backend ``name`` with its parameters (``ring_degree``, ``levels``,
    ``scale_bits``, ``allow_insecure``, and backend-specific ones such as ``device``)."""
    return backend_class(name)(**params)
