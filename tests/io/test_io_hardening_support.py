"""A small valid study cut from the example study, and corruptions of its tables (for the fuzz
and hardening tests).

The corruptions take a *chooser*: anything with ``index(n)`` (an int in ``[0, n)``) and
``pick(seq)``; :class:`RngChoices` wraps a numpy generator (the campaign script),
:class:`DrawChoices` a hypothesis ``draw`` (the fuzz tests, whose examples then shrink).
A plain :class:`numpy.random.Generator` is accepted too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

import coevidence as cv


class RngChoices:
    """Choices drawn from a seeded numpy generator."""

    def __init__(self, rng: np.random.Generator | int) -> None:
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def index(self, n: int) -> int:
        return int(self.rng.integers(max(1, n)))

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[self.index(len(seq))]


class DrawChoices:
    """Choices drawn by hypothesis (``draw`` of ``st.composite`` or ``st.data().draw``)."""

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st

        self._draw, self._st = draw, st

    def index(self, n: int) -> int:
        return int(self._draw(self._st.integers(0, max(1, n) - 1)))

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[self.index(len(seq))]


def choices(c: Any) -> Any:
    """``c`` as a chooser (a numpy generator is wrapped)."""
    return RngChoices(c) if isinstance(c, np.random.Generator) else c


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


@functools.lru_cache(maxsize=1)
def _clean_tables() -> dict[str, pd.DataFrame]:
    return small_study().to_frames()


def tables() -> dict[str, pd.DataFrame]:
    """Fresh copies of the small study's tables (cached; copying is cheap)."""
    return {k: v.copy() for k, v in _clean_tables().items()}


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
OPTIONAL_IDS = [("organizations", "provider_id"), ("organizations", "parent_id")]
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


KINDS = ["number", "date", "id", "drop", "dupcol", "dupkey", "badscore", "fraction", "type",
         "range"]


def corrupt(frames: dict[str, pd.DataFrame], rng: Any,
            exclude: Sequence[str] = ()) -> tuple[str, str]:
    """Apply one corruption that makes the study invalid; returns (table, description).

    ``exclude``: tables not to corrupt (a second corruption lands in another table); only
    the tables in ``frames`` are corrupted.
    """
    c = choices(rng)
    exclude = {*exclude, *(t for t, _ in NUMERIC + DATES + IDS + REQUIRED if t not in frames)}
    names = [t for t in frames if t not in exclude]
    kind = c.pick(KINDS)
    if kind in ("badscore", "fraction", "range") and {"scores", "responses"} & set(exclude):
        kind = "number"

    def pick(pairs: list[tuple[str, str]]) -> tuple[str, str]:
        pairs = [p for p in pairs if p[0] not in exclude] or [p for p in NUMERIC
                                                             if p[0] not in exclude]
        return c.pick(pairs)

    if kind == "number":
        table, col = pick(NUMERIC)
        bad = c.pick(BAD_NUMBERS)
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
        table, col = pick(DATES)
        bad = c.pick(BAD_DATES)
    elif kind == "id":
        table, col = pick(IDS)
        bad = c.pick(BAD_IDS)
        if bad == "" and (table, col) in OPTIONAL_IDS:
            bad = "nope"  # an empty optional id is a missing one: harmless
    elif kind == "drop":
        table, col = pick(REQUIRED)
        if isinstance(frames[table], pd.DataFrame):
            frames[table] = frames[table].drop(columns=col, errors="ignore")
        return table, f"drop {table}.{col}"
    elif kind == "dupcol":
        table = c.pick(names)
        f = frames[table]
        if isinstance(f, pd.DataFrame):
            col = f.columns[c.index(f.shape[1])]
            frames[table] = pd.concat([f, f.iloc[:, [list(f.columns).index(col)]]], axis=1)
        else:
            col = "?"
        return table, f"duplicate column {table}.{col}"
    elif kind == "dupkey":
        table = c.pick([t for t in KEYED if t not in exclude])
        f = frames[table]
        if isinstance(f, pd.DataFrame) and len(f):
            frames[table] = pd.concat([f, f.iloc[[c.index(len(f))]]], ignore_index=True)
        return table, f"duplicate row of {table}"
    elif kind == "badscore":
        f = frames["scores"]
        row = c.index(len(f) if isinstance(f, pd.DataFrame) else 1)
        bad = float(c.pick([0.0, 5.5, 99.0, -1.0]))
        frames["scores"] = _set(f, row, "value", bad)
        return "scores", f"badscore: scores.value[{row}] = {bad!r}"
    elif kind == "fraction":
        table, col = "responses", "value"
        bad = float(c.pick([1.5, 2.25, 4.999]))
    elif kind == "range":
        table, col = "responses", "value"
        bad = float(c.pick([0.0, 6.0, 99.0]))
    else:  # a whole table of the wrong type
        table = c.pick(names)
        frames[table] = c.pick(["not a table", 5, ["a", "list"]])  # type: ignore[assignment]
        return table, f"{table} is not a DataFrame"
    f = frames[table]
    row = c.index(len(f) if isinstance(f, pd.DataFrame) else 1)
    frames[table] = _set(f, row, col, bad)
    return table, f"{table}.{col}[{row}] = {bad!r}"[:80]


def harmless(frames: dict[str, pd.DataFrame], rng: Any) -> str:
    """A change that keeps the study valid (row order, a nullable cell, text ids)."""
    c = choices(rng)
    kind = c.pick(["shuffle", "nullable", "strdates", "index"])
    table = c.pick(list(frames))
    f = frames[table]
    if kind == "shuffle" and len(f):
        frames[table] = f.sample(frac=1.0, random_state=c.index(1 << 30))
    elif kind == "nullable" and table == "responses" and len(f):
        frames[table] = _set(f, c.index(len(f)), "value", np.nan)
    elif kind == "strdates":
        cols = [c for c in f.columns if pd.api.types.is_datetime64_dtype(f[c].dtype)]
        if cols:
            frames[table] = f.assign(**{c: f[c].dt.strftime("%Y-%m-%d") for c in cols})
    elif kind == "index" and len(f):
        frames[table] = f.set_axis(np.arange(len(f)) * 7 + 3, axis=0)
    return f"{kind} {table}"
