"""``coevidence demo --out DIR``: the main job on the bundled example study."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo", help="validate the bundled example study and write an HTML report to DIR")
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--study", default=None,
                   help="a study folder to report on instead of the bundled example")
    p.set_defaults(handler=_demo)


def _sections() -> list:  # noqa: ANN202 - callables of (study, panel, outcome) -> html
    sections = []
    try:
        mod = importlib.import_module("coevidence.report._growth_section")
    except ModuleNotFoundError as exc:
        if exc.name != "coevidence.report._growth_section":
            raise
    else:
        sections.append(lambda study, panel, outcome: mod.growth_section(panel, outcome))
    return sections


def _demo(args: argparse.Namespace) -> int:
    from coevidence.data.datapackage import read_study
    from coevidence.datasets import example_study_path
    from coevidence.report.html import study_report

    source = Path(args.study) if args.study else example_study_path()
    study = read_study(source)  # validates; raises StudyValidationError on bad data
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    page = study_report(study, sections=_sections())
    target = out / "report.html"
    target.write_text(page, encoding="utf-8")
    print(f"validated {study!r}")
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")
    return 0
