"""Small public datasets used by the mixed-model replications and examples.

Examples
--------
>>> df = load_dataset("sleepstudy")
>>> df.shape
(180, 3)
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["DATASETS", "load_dataset"]

#: name -> (file, R factor levels to restore, id columns)
DATASETS = {
    "sleepstudy": ("sleepstudy.csv", {}, ("subject",)),
    "hsb82": ("hsb82.csv", {"sector": ["Public", "Catholic"], "sx": ["Male", "Female"],
                            "minrty": ["No", "Yes"]}, ("school",)),
    "early": ("early.csv", {"trt": ["N", "Y"]}, ("id",)),
    "cbpp": ("cbpp.csv", {"period": ["1", "2", "3", "4"],
                          "herd": [str(i) for i in range(1, 16)]}, ("herd",)),
    "grouseticks": ("grouseticks.csv", {"year": ["95", "96", "97"]},
                    ("index", "brood", "location")),
}


def load_dataset(name: str) -> pd.DataFrame:
    """Load a bundled dataset with R's factor levels (see ``datasets/data/README_mixed.md``).

    Parameters
    ----------
    name : {"sleepstudy", "hsb82", "early", "cbpp", "grouseticks"}

    Returns
    -------
    pandas.DataFrame
        A fresh copy; factors are pandas ``Categorical`` with R's level order, so treatment
        contrasts are named as in R (``sectorCatholic``, ``trtY``).

    Examples
    --------
    >>> load_dataset("early")["trt"].cat.categories.tolist()
    ['N', 'Y']
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    file, levels, _ = DATASETS[name]
    path = resources.files("coevidence.datasets") / "data" / file
    with path.open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype={c: str for c in levels})
    for col, lv in levels.items():
        df[col] = pd.Categorical(df[col], categories=lv)
    return df
