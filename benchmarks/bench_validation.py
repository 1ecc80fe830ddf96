"""Benchmark: validating 1,000,000 observation rows (foundation issue: must take < 5 s).

Peer: the approach coevidence deliberately avoids — one pydantic object per row — timed on a
slice and extrapolated, reported as a ratio in the same run.

Run: ``python benchmarks/bench_validation.py [n_rows]``
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

import coevidence as cv
from coevidence.data._crosscheck import crosscheck
from coevidence.data.tables import RESPONSES


def make_responses(n: int, seed: int = 1) -> tuple[pd.DataFrame, cv.Study, pd.DataFrame]:
    study = cv.load_example_study()
    rng = np.random.default_rng(seed)
    resp_ids = np.array([r.id for r in study.respondents])
    measure = study.measures["research_use"]
    items = np.array(measure.items)
    # unique (respondent, measure, wave, item) keys: enumerate then subsample
    n_resp = int(np.ceil(n / (6 * len(items))))
    rid_unique = np.array([f"R{i:07d}" for i in range(n_resp)])
    rid = np.repeat(rid_unique, 6 * len(items))[:n]
    wave = np.tile(np.repeat(np.arange(1, 7), len(items)), n_resp)[:n]
    item = np.tile(items, 6 * n_resp)[:n]
    frame = pd.DataFrame({
        "respondent_id": rid, "measure_id": "research_use", "wave": wave, "item": item,
        "value": rng.integers(1, 6, n).astype(float),
        "date": pd.Timestamp("2024-02-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
    })
    del resp_ids
    respondents = pd.DataFrame({"id": rid_unique, "org_id": "O0001", "role": "staff",
                                "_row": np.arange(n_resp)})
    return frame, study, respondents


class _RowModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    respondent_id: str
    measure_id: str
    wave: int = Field(ge=0)
    item: str
    value: float | None = None
    date: object = None


def main(n: int = 1_000_000) -> None:
    frame, study, respondents = make_responses(n)
    # as read from a CSV file without type hints: dates and numbers arrive as text
    raw = frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d"), wave=frame["wave"].astype(str),
                       value=frame["value"].astype(str))
    tables = {k: v.assign(_row=np.arange(len(v))) for k, v in study.to_frames().items()
              if k not in ("responses", "scores")}
    tables["respondents"] = respondents
    t_typed = time.perf_counter()
    RESPONSES.check(frame)
    t0 = time.perf_counter()
    coerced, failures = RESPONSES.check(raw)
    t1 = time.perf_counter()
    # cross-record rules on the same rows (units, waves, items, ranges, study window)
    cross = crosscheck(study.design, tables, study.measures, coerced, None)
    t2 = time.perf_counter()
    slice_n = 20_000
    rows = frame.iloc[:slice_n].to_dict("records")
    t3 = time.perf_counter()
    for r in rows:
        _RowModel.model_validate(r)
    t4 = time.perf_counter()
    per_row = (t4 - t3) / slice_n * n
    total = t2 - t0
    import platform

    print(f"rows: {n:,}   pandas {pd.__version__}, numpy {np.__version__}, {platform.processor() or platform.machine()}")
    print(f"column checks, typed input:       {t0 - t_typed:6.2f} s")
    print(f"column checks, text input (CSV):  {t1 - t0:6.2f} s  ({len(failures)} failures)")
    print(f"cross-record rules:               {t2 - t1:6.2f} s  ({len(cross)} failures)")
    print(f"total coevidence validation:      {total:6.2f} s  (text input; target < 5 s)")
    print(f"peer: pydantic per row (extrap.): {per_row:6.2f} s  (column checks only)")
    print(f"ratio peer / coevidence column checks: {per_row / (t1 - t0):.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
