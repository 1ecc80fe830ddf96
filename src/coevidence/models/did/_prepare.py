"""Data checks and preparation for :func:`~coevidence.models.did.event_study.fit_event_study`.

:func:`check_panel` validates the columns before anything is dropped; after the shared
missing-value step, :func:`prepare` recodes the cohorts, drops what the estimators cannot use
(always-treated units, periods without a comparison group, unbalanced units for Callaway &
Sant'Anna) and returns the unit-level arrays the cell builders take (:class:`Prepared`).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from coevidence.exceptions import MissingDataWarning, ModelSpecificationError, StudyValidationError
from coevidence.models._shared.data import TABLE, check_columns, check_identifiers
from coevidence.models.did._options import EventStudyOptions

# the warnings below are raised two calls below fit_event_study (prepare -> step): this level
# makes them point where the original one-function implementation's did
_STACKLEVEL = 4


@dataclasses.dataclass
class Prepared:
    """The analysed panel and its unit-level arrays."""

    data: pd.DataFrame  # rows kept, sorted by unit and time, with the cohort in ``_G``
    periods: np.ndarray  # sorted periods (float)
    ucode: np.ndarray  # unit code per row
    tcode: np.ndarray  # period code per row
    G_unit: np.ndarray  # cohort per unit (inf = never treated / comparison)
    lev_unit: np.ndarray  # ``by`` level per unit ("" without by=)
    levels: list  # ``by`` levels of treated units, in order of appearance
    clus_unit: np.ndarray | None  # cluster per unit
    n_always: int  # units dropped as treated in the first period
    n_unbal: int  # units dropped as unbalanced (Callaway & Sant'Anna)
    notes: list[str]


def _unit_constant(panel: pd.DataFrame, unit: str, col: str) -> None:
    """Raise if ``col`` varies within a unit (it must be a unit-level attribute)."""
    nun = panel.groupby(unit, sort=False, dropna=False)[col].nunique(dropna=False)
    bad = nun.index[nun > 1]
    if len(bad):
        pos = np.flatnonzero(panel[unit].isin(bad).to_numpy())
        fails = [
            {
                "table": TABLE,
                "row": int(r),
                "column": col,
                "value": panel[col].iloc[r],
                "rule": f"{col!r} must be constant within {unit!r} (unit {panel[unit].iloc[r]!r} has several values)",
            }
            for r in pos
        ]
        raise StudyValidationError(pd.DataFrame(fails), what=f"the panel's {col!r} column")


def check_panel(
    panel: pd.DataFrame, outcome: str, unit: str, time: str, first_treated: str,
    opts: EventStudyOptions,
) -> None:
    """Columns exist (numeric where needed), identifiers are valid, unit attributes constant."""
    covs = list(opts.covariates)
    check_columns(
        panel,
        [outcome, unit, time, first_treated, opts.by, opts.cluster, *covs],
        numeric=[outcome, time, first_treated, *covs],
    )
    check_identifiers(panel, unit, time)
    for col in (first_treated, opts.by, opts.cluster):
        if col is not None:
            _unit_constant(panel, unit, col)


def _cohorts(panel: pd.DataFrame, data: pd.DataFrame, first_treated: str,
             periods: np.ndarray) -> pd.DataFrame:
    """``data`` with the cohort in ``_G`` (inf for never treated: NaN, inf, or 0 before the panel)."""
    ft = data[first_treated].astype(float).to_numpy()
    zero_never = periods.min() > 0
    if not zero_never and np.any(ft == 0):
        raise StudyValidationError(
            pd.DataFrame(
                [
                    {
                        "table": TABLE,
                        "row": int(np.flatnonzero(panel[first_treated].to_numpy() == 0)[0]),
                        "column": first_treated,
                        "value": 0,
                        "rule": "0 is a period of the panel, so it cannot mean 'never treated': use NaN",
                    }
                ]
            ),
            what=f"the panel's {first_treated!r} column",
        )
    ft = np.where(np.isnan(ft) | (ft == 0), np.inf, ft)
    return data.assign(_G=ft)


def _drop_always_treated(data: pd.DataFrame, unit: str,
                         periods: np.ndarray) -> tuple[pd.DataFrame, int]:
    """Drop units treated in the first period (they have no pre-period); warns."""
    always = data["_G"].to_numpy() <= periods.min()
    n_always = int(data.loc[always, unit].nunique())
    if n_always:
        warnings.warn(
            f"fit_event_study: dropped {n_always} units treated in the first period (no pre-period)",
            MissingDataWarning,
            stacklevel=_STACKLEVEL,
        )
        data = data.loc[~always]
    return data, n_always


def _without_never_treated(data: pd.DataFrame, time: str, periods: np.ndarray,
                           opts: EventStudyOptions, notes: list[str]):
    """Without never-treated units, the last cohort is the comparison group (as R did)."""
    if not np.isfinite(data["_G"]).all() or opts.estimator in ("sun_abraham", "twfe"):
        return data, periods  # never-treated units exist (SA and TWFE handle their absence)
    if opts.cs and opts.control == "never_treated":
        raise ModelSpecificationError(
            "no never-treated units: use control='not_yet_treated' (the last cohort then serves as comparison)"
        )
    # as R did: without never-treated units, periods from the last cohort's start on are
    # dropped and the last cohort serves as the (not yet treated) comparison group
    anticipation = opts.anticipation
    last = float(data["_G"].max())
    n_rows = int((data[time] >= last - anticipation).sum())
    data = data.loc[data[time] < last - anticipation]
    if opts.cs:
        data = data.assign(_G=np.where(data["_G"] == last, np.inf, data["_G"]))
    periods = periods[periods < last - anticipation]
    notes.append(
        f"no never-treated units: {n_rows} rows from period {last - anticipation:g} on were dropped "
        f"and the last cohort ({last:g}) is the comparison group"
    )
    return data, periods


def _drop_unbalanced(data: pd.DataFrame, unit: str, time: str, periods: np.ndarray,
                     opts: EventStudyOptions) -> tuple[pd.DataFrame, int]:
    """Callaway & Sant'Anna: drop units not observed in every period (as R did); warns."""
    if not opts.cs:
        return data, 0
    counts = data.groupby(unit)[time].transform("size").to_numpy()
    unbal = counts < len(periods)
    n_unbal = int(data.loc[unbal, unit].nunique())
    if n_unbal:
        warnings.warn(
            f"fit_event_study: dropped {n_unbal} units not observed in every period "
            "(Callaway & Sant'Anna panel estimator needs a balanced panel, as R did)",
            MissingDataWarning,
            stacklevel=_STACKLEVEL,
        )
        data = data.loc[~unbal]
    return data, n_unbal


