"""Read measure definitions from YAML or JSON (YAML with ``yaml.safe_load``: no code runs).

A file holds one definition (a mapping), a list of them, or ``{"measures": [...]}``. Custom
scorers can be named as ``"module:function"``; they are imported only when a score is computed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from coevidence.exceptions import MeasureError
from coevidence.schemas.measure import MeasureDefinition

__all__ = ["load_measures", "measures_from_data"]


def measures_from_data(data: Any, source: str = "measure file") -> list[MeasureDefinition]:
    """Validate already-parsed data (mapping, list, or ``{"measures": [...]}``).

    Raises
    ------
    MeasureError
        One error listing every invalid field of every definition (``row`` = position in the
        file, ``column`` = field path).

    Examples
    --------
    >>> [m.id for m in measures_from_data({"id": "x", "response_min": 1, "response_max": 5,
    ...     "items": ["a", "b"]})]
    ['x']
    """
    if isinstance(data, dict) and "measures" in data and "id" not in data:
        data = data["measures"]
    records: Iterable[Any] = [data] if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise MeasureError(
            pd.DataFrame([{"table": source, "row": None, "column": None, "value": None,
                           "rule": "expected a mapping, a list of mappings or {measures: [...]}"}]),
            what=source,
        )
    out: list[MeasureDefinition] = []
    failures = []
    for i, rec in enumerate(records):
        try:
            out.append(MeasureDefinition.model_validate(rec))
        except ValidationError as exc:
            for err in exc.errors():
                failures.append({
                    "table": source,
                    "row": i,
                    "column": ".".join(str(p) for p in err["loc"]) or None,
                    "value": _short(err.get("input")),
                    "rule": err["msg"],
                })
    if failures:
        raise MeasureError(pd.DataFrame(failures), what=source)
    return out


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 60 else text[:57] + "..."


def load_measures(path: str | Path) -> list[MeasureDefinition]:
    """Load measure definitions from a ``.yaml``/``.yml`` or ``.json`` file.

    Parameters
    ----------
    path : str or Path
        The file. YAML is parsed with ``yaml.safe_load`` (no arbitrary objects).

    Returns
    -------
    list of MeasureDefinition

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.yaml"
    >>> _ = p.write_text("id: mine\\nresponse_min: 0\\nresponse_max: 4\\nitems: [a, b, c]\\n")
    >>> load_measures(p)[0].items
    ('a', 'b', 'c')
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise MeasureError(
                pd.DataFrame([{"table": str(p), "row": None, "column": None, "value": suffix,
                               "rule": "measure files must end in .yaml, .yml or .json"}]),
                what=str(p),
            )
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise MeasureError(
            pd.DataFrame([{"table": str(p), "row": None, "column": None, "value": None,
                           "rule": f"cannot parse: {exc}"}]),
            what=str(p),
        ) from exc
    return measures_from_data(data, source=str(p))
