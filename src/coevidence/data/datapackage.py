"""Read and write a study as a Frictionless Data Package folder.

Layout::

    study/
      datapackage.json        name, resources with Table Schemas, and a "coevidence" property
                              holding the design and the measure definitions
      providers.csv  organizations.csv  respondents.csv  engagements.csv
      engagement_phases.csv  encounters.csv  components.csv  adaptations.csv
      agreements.csv  relationship_ratings.csv
      responses.csv[.gz] | responses.parquet     scores.csv[.gz] | scores.parquet

Resources written by other tools may also point to Excel (``.xlsx``), Stata (``.dta``) or SPSS
(``.sav``) files; they are read with :func:`coevidence.read_table` (``io`` extra), SPSS/Stata value
labels turned into their text.

Metadata tables are always CSV (small, diff-able). Observation tables are CSV (optionally
gzip-compressed) or Parquet (``pyarrow`` from the ``io`` extra). Reading validates everything and
raises one :class:`~coevidence.exceptions.StudyValidationError` listing every problem.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from coevidence.data._rows import date_fields
from coevidence.data.tables import METADATA_TABLES, OBSERVATION_TABLES
from coevidence.exceptions import CoevidenceError, MissingExtraError
from coevidence.schemas.design import StudyDesign

if TYPE_CHECKING:  # pragma: no cover
    from coevidence.data.study import Study

__all__ = ["read_study", "write_study"]

PROFILE = "tabular-data-package"
_PY_TO_FRICTIONLESS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                       "date": "date"}


def _model_schema(model: Any) -> dict[str, Any]:
    dates = set(date_fields(model))
    fields = []
    for name, f in model.model_fields.items():
        ann = repr(f.annotation)
        if name in dates:
            ftype = "date"
        elif "bool" in ann:
            ftype = "boolean"
        elif "float" in ann:
            ftype = "number"
        elif "int" in ann and "str" not in ann:
            ftype = "integer"
        else:
            ftype = "string"
        field: dict[str, Any] = {"name": name, "type": ftype}
        if f.description:
            field["description"] = f.description
        if f.is_required():
            field["constraints"] = {"required": True}
        fields.append(field)
    return {"fields": fields}


def _has_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _require_pyarrow() -> None:
    if not _has_pyarrow():
        raise MissingExtraError("pyarrow", "io", "read and write Parquet tables")


def write_study(study: Study, path: str | Path, *, format: Literal["csv", "csv.gz", "parquet"] = "csv") -> Path:
    """Write ``study`` to the folder ``path`` (created if needed) as a Frictionless Data Package.

    Parameters
    ----------
    study : Study
    path : str or Path
        Target folder; existing table files of the same names are overwritten.
    format : {"csv", "csv.gz", "parquet"}
        Format of the observation tables (metadata tables are always CSV).

    Returns
    -------
    Path
        The ``datapackage.json`` written.

    Examples
    --------
    >>> import tempfile, coevidence as cv
    >>> study = cv.load_example_study()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = study.write(tmp)
    ...     cv.read_study(tmp) == study
    True
    """
    if format not in ("csv", "csv.gz", "parquet"):
        raise ValueError(f"format must be 'csv', 'csv.gz' or 'parquet', got {format!r}")
    if format == "parquet":
        _require_pyarrow()
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    frames = study.to_frames()
    resources = []
    for name, model in METADATA_TABLES.items():
        file = f"{name}.csv"
        _write_csv(frames[name], root / file)
        resources.append({"name": name, "path": file, "profile": "tabular-data-resource",
                          "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
                          "schema": _model_schema(model)})
    for name, spec in OBSERVATION_TABLES.items():
        frame = frames[name]
        schema = spec.frictionless_schema()
        schema["fields"] = [f for f in schema["fields"] if f["name"] in frame.columns]
        res: dict[str, Any] = {"name": name, "profile": "tabular-data-resource", "schema": schema}
        if format == "parquet":
            file = f"{name}.parquet"
            frame.to_parquet(root / file, index=False)
            res.update(path=file, format="parquet")
        else:
            file = f"{name}.{format}"
            _write_csv(frame, root / file)
            res.update(path=file, format="csv", mediatype="text/csv", encoding="utf-8")
            if format == "csv.gz":
                res["compression"] = "gz"
        resources.append(res)
    descriptor = {
        "profile": PROFILE,
        "name": study.design.id.lower().replace("_", "-"),
        "title": study.design.title,
        "resources": resources,
        "coevidence": {
            "version": 1,
            "design": study.design.model_dump(mode="json"),
            "measures": [m.model_dump(mode="json") for m in study.measures.values()],
        },
    }
    out = root / "datapackage.json"
    out.write_text(json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    # gzip with mtime 0: the same study always writes the same bytes
    compression = {"method": "gzip", "mtime": 0} if path.suffix == ".gz" else None
    frame.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.17g",
                 lineterminator="\n", compression=compression)


def read_study(path: str | Path) -> Study:
    """Read and validate a study written by :meth:`Study.write` (a Data Package folder).

    Parameters
    ----------
    path : str or Path
        The folder, or its ``datapackage.json``.

    Raises
    ------
    StudyValidationError
        Every problem in every table, with table, row, column and value.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.datasets import example_study_path
    >>> cv.read_study(example_study_path()).design.id
    'example'
    """
    from coevidence.data.study import Study

    root = Path(path)
    if root.is_file():
        root = root.parent
    desc_path = root / "datapackage.json"
    if not desc_path.exists():
        raise CoevidenceError(f"{root} is not a study data package: no datapackage.json")
    descriptor = json.loads(desc_path.read_text(encoding="utf-8"))
    meta = descriptor.get("coevidence")
    if not isinstance(meta, dict) or "design" not in meta:
        raise CoevidenceError(f"{desc_path} has no 'coevidence' property with the study design")
    frames: dict[str, pd.DataFrame] = {}
    for res in descriptor.get("resources", []):
        name = res.get("name")
        if name not in METADATA_TABLES and name not in OBSERVATION_TABLES:
            continue
        file = root / res["path"]
        if res.get("format") == "parquet" or file.suffix == ".parquet":
            _require_pyarrow()
            frames[name] = pd.read_parquet(file)
        elif file.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".dta", ".sav", ".zsav"):
            from coevidence.data.readers import read_table

            # value labels become their text (e.g. SPSS 1 -> "push"), as the schemas expect
            labelled = file.suffix.lower() in (".dta", ".sav", ".zsav")
            frames[name] = _labels_as_text(read_table(file, apply_value_labels=labelled))
        else:
            frames[name] = pd.read_csv(file, dtype=_csv_dtypes(res), keep_default_na=True,
                                       na_values=[""], compression="infer")
    return Study.from_frames(StudyDesign.model_validate(meta["design"]),
                             measures=meta.get("measures", []), **frames)


def _labels_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    cats = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    return frame.astype({c: object for c in cats}) if cats else frame


def _csv_dtypes(resource: dict[str, Any]) -> dict[str, Any]:
    """Read string columns as strings (ids like "007" must keep their zeros)."""
    fields = resource.get("schema", {}).get("fields", [])
    return {f["name"]: "str" for f in fields if f.get("type") == "string"}