def _unit_arrays(data: pd.DataFrame, unit: str, time: str, first_treated: str,
                 periods: np.ndarray, opts: EventStudyOptions) -> dict[str, object]:
    """Row codes and the per-unit cohort, ``by`` level and cluster."""
    by, cluster = opts.by, opts.cluster
    ucode, _ulevels = pd.factorize(data[unit], sort=True)
    tcode = np.searchsorted(periods, data[time].to_numpy(dtype=float))
    first_row = np.r_[True, ucode[1:] != ucode[:-1]]
    G_unit = data["_G"].to_numpy()[first_row]
    lev_unit = (
        data[by].to_numpy()[first_row] if by is not None else np.full(len(G_unit), "", dtype=object)
    ).astype(object)
    if by is not None:
        never = ~np.isfinite(G_unit)
        lev_unit = np.where(never, "<never treated>", lev_unit).astype(object)
    levels = list(dict.fromkeys(lev_unit[np.isfinite(G_unit)].tolist())) if by is not None else [""]
    if not np.isfinite(G_unit).any():
        raise ModelSpecificationError(
            f"no treated units: {first_treated!r} is never-treated for everyone"
        )
    clus_unit = data[cluster].to_numpy()[first_row] if cluster is not None else None
    return {"ucode": ucode, "tcode": tcode, "G_unit": G_unit, "lev_unit": lev_unit,
            "levels": levels, "clus_unit": clus_unit}


def prepare(
    panel: pd.DataFrame, data: pd.DataFrame, *, unit: str, time: str, first_treated: str,
    opts: EventStudyOptions,
) -> Prepared:
    """From the rows left after missing values to the arrays of the estimators.

    ``panel`` is the caller's frame (for row numbers in errors), ``data`` its rows with
    complete outcome and covariates.
    """
    notes: list[str] = []
    periods = np.sort(data[time].unique()).astype(float)
    data = _cohorts(panel, data, first_treated, periods)
    data, n_always = _drop_always_treated(data, unit, periods)
    data, periods = _without_never_treated(data, time, periods, opts, notes)
    data, n_unbal = _drop_unbalanced(data, unit, time, periods, opts)
    if data.empty:
        raise ModelSpecificationError("no units left to analyse")
    data = data.sort_values([unit, time])
    arrays = _unit_arrays(data, unit, time, first_treated, periods, opts)
    return Prepared(data=data, periods=periods, n_always=n_always, n_unbal=n_unbal, notes=notes,
                    **arrays)
