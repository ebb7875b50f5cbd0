"""zkfhe: zero-knowledge proofs of training and encrypted einsum for ML pipelines."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zkfhe")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
