"""Benchmark: scoring 1,000,000 item responses (measures issue: must take < 2 s).

Workload: EBPAS-15 (4 subscales + a composite total with Divergence reversed), long format,
string respondent ids, 6 waves, 3% of responses missing, missing-item rule "at least 3 of the
items of each subscale" (so some scores are not computed and reported).

Peer: the obvious pandas approach — ``pivot_table`` to wide, then per-subscale row means with
``count`` checks — which does *no* validation (range, types, unknown items, duplicates) and
gives no report. Both run in the same process on the same data; the ratio is printed, and the
two results are checked to agree.

Run: ``python benchmarks/bench_scoring.py [n_responses] [repeats]``
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

from coevidence.exceptions import CoevidenceWarning
from coevidence.measures.registry import get_measure
from coevidence.measures.scoring import score
from coevidence.schemas.measure import MeasureDefinition


def make_responses(n: int, measure: MeasureDefinition, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = np.array(measure.items)
    per_resp = 6 * len(items)
    n_resp = int(np.ceil(n / per_resp))
    rid = np.repeat(np.array([f"R{i:07d}" for i in range(n_resp)]), per_resp)[:n]
    wave = np.tile(np.repeat(np.arange(1, 7), len(items)), n_resp)[:n]
    item = np.tile(items, 6 * n_resp)[:n]
    value = rng.integers(0, 5, n).astype(float)
    value[rng.random(n) < 0.03] = np.nan
    return pd.DataFrame({"respondent_id": rid, "wave": wave, "item": item, "value": value})


def peer(frame: pd.DataFrame, measure: MeasureDefinition) -> pd.DataFrame:
    """Naive pandas: pivot, then row means per subscale where enough items are answered."""
    wide = frame.pivot_table(index=["respondent_id", "wave"], columns="item", values="value",
                             aggfunc="first", dropna=False)
    out = pd.DataFrame(index=wide.index)
    lo, hi = measure.response_min, measure.response_max
    for s in measure.subscales:
        if s.components:
            parts = [(lo + hi - out[c]) if c in s.reverse_components else out[c]
                     for c in s.components]
            comp = pd.concat(parts, axis=1)
            need = measure.missing_rule(s).required(len(s.components))
            out[s.id] = comp.mean(axis=1).where(comp.count(axis=1) >= need)
            continue
        sub = wide[list(s.items)]
        mean = sub.mean(axis=1)
        out[s.id] = mean.where(sub.count(axis=1) >= measure.missing_rule(s).required(len(s.items)))
    return out.reset_index()


def main(n: int = 1_000_000, repeats: int = 3) -> None:
    base = get_measure("ebpas15")
    measure = MeasureDefinition.model_validate(
        {**base.model_dump(), "missing": {"min_answered": 3}, "verified": None})
    frame = make_responses(n, measure)
    print(f"{len(frame):,} item responses, {frame['respondent_id'].nunique():,} respondents, "
          f"6 waves, measure {measure.id} ({len(measure.scales())} scales)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoevidenceWarning)
        times_cv, times_peer = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = score(frame, measure)
            times_cv.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ref = peer(frame, measure)
            times_peer.append(time.perf_counter() - t0)
    cv_t, peer_t = min(times_cv), min(times_peer)
    mine = res.scores
    ref = mine[["respondent_id", "wave"]].merge(ref, on=["respondent_id", "wave"], how="left")
    for s in measure.scales():
        np.testing.assert_allclose(mine[s.id].to_numpy(), ref[s.id].to_numpy(), rtol=1e-12)
    print(res.report[["scale", "n_units", "n_scored", "n_not_scored", "n_prorated"]]
          .to_string(index=False))
    print(f"coevidence.score (validated, reported): {cv_t:.3f} s (best of {repeats})")
    print(f"peer: pandas pivot_table + row means (no validation): {peer_t:.3f} s")
    print(f"ratio coevidence / peer: {cv_t / peer_t:.2f}  (results agree to 1e-12)")
    print(f"issue target < 2 s: {'met' if cv_t < 2 else 'NOT met'}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
