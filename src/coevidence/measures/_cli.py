"""``coevidence measures list``, ``measures show ID`` and ``measures check ID|FILE``."""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("measures", help="list or show measure definitions")
    msub = p.add_subparsers(dest="measures_command", metavar="ACTION")
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])
    lst = msub.add_parser("list", help="every available measure (built-in, plugin, registered)")
    lst.add_argument("--json", action="store_true", help="print JSON records")
    lst.set_defaults(handler=_list)
    show = msub.add_parser("show", help="the structure of one measure")
    show.add_argument("id", help="measure id (see `coevidence measures list`)")
    show.add_argument("--json", action="store_true", help="print the definition as JSON")
    show.set_defaults(handler=_show)
    check = msub.add_parser(
        "check", help="run the conformance check on a measure id or a YAML/JSON file")
    check.add_argument("target", help="measure id, or a .yaml/.yml/.json file of definitions")
    check.add_argument("--trust-scorers", action="store_true",
                       help="import and run the file's custom scorers (module:function); "
                            "without it a definition with a custom scorer is refused")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coevidence.exceptions import MeasureError
    from coevidence.measures.loaders import load_measures
    from coevidence.measures.registry import get_measure
    from coevidence.testing import check_measure

    try:
        if Path(args.target).suffix.lower() in (".yaml", ".yml", ".json"):
            # a scorer named in a file runs only when the user says so
            defs = load_measures(args.target, trust_scorers=bool(args.trust_scorers))
        else:
            defs = [get_measure(args.target)]
    except KeyError as exc:
        print(str(exc.args[0]), file=sys.stderr)
        return 1
    except (MeasureError, OSError) as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for m in defs:
        table = check_measure(m, raise_on_failure=False)
        ok = bool(table["passed"].all())
        failed += not ok
        print(f"{m.id}: {'OK' if ok else 'FAILED'}")
        with pd.option_context("display.width", 200, "display.max_colwidth", 120):
            print(table.to_string(index=False))
    return 1 if failed else 0


def _list(args: argparse.Namespace) -> int:
    from coevidence.measures.registry import list_measures

    table = list_measures()
    if args.json:
        print(table.to_json(orient="records", indent=2))
        return 0
    cols = ["id", "instrument", "construct", "level", "n_items", "scoring", "response_range",
            "verified", "source"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[cols].to_string(index=False))
    return 0


def _show(args: argparse.Namespace) -> int:
    from coevidence.measures.registry import get_measure

    try:
        m = get_measure(args.id)
    except KeyError as exc:
        print(str(exc.args[0]), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(m.model_dump(mode="json"), indent=2))
        return 0
    verified = {True: "yes", False: "NO (not yet checked against the paper)", None: "not claimed"}
    lines = [
        f"{m.id}: {m.name}",
        f"  instrument: {m.instrument} {m.version}".rstrip(),
        f"  construct: {m.construct.value}; level: {m.level.value}",
        f"  responses: {m.response_min:g}-{m.response_max:g}"
        f"{' (whole numbers)' if m.discrete else ''}; items: {len(m.items)}",
        f"  reverse-keyed items: {', '.join(m.reverse_items) or 'none'}",
        f"  missing-item rule: score only when {_req(m)} are answered; "
        f"prorate={m.missing.prorate}",
        f"  aggregation: {m.aggregation.method} (min respondents {m.aggregation.min_respondents}"
        f", agreement check {'yes' if m.aggregation.check_agreement else 'no'})",
        f"  full item set administered: {m.full_item_set_administered}",
        f"  verified: {verified[m.verified]}",
    ]
    if m.verification_note:
        lines.append(f"  note: {m.verification_note}")
    lines.append("  scales:")
    primary = m.primary_scale()
    for s in m.scales():
        rule = m.rule(s).value
        rng = m.scale_range(s.id)
        what = (f"components {', '.join(s.components)}" if s.components
                else f"{len(s.items)} items: {', '.join(s.items)}")
        extra = f"; reversed components: {', '.join(s.reverse_components)}" \
            if s.reverse_components else ""
        lines.append(
            f"    - {s.id}{' (primary)' if s.id == primary else ''} [{rule}, "
            f"{s.direction.value}, range {_fmt(rng)}] {what}{extra}"
        )
    lines.append(f"  citation: {m.citation}")
    if m.doi:
        lines.append(f"  doi: {m.doi}")
    print("\n".join(lines))
    return 0


def _req(m) -> str:  # noqa: ANN001
    n = len(m.items)
    r = m.missing
    if r.min_answered is None and r.min_fraction is None:
        return "all items"
    parts = []
    if r.min_answered is not None:
        parts.append(f"{r.min_answered} items")
    if r.min_fraction is not None:
        parts.append(f"{r.min_fraction:.0%} of items")
    return "at least " + " and ".join(parts) + f" (per scale; {n} items in the measure)"


def _fmt(rng: tuple[float, float] | None) -> str:
    return "custom" if rng is None else f"{rng[0]:g} to {rng[1]:g}"
