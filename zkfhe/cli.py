"""The ``zkfhe`` command line. Subcommands live beside the package they drive:
``zkfhe/cli_zk.py`` (prove, verify, inspect) and ``zkfhe/cli_fhe.py`` (plan, einsum)."""
from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zkfhe")
def cli() -> None:
    """zkfhe: zero-knowledge proofs of deep-learning training (zkDL) and encrypted
    einsum on RNS-CKKS (EinHops-style), over one tensor-op layer."""


def _register() -> None:
    import importlib

    for name in ("cli_zk", "cli_fhe"):
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli()
