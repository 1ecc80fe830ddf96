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


#: Exit statuses of every command.
EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    ``0`` success; ``1`` invalid data or a failed check (the problems are printed);
    ``2`` usage (bad arguments, a missing optional extra); ``3`` an internal error, reported in
    one line (no traceback; set ``COEVIDENCE_DEBUG=1`` to see it).
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # bad usage: argparse exits with status 2
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("coevidence: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # noqa: BLE001 - the command line never shows a traceback
        return _report(exc)


def _report(exc: BaseException) -> int:
    """Print one error a command did not handle itself; return its exit status."""
    import os

    from coevidence.exceptions import (
        CoevidenceError,
        MeasureError,
        MissingExtraError,
        StudyValidationError,
    )

    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) else EXIT_USAGE
    if os.environ.get("COEVIDENCE_DEBUG"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, (StudyValidationError, MeasureError)):
        print(f"INVALID: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if isinstance(exc, MissingExtraError):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, CoevidenceError):
        print(f"INVALID: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INVALID
    if isinstance(exc, OSError):
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    print(f"coevidence: internal error: {type(exc).__name__}: {_one_line(exc)} "
          "(please report it; COEVIDENCE_DEBUG=1 shows the traceback)", file=sys.stderr)
    return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
