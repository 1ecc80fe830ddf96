"""Fuzz campaign: N seeded variants of the small example study over every way in.

Each variant is the study with one or two corruptions that make it invalid, or a harmless change
that keeps it valid (the generators of ``tests/io/fuzz_ways.py``, driven by a seeded numpy
generator instead of hypothesis). Prints, per way in: variants, crashes (and how many distinct
tracebacks), accepted-invalid, rejected-valid, silent drops, mutated inputs and lost pairs (two
corruptions in two tables, not both reported at once). Every figure but ``variants`` should be 0.

Run: ``python benchmarks/fuzz_campaign.py [N] [--seed S] [--ways from_frames,read_table]``
(N defaults to 6000; about 0.1 s of CPU a variant). Exit status 1 when anything was found.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "io"))

import fuzz_ways as fw
import test_io_hardening_support as h

#: share of N per way (the CLI is slower and adds little over read_study)
WEIGHTS = {"from_frames": 0.35, "records": 0.2, "read_study": 0.17, "cli": 0.06,
           "read_table": 0.22}


def campaign(n: int, seed: int, ways: list[str]) -> dict[str, dict[str, object]]:
    total = sum(WEIGHTS[w] for w in ways)
    table: dict[str, dict[str, object]] = {}
    for k, way in enumerate(ways):
        count = max(1, round(n * WEIGHTS[way] / total))
        found: collections.Counter[str] = collections.Counter()
        tracebacks: dict[str, str] = {}
        examples: dict[str, str] = {}
        start = time.process_time()
        for i in range(count):
            chooser = h.RngChoices(np.random.default_rng([seed, k, i]))
            try:
                findings = fw.check(way, chooser)
            except Exception as exc:  # a bug of the generators themselves: say so, go on
                findings = [fw.Finding("harness_error", f"variant {i}", repr(exc)[:200])]
            for f in findings:
                found[f.kind] += 1
                if f.kind == "crash":
                    tracebacks.setdefault(f.key, f"{f.desc} -> {f.detail}")
                examples.setdefault(f.kind, f"{f.desc} {f.detail}"[:200])
        table[way] = {"variants": count, **{kind: found[kind] for kind in fw.KINDS},
                      "harness_error": found["harness_error"],
                      "distinct_tracebacks": len(tracebacks), "cpu_s": time.process_time() - start,
                      "tracebacks": tracebacks, "examples": examples}
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--ways", default=",".join(fw.WAYS))
    args = parser.parse_args(argv)
    ways = [w for w in args.ways.split(",") if w]
    unknown = set(ways) - set(fw.WAYS)
    if unknown:
        parser.error(f"unknown ways {sorted(unknown)}; choose from {list(fw.WAYS)}")
    warnings.simplefilter("ignore")
    table = campaign(args.n, args.seed, ways)
    cols = ["variants", "crash", "distinct_tracebacks", "accepted_invalid", "rejected_valid",
            "drop", "mutated", "lost", "harness_error"]
    heads = ["variants", "crashes", "(distinct)", "accepted-invalid", "rejected-valid",
             "silent drops", "mutated inputs", "lost pairs", "harness errors"]
    print(f"fuzz campaign: seed {args.seed}, {sum(int(r['variants']) for r in table.values())} "
          "variants")
    print(f"{'way in':<12}" + "".join(f"{hd:>17}" for hd in heads) + f"{'cpu s':>9}")
    totals = collections.Counter()
    for way, row in table.items():
        print(f"{way:<12}" + "".join(f"{row[c]:>17}" for c in cols) + f"{row['cpu_s']:>9.0f}")
        totals.update({c: int(row[c]) for c in cols})
    print(f"{'total':<12}" + "".join(f"{totals[c]:>17}" for c in cols))
    bad = False
    for way, row in table.items():
        for key, text in row["tracebacks"].items():  # type: ignore[union-attr]
            print(f"  {way} crash {key}: {text}")
        for kind, text in row["examples"].items():  # type: ignore[union-attr]
            bad = True
            print(f"  {way} {kind}, e.g.: {text}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
