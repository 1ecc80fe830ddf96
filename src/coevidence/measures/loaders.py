"""Read measure definitions from YAML or JSON (YAML with ``yaml.safe_load``: no code runs).

A file holds one definition (a mapping), a list of them, or ``{"measures": [...]}``. Custom
scorers can be named as ``"module:function"``, but data never makes code run: a file that names
one is refused unless you pass ``load_measures(..., trust_scorers=True)`` (the module is then
imported when a score is computed). Parsing is guarded: files over :data:`MAX_BYTES`, YAML alias
("billion laughs") bombs and nesting deeper than :data:`MAX_DEPTH` are refused quickly.
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

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "load_measures", "measures_from_data",
           "safe_load_text"]

#: Largest measure file read (bytes).
MAX_BYTES = 16 * 1024**2
#: Deepest nesting of mappings/lists accepted.
MAX_DEPTH = 64
#: Most values a parsed file may expand to (each use of a YAML alias counts again).
MAX_NODES = 1_000_000


class _LimitError(ValueError):
    pass


def _check_size(data: Any) -> None:
    """Walk ``data`` counting every value reached (aliases again each time); stop at the caps."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    seen = 0
    while stack:
        obj, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise _LimitError(f"expands to more than {MAX_NODES:,} values (a YAML alias bomb?)")
        if depth > MAX_DEPTH:
            raise _LimitError(f"is nested deeper than {MAX_DEPTH} levels")
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in obj.values())
            stack.extend((k, depth + 1) for k in obj if isinstance(k, tuple))
        elif isinstance(obj, (list, tuple)):
            stack.extend((v, depth + 1) for v in obj)


class _GuardedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses alias bombs and deep nesting while composing."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: ANN401
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > 1000:
                raise _LimitError("uses more than 1,000 YAML aliases")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _LimitError(f"is nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def safe_load_text(text: str, kind: str) -> Any:
    """Parse YAML (``kind="yaml"``, safe: no objects, no bombs) or JSON text, with the limits.

    Raises ``ValueError`` (a guard) or the parser's own error.
    """
    if len(text) > MAX_BYTES:
        raise _LimitError(f"is larger than {MAX_BYTES:,} characters")
    try:
        data = yaml.load(text, Loader=_GuardedLoader) if kind == "yaml" else json.loads(text)  # noqa: S506
    except RecursionError as exc:
        raise _LimitError(f"is nested deeper than {MAX_DEPTH} levels") from exc
    _check_size(data)
    return data



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


def load_measures(path: str | Path, *, trust_scorers: bool = False) -> list[MeasureDefinition]:
    """Load measure definitions from a ``.yaml``/``.yml`` or ``.json`` file.

    Parameters
    ----------
    path : str or Path
        The file. YAML is parsed safely (no arbitrary objects, no alias bombs).
    trust_scorers : bool, default False
        Allow definitions that name a custom scorer ``"module:function"`` (imported when a
        score is computed). Without it such a file raises :class:`MeasureError`.

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

    def refuse(rule: str, value: Any = None) -> MeasureError:
        return MeasureError(
            pd.DataFrame([{"table": str(p), "row": None, "column": None, "value": value,
                           "rule": rule}]),
            what=str(p),
        )

    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise refuse("measure files must end in .yaml, .yml or .json", suffix)
    if p.is_file() and p.stat().st_size > MAX_BYTES:
        raise refuse(f"is larger than {MAX_BYTES:,} bytes")
    if p.exists() and not p.is_file():
        raise refuse("is not a regular file")
    try:
        with open(p, encoding="utf-8") as fh:
            text = fh.read(MAX_BYTES + 1)
    except UnicodeDecodeError as exc:
        raise refuse(f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        data = safe_load_text(text, "json" if suffix == ".json" else "yaml")
    except _LimitError as exc:
        raise refuse(str(exc)) from exc
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise refuse(f"cannot parse: {first[:200]}") from exc
    if not trust_scorers:
        named = [i for i, rec in enumerate(_records_of(data))
                 if isinstance(rec, dict) and isinstance(rec.get("scorer"), str)]
        if named:
            raise MeasureError(
                pd.DataFrame([{"table": str(p), "row": i, "column": "scorer",
                               "value": _short(_records_of(data)[i]["scorer"]),
                               "rule": "a custom scorer named in a data file is not imported; "
                                       "pass load_measures(..., trust_scorers=True) if you "
                                       "trust this file"} for i in named]),
                what=str(p),
            )
    return measures_from_data(data, source=str(p))


def _records_of(data: Any) -> list[Any]:
    if isinstance(data, dict) and "measures" in data and "id" not in data:
        data = data["measures"]
    if isinstance(data, dict):
        return [data]
    return data if isinstance(data, list) else []
