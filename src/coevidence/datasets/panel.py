"""Small public panel data sets bundled for offline replication (see data/README_panel.md)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_grunfeld", "load_mpdta"]


def _read(name: str) -> pd.DataFrame:
    with resources.files("coevidence.datasets").joinpath("data", name).open("rb") as fh:
        return pd.read_csv(fh)


def load_grunfeld() -> pd.DataFrame:
    """Grunfeld investment data (plm::Grunfeld): 10 firms x 20 years, 1935-1954.

    Columns ``firm, year, inv, value, capital``; 200 rows.

    Examples
    --------
    >>> from coevidence.datasets.panel import load_grunfeld
    >>> load_grunfeld().shape
    (200, 5)
    """
    return _read("grunfeld.csv")


def load_mpdta() -> pd.DataFrame:
    """Callaway & Sant'Anna's county teen-employment panel (R ``did::mpdta``).

    500 counties x 2003-2007 (2500 rows): ``year, countyreal, lpop, lemp, first.treat, treat``;
    ``first.treat`` is 0 for never-treated counties.

    Examples
    --------
    >>> from coevidence.datasets.panel import load_mpdta
    >>> load_mpdta().shape
    (2500, 6)
    """
    return _read("mpdta.csv")
