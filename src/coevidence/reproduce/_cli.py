"""``coevidence reproduce --list | NAME ... | --all``: published vs reproduced, side by side."""

from __future__ import annotations

import argparse
import sys

import pandas as pd


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "reproduce",
        help="re-run published analyses and compare with the published numbers",
        description="Re-run published analyses; exit status 1 if any number is not reproduced.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="replications to run")
    p.add_argument("--list", action="store_true", help="list the registered replications")
    p.add_argument("--all", action="store_true", help="run every registered replication")
    p.set_defaults(handler=_reproduce)


def _fmt(v: float) -> str:
    return f"{v:.6g}" if pd.notna(v) else "nan"


def _reproduce(args: argparse.Namespace) -> int:
    from coevidence.reproduce._registry import registry, run

    reps = registry()
    if args.list:
        for name, rep in reps.items():
            print(f"{name:<22} {rep.title}\n{'':<22} source: {rep.source}")
        return 0
    names = list(reps) if args.all else list(args.names)
    if not names:
        print("give NAME(s), --all or --list", file=sys.stderr)
        return 2
    unknown = [n for n in names if n not in reps]
    if unknown:
        print(f"unknown replication(s) {unknown}; available: {', '.join(reps)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        rep = reps[name]
        print(f"== {name}: {rep.title}\n   source: {rep.source}")
        try:
            frame = run(name)
        except Exception as exc:  # noqa: BLE001 - a crash is a failed replication
            print(f"   ERROR: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        table = pd.DataFrame(
            {
                "quantity": frame["quantity"],
                "published": frame["published"].map(_fmt),
                "reproduced": frame["reproduced"].map(_fmt),
                "difference": frame["difference"].map(_fmt),
                "tolerance": frame["tolerance"].map(_fmt),
                "result": frame["passed"].map({True: "pass", False: "FAIL"}),
            }
        )
        print(table.to_string(index=False))
        n_fail = int((~frame["passed"]).sum())
        failed += n_fail
        print(f"   {len(frame) - n_fail}/{len(frame)} reproduced\n")
    print("all reproduced" if failed == 0 else f"{failed} check(s) FAILED")
    return 1 if failed else 0
