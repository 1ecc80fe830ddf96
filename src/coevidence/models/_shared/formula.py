"""The data columns a formula uses (shared by the mixed-model and panel formula front ends)."""

from __future__ import annotations

import pandas as pd

__all__ = ["formula_variables"]


def formula_variables(expr: str, data: pd.DataFrame) -> list[str]:
    """Data columns the formula part ``expr`` uses, also inside function calls.

    ``scale(x)``, ``np.log(x)``, ``poly(x, 2)`` and ``C(g)`` all use their column; formulaic's
    ``required_variables`` leaves the arguments of transforms out, so rows with a missing value
    there were not dropped before the model matrix was built.

    Examples
    --------
    >>> import pandas as pd
    >>> formula_variables("scale(x) + C(g) + z", pd.DataFrame(columns=["x", "g", "z"]))
    ['x', 'g', 'z']
    """
    from coevidence.models.mixed.formula import _variables

    return _variables(expr, data)
