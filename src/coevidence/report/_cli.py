"""``coevidence demo --out DIR``: the main job on the bundled example study (or ``--study``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo", help="validate the bundled example study (or --study) and write an HTML report")
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--study", default=None,
                   help="a study folder (datapackage.json) to report on instead of the example")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from coevidence.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE
    from coevidence.data.datapackage import read_study
    from coevidence.datasets import example_study_path
    from coevidence.exceptions import CoevidenceError, StudyValidationError
    from coevidence.report.api import report

    source = Path(args.study) if args.study else example_study_path()
    if not source.exists():
        print(f"error: no study at {source}", file=sys.stderr)
        return EXIT_USAGE
    try:
        study = read_study(source)  # validates: every problem is reported at once
    except StudyValidationError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (CoevidenceError, ValueError, KeyError) as exc:
        print(f"INVALID: {source} cannot be read as a study: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        page = report(study)
    except (CoevidenceError, ValueError, KeyError, TypeError) as exc:
        print(f"INVALID: {study!r} validated but could not be reported on: {_one_line(exc)}",
              file=sys.stderr)
        return EXIT_INVALID
    out = Path(args.out)
    try:
        target = page.save(out / "report.html")
    except OSError as exc:
        print(f"error: cannot write the report: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    print(f"validated {study!r}")
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
