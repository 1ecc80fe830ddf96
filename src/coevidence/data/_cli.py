"""``coevidence validate PATH`` and ``coevidence describe PATH``."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from coevidence.exceptions import CoevidenceError, StudyValidationError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("validate", help="validate a study data package; exit 1 on problems")
    p.add_argument("path", help="study folder (with datapackage.json)")
    p.add_argument("--max", type=int, default=200, help="problems to print (default 200)")
    p.add_argument("--csv", metavar="FILE", help="also write every problem to this CSV file")
    p.set_defaults(handler=_validate)
    d = sub.add_parser("describe", help="units by arm and wave, attrition and dose")
    d.add_argument("path", help="study folder (with datapackage.json)")
    d.set_defaults(handler=_describe)


def _read(path: str):  # noqa: ANN202
    from coevidence.data.datapackage import read_study

    return read_study(path)


def _validate(args: argparse.Namespace) -> int:
    try:
        study = _read(args.path)
    except StudyValidationError as exc:
        f = exc.failures
        print(f"INVALID: {len(f)} problem{'s' if len(f) != 1 else ''} in {args.path}")
        with pd.option_context("display.max_colwidth", 80, "display.width", 200):
            print(f.head(args.max).to_string(index=False))
        if len(f) > args.max:
            print(f"... and {len(f) - args.max} more (use --csv FILE for all)")
        if args.csv:
            f.to_csv(args.csv, index=False)
        return 1
    except CoevidenceError as exc:
        print(f"INVALID: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"INVALID: cannot read {args.path}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(f"OK: {study!r}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    try:
        study = _read(args.path)
    except StudyValidationError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except CoevidenceError as exc:
        print(f"INVALID: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(repr(study))
    for name, frame in study.describe().items():
        print(f"\n== {name} ==")
        print(frame.to_string())
    return 0
