"""A small valid study cut from the example study, and corruptions of its tables (for the fuzz
and hardening tests)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

import coevidence as cv


@functools.lru_cache(maxsize=1)
def small_study() -> cv.Study:
    """The example study cut down to a few organisations (fast to validate), with scores."""
    study = cv.load_example_study()
    f = study.to_frames()
    orgs = f["organizations"]
    keep = orgs[orgs["parent_id"].isna()].head(3)["id"].tolist()
    keep += orgs[orgs["parent_id"].isin(keep)].head(3)["id"].tolist()
    orgs = orgs[orgs["id"].isin(keep)]
    resp = f["respondents"][f["respondents"]["org_id"].isin(keep)]
    eng = f["engagements"][f["engagements"]["org_id"].isin(keep)]
    out = {"providers": f["providers"], "organizations": orgs, "respondents": resp,
           "engagements": eng}
    for name in ("engagement_phases", "encounters", "components", "adaptations", "agreements",
                 "relationship_ratings"):
        out[name] = f[name][f[name]["engagement_id"].isin(eng["id"])]
    r = f["responses"]
    r = r[r["respondent_id"].isin(resp["id"]) & (r["wave"] <= 2)]
    out["responses"] = r
    out["scores"] = pd.DataFrame({
        "unit_level": "organization", "unit_id": orgs["id"].tolist(),
        "measure_id": "research_use", "wave": 1, "value": np.linspace(1.5, 4.5, len(orgs))})
    out = {k: v.reset_index(drop=True) for k, v in out.items()}
    return cv.Study.from_frames(study.design, measures=study.measures.values(), **out)


def tables() -> dict[str, pd.DataFrame]:
    return {k: v.copy() for k, v in small_study().to_frames().items()}


def build(frames: dict[str, pd.DataFrame]) -> cv.Study:
    s = small_study()
    return cv.Study.from_frames(s.design, measures=s.measures.values(), **frames)


#: (table, column) -> what the column holds, for picking corruptions
NUMERIC = [("encounters", "minutes"), ("responses", "value"), ("responses", "wave"),
           ("scores", "value"), ("scores", "wave"), ("relationship_ratings", "value"),
           ("components", "order")]
DATES = [("encounters", "date"), ("engagements", "start_date"), ("engagement_phases", "start_date"),
         ("responses", "date"), ("components", "introduced_on"), ("agreements", "agreed_on"),
         ("adaptations", "date"), ("relationship_ratings", "date")]
IDS = [("organizations", "provider_id"), ("respondents", "org_id"), ("engagements", "org_id"),
       ("encounters", "engagement_id"), ("responses", "respondent_id"),
       ("responses", "measure_id"), ("scores", "unit_id"), ("engagement_phases", "engagement_id")]
REQUIRED = [("providers", "id"), ("organizations", "id"), ("providers", "kind"),
            ("respondents", "org_id"), ("engagements", "start_date"), ("engagements", "id"),
            ("encounters", "minutes"), ("encounters", "engagement_id"), ("responses", "wave"),
            ("responses", "value"), ("responses", "item"), ("scores", "unit_level"),
            ("scores", "value"), ("components", "order"), ("agreements", "kind")]
KEYED = ["providers", "organizations", "respondents", "engagements", "responses", "scores"]

BAD_NUMBERS = [np.inf, -np.inf, 99.0, -5.0, "abc", "1e400", [1, 2], 1e30, True, 2.5]
BAD_DATES = ["1600-01-01", "2300-01-01", "2024-13-45", "not a date", 12345,
             pd.Timestamp("2024-03-01", tz="UTC"), "2024-03-01T00:00:00+05:00",
             "9999-12-31", [2024, 1, 1]]
BAD_IDS = ["nope", "", 3.5, ["a"], {"k": 1}, "x" * 5000]


def _set(frame: pd.DataFrame, row: int, col: str, value: object) -> pd.DataFrame:
    """``frame`` with one cell changed (unchanged if an earlier corruption removed the cell)."""
    if not isinstance(frame, pd.DataFrame) or col not in frame.columns or not len(frame):
        return frame
    frame = frame.copy()
    pos = int(np.flatnonzero(np.asarray(frame.columns == col))[0])
    frame.isetitem(pos, frame.iloc[:, pos].astype(object))
    frame.iat[min(row, len(frame) - 1), pos] = value
    return frame


def corrupt(frames: dict[str, pd.DataFrame], rng: np.random.Generator) -> tuple[str, str]:
    """Apply one corruption that makes the study invalid; returns (table, description)."""
    kind = rng.choice(["number", "date", "id", "drop", "dupcol", "dupkey", "badscore",
                       "fraction", "type", "range"])
    if kind == "number":
        table, col = NUMERIC[rng.integers(len(NUMERIC))]
        bad = BAD_NUMBERS[rng.integers(len(BAD_NUMBERS))]
        if table == "encounters" and isinstance(bad, float) and 0 <= bad < np.inf:
            bad = -1.0 if bad != 2.5 else np.inf  # minutes have no upper bound
        if table == "components" and bad in (99.0,):
            bad = 2.5
        if col == "wave" and bad == 2.5:
            bad = 99.0
        if table == "relationship_ratings" and bad == 2.5:
            bad = 99.0
        if table == "scores" and col == "value" and isinstance(bad, float) and np.isfinite(bad):
            bad = np.inf  # the range of scores is the "badscore" corruption
    elif kind == "date":
        table, col = DATES[rng.integers(len(DATES))]
        bad = BAD_DATES[rng.integers(len(BAD_DATES))]
    elif kind == "id":
        table, col = IDS[rng.integers(len(IDS))]
        bad = BAD_IDS[rng.integers(len(BAD_IDS))]
    elif kind == "drop":
        table, col = REQUIRED[rng.integers(len(REQUIRED))]
        if isinstance(frames[table], pd.DataFrame):
            frames[table] = frames[table].drop(columns=col, errors="ignore")
        return table, f"drop {table}.{col}"
    elif kind == "dupcol":
        table = list(frames)[rng.integers(len(frames))]
        f = frames[table]
        if isinstance(f, pd.DataFrame):
            col = f.columns[rng.integers(f.shape[1])]
            frames[table] = pd.concat([f, f.iloc[:, [list(f.columns).index(col)]]], axis=1)
        else:
            col = "?"
        return table, f"duplicate column {table}.{col}"
    elif kind == "dupkey":
        table = KEYED[rng.integers(len(KEYED))]
        f = frames[table]
        if isinstance(f, pd.DataFrame) and len(f):
            frames[table] = pd.concat([f, f.iloc[[rng.integers(len(f))]]], ignore_index=True)
        return table, f"duplicate row of {table}"
    elif kind == "badscore":
        f = frames["scores"]
        row = int(rng.integers(max(1, len(f) if isinstance(f, pd.DataFrame) else 1)))
        bad = float(rng.choice([0.0, 5.5, 99.0, -1.0]))
        frames["scores"] = _set(f, row, "value", bad)
        return "scores", f"badscore: scores.value[{row}] = {bad!r}"
    elif kind == "fraction":
        table, col = "responses", "value"
        bad = float(rng.choice([1.5, 2.25, 4.999]))
    elif kind == "range":
        table, col = "responses", "value"
        bad = float(rng.choice([0.0, 6.0, 99.0]))
    else:  # a whole table of the wrong type
        table = list(frames)[rng.integers(len(frames))]
        frames[table] = rng.choice(["text", 5, None]) if False else "not a table"  # type: ignore
        return table, f"{table} is not a DataFrame"
    f = frames[table]
    row = int(rng.integers(max(1, len(f) if isinstance(f, pd.DataFrame) else 1)))
    frames[table] = _set(f, row, col, bad)
    return table, f"{table}.{col}[{row}] = {bad!r}"[:80]


def harmless(frames: dict[str, pd.DataFrame], rng: np.random.Generator) -> str:
    """A change that keeps the study valid (row order, a nullable cell, text ids)."""
    kind = rng.choice(["shuffle", "nullable", "strdates", "index"])
    table = list(frames)[rng.integers(len(frames))]
    f = frames[table]
    if kind == "shuffle" and len(f):
        frames[table] = f.sample(frac=1.0, random_state=int(rng.integers(1 << 30)))
    elif kind == "nullable" and table == "responses" and len(f):
        frames[table] = _set(f, int(rng.integers(len(f))), "value", np.nan)
    elif kind == "strdates":
        cols = [c for c in f.columns if pd.api.types.is_datetime64_dtype(f[c].dtype)]
        if cols:
            frames[table] = f.assign(**{c: f[c].dt.strftime("%Y-%m-%d") for c in cols})
    elif kind == "index" and len(f):
        frames[table] = f.set_axis(np.arange(len(f)) * 7 + 3, axis=0)
    return f"{kind} {table}"
