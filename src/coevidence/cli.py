"""The ``coevidence`` command line.

Each layer adds its own sub-commands through a ``register(subparsers)`` function in a private
``_cli`` module (listed in :data:`_COMMAND_MODULES`), so this file stays a small dispatcher.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

_COMMAND_MODULES = (
    "coevidence.data._cli",  # validate, describe
    "coevidence.report._cli",  # demo
    "coevidence.measures._cli",  # measures list/show
    "coevidence.reproduce._cli",  # reproduce
    "coevidence.design._cli",  # power mdes/power/mrss/simulate
)


def build_parser() -> argparse.ArgumentParser:
    from coevidence import __version__

    parser = argparse.ArgumentParser(
        prog="coevidence",
        description="Study data, measures, models and power for co-creation vs push TA.",
    )
    parser.add_argument("--version", action="version", version=f"coevidence {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that family has no commands yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 invalid data / failed check)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
