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

Package rules checked on read (each broken rule is a failure naming ``datapackage.json`` or the
resource): the descriptor is a regular JSON file of bounded size and nesting; it lists
resources; each has a known, unique name and a relative path inside the package folder to a
regular file (no absolute paths, ``..``, links out of the folder, devices or pipes) no larger
than ``max_resource_bytes``; the required tables are present; each table has the row count the
descriptor records (and, with ``verify_hashes=True``, its sha256). A measure that names a custom
scorer is refused unless ``trust_scorers=True``. Values in messages are bounded snippets.

Writing is atomic: a temporary folder beside the target is swapped in when complete.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import stat
import sys
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from coevidence.data._rows import date_fields
from coevidence.data.frames import snippet
from coevidence.data.tables import METADATA_TABLES, OBSERVATION_TABLES
from coevidence.exceptions import CoevidenceError, MissingExtraError, StudyValidationError

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


#: Largest resource file :func:`read_study` opens (bytes); larger files are reported, not read.
MAX_RESOURCE_BYTES = 2 * 1024**3
#: Largest ``datapackage.json`` :func:`read_study` parses (bytes).
MAX_DESCRIPTOR_BYTES = 64 * 1024**2
#: Deepest nesting of lists/objects accepted in a descriptor.
MAX_DEPTH = 64
_DESCRIPTOR = "datapackage.json"
_EXTERNAL = (".xlsx", ".xlsm", ".xls", ".dta", ".sav", ".zsav")


def write_study(study: Study, path: str | Path, *, format: Literal["csv", "csv.gz", "parquet"] = "csv") -> Path:
    """Write ``study`` to the folder ``path`` (created if needed) as a Frictionless Data Package.

    The write is atomic: the package is written to a temporary folder beside ``path`` and
    swapped in when complete, so a write that is killed or fails (a full disk) leaves either the
    old package or the complete new one. Other files already in ``path`` are kept. Each
    resource records its row count and sha256 in the descriptor; :func:`read_study` checks them.

    Parameters
    ----------
    study : Study
    path : str or Path
        Target folder; an existing package there is replaced.
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
    import shutil
    import tempfile

    if format not in ("csv", "csv.gz", "parquet"):
        raise ValueError(f"format must be 'csv', 'csv.gz' or 'parquet', got {format!r}")
    if format == "parquet":
        _require_pyarrow()
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} exists and is not a folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    _recover(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.writing-", dir=root.parent))
    try:
        mode = root.stat().st_mode & 0o7777 if root.is_dir() else 0o777 & ~_umask()
        os.chmod(tmp, mode)
        written = _write_into(study, tmp, format)
        if root.is_dir():  # keep the user's other files
            for entry in root.iterdir():
                if entry.name not in written and not (tmp / entry.name).exists():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.copytree(entry, tmp / entry.name, symlinks=True)
                    else:
                        shutil.copy2(entry, tmp / entry.name, follow_symlinks=False)
        _fsync_dir(tmp)
        _swap_in(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / _DESCRIPTOR


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_into(study: Study, root: Path, format: str) -> set[str]:
    frames = study.to_frames()
    resources = []
    for name, model in METADATA_TABLES.items():
        file = f"{name}.csv"
        _write_csv(frames[name], root / file)
        resources.append({"name": name, "path": file, "profile": "tabular-data-resource",
                          "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
                          "schema": _model_schema(model), **_stamp(root / file, frames[name])})
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
        res.update(_stamp(root / file, frame))
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
    out = root / _DESCRIPTOR
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return {_DESCRIPTOR, *(r["path"] for r in resources)}


def _stamp(file: Path, frame: pd.DataFrame) -> dict[str, Any]:
    """fsync ``file``; its size, sha256 and the table's row count for the descriptor."""
    with open(file, "rb+") as fh:
        os.fsync(fh.fileno())
    return {"bytes": file.stat().st_size, "hash": f"sha256:{_sha256(file)}",
            "coevidence": {"rows": len(frame)}}


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _backup_of(root: Path) -> Path:
    return root.parent / f".{root.name}.replaced"


def _recover(root: Path) -> None:
    """Finish a swap that was interrupted between its two renames (non-Linux fallback)."""
    import shutil

    backup = _backup_of(root)
    if backup.is_dir():
        if not root.exists():
            os.replace(backup, root)
        else:
            shutil.rmtree(backup, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False


def _swap_in(tmp: Path, root: Path) -> None:
    import shutil

    if not root.exists():
        os.replace(tmp, root)  # atomic
        _fsync_dir(root.parent)
        return
    if _exchange(tmp, root):  # atomic: root is now the new package, tmp the old one
        _fsync_dir(root.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    backup = _backup_of(root)  # fallback: two renames; an interruption is finished by _recover
    shutil.rmtree(backup, ignore_errors=True)
    os.replace(root, backup)
    os.replace(tmp, root)
    _fsync_dir(root.parent)
    shutil.rmtree(backup, ignore_errors=True)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    # gzip with mtime 0: the same study always writes the same bytes
    compression = {"method": "gzip", "mtime": 0} if path.suffix == ".gz" else None
    frame.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.17g",
                 lineterminator="\n", compression=compression)


def read_study(path: str | Path, *, trust_scorers: bool = False, verify_hashes: bool = False,
               max_resource_bytes: int = MAX_RESOURCE_BYTES) -> Study:
    """Read and validate a study written by :meth:`Study.write` (a Data Package folder).

    Parameters
    ----------
    path : str or Path
        The folder, or its ``datapackage.json``.
    trust_scorers : bool, default False
        Allow measure definitions in the descriptor to name a custom scorer
        (``"module:function"``), which imports that module when scores are computed. Off by
        default: data never makes code run; such a package is reported as invalid.
    verify_hashes : bool, default False
        Also check each file against the sha256 recorded when it was written (a file edited by
        hand since then fails). The row counts recorded are always checked.
    max_resource_bytes : int
        Resource files larger than this are reported, not read.

    Raises
    ------
    StudyValidationError
        Every problem in every table, with table, row, column and value; problems of the
        package itself (the descriptor, its resources and their files) name the table
        ``datapackage.json`` or the resource.

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
    desc_path = root / _DESCRIPTOR
    if not desc_path.exists():
        raise CoevidenceError(f"{root} is not a study data package: no datapackage.json")
    problems: list[dict[str, Any]] = []

    def fail(table: str, rule: str, column: str | None = None, value: Any = None,
             row: int | None = None) -> None:
        problems.append({"table": table, "row": row, "column": column, "value": snippet(value),
                         "rule": rule})

    descriptor = _load_descriptor(desc_path, root, fail)
    if descriptor is None:
        raise StudyValidationError(pd.DataFrame(problems), what=str(desc_path))
    meta = descriptor.get("coevidence")
    if not isinstance(meta, dict) or "design" not in meta:
        raise CoevidenceError(f"{desc_path} has no 'coevidence' property with the study design")
    measures = meta.get("measures", [])
    if not isinstance(measures, list):
        fail(_DESCRIPTOR, "must be a list of measure definitions", "coevidence.measures",
             type(measures).__name__)
        measures = []
    measures = _guard_scorers(measures, trust_scorers, fail)
    frames: dict[str, pd.DataFrame] = {}
    for name, res, file in _resources(descriptor, root, max_resource_bytes, verify_hashes, fail):
        frame = _read_resource(name, res, file, fail)
        if frame is not None:
            frames[name] = frame
    try:
        study = Study.from_frames(meta["design"], measures=measures, **frames)
    except StudyValidationError as exc:
        if problems:
            raise StudyValidationError(
                pd.concat([pd.DataFrame(problems), exc.failures], ignore_index=True)) from None
        raise
    if problems:
        raise StudyValidationError(pd.DataFrame(problems))
    return study


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of parsed JSON/YAML (stops counting past ``limit``)."""
    depth, level = 0, [obj]
    while level and depth <= limit:
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        if not nxt:
            break
        depth += 1
        level = nxt
    return depth


def _load_descriptor(desc_path: Path, root: Path, fail: Any) -> dict[str, Any] | None:
    if not _regular_inside(desc_path, root):
        fail(_DESCRIPTOR, "must be a regular file inside the package folder")
        return None
    size = desc_path.stat().st_size
    if size > MAX_DESCRIPTOR_BYTES:
        fail(_DESCRIPTOR, f"is {size:,} bytes, over the limit of {MAX_DESCRIPTOR_BYTES:,}")
        return None
    try:
        descriptor = json.loads(desc_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        fail(_DESCRIPTOR, f"is not UTF-8 text ({exc.reason} at byte {exc.start})")
        return None
    except json.JSONDecodeError as exc:
        fail(_DESCRIPTOR, f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        return None
    except RecursionError:
        fail(_DESCRIPTOR, f"is nested too deeply (over {MAX_DEPTH} levels)")
        return None
    if not isinstance(descriptor, dict):
        fail(_DESCRIPTOR, "must be a JSON object", value=type(descriptor).__name__)
        return None
    if _depth(descriptor, MAX_DEPTH) > MAX_DEPTH:
        fail(_DESCRIPTOR, f"is nested too deeply (over {MAX_DEPTH} levels)")
        return None
    return descriptor


def _guard_scorers(measures: list[Any], trust: bool, fail: Any) -> list[Any]:
    """Refuse custom scorers named in data unless the caller trusts them (no code from data)."""
    if trust:
        return measures
    out = []
    for i, m in enumerate(measures):
        if isinstance(m, dict) and m.get("scorer") is not None:
            fail(_DESCRIPTOR, "a custom scorer named in a data file is not imported; pass "
                 "read_study(..., trust_scorers=True) if you trust this package",
                 "coevidence.measures.scorer", m.get("scorer"), row=i)
            continue
        out.append(m)
    return out


def _regular_inside(file: Path, root: Path) -> bool:
    try:
        real_root = root.resolve(strict=True)
        real = file.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    if real != real_root and real_root not in real.parents:
        return False
    try:
        return stat.S_ISREG(os.stat(real).st_mode)
    except OSError:
        return False


def _resources(descriptor: dict[str, Any], root: Path, max_bytes: int, verify_hashes: bool,
               fail: Any) -> list[tuple[str, dict[str, Any], Path]]:
    """The resources to read, after checking every package rule."""
    resources = descriptor.get("resources")
    if not isinstance(resources, list) or not resources:
        fail(_DESCRIPTOR, "has no resources (a list of the study's tables)", "resources",
             type(resources).__name__ if resources is not None else None)
        return []
    known = {*METADATA_TABLES, *OBSERVATION_TABLES}
    seen: dict[str, int] = {}
    out = []
    for i, res in enumerate(resources):
        if not isinstance(res, dict):
            fail(_DESCRIPTOR, "a resource must be a JSON object", f"resources[{i}]",
                 type(res).__name__)
            continue
        name = res.get("name")
        where = f"resources[{i}]"
        if not isinstance(name, str) or not name:
            fail(_DESCRIPTOR, "resource has no name", f"{where}.name", name)
            continue
        if name not in known:
            fail(_DESCRIPTOR, f"unknown resource (the tables are {sorted(known)})",
                 f"{where}.name", name)
            continue
        if name in seen:
            fail(_DESCRIPTOR, f"duplicate resource (also resources[{seen[name]}])",
                 f"{where}.name", name)
            continue
        seen[name] = i
        rel = res.get("path")
        if not isinstance(rel, str) or not rel:
            fail(name, "resource has no path (a file name in the package folder)", "path", rel)
            continue
        pure = PurePosixPath(rel.replace("\\", "/"))
        if pure.is_absolute() or Path(rel).is_absolute() or ".." in pure.parts or "\x00" in rel:
            fail(name, "resource path must be relative, inside the package folder", "path", rel)
            continue
        file = root / rel
        if not file.exists() and not file.is_symlink():
            fail(name, "resource file does not exist", "path", rel)
            continue
        if not _regular_inside(file, root):
            fail(name, "resource path must be a regular file inside the package folder "
                 "(not a link out of it, a device or a pipe)", "path", rel)
            continue
        size = file.stat().st_size
        if size > max_bytes:
            fail(name, f"resource file is {size:,} bytes, over the limit of {max_bytes:,}",
                 "path", rel)
            continue
        expected = res.get("hash")
        if expected is not None and verify_hashes:
            algo, _, digest = str(expected).rpartition(":")
            if algo not in ("", "sha256") or (algo == "" and len(digest) != 64):
                pass  # another algorithm (e.g. a tool's md5): not checked
            elif _sha256(file) != digest.lower():
                fail(name, "file does not match the sha256 in the descriptor (changed or "
                     "truncated after it was written)", "path", rel)
                continue
        out.append((name, res, file))
    missing = [n for n in (*METADATA_TABLES, *OBSERVATION_TABLES) if n not in seen]
    for name in missing:
        if name in _REQUIRED_RESOURCES:
            fail(_DESCRIPTOR, "required resource is missing", "resources", name)
    return out


#: Resources a study package must have (the others may be left out when empty).
_REQUIRED_RESOURCES = ("providers", "organizations", "respondents", "engagements")


def _read_resource(name: str, res: dict[str, Any], file: Path, fail: Any) -> pd.DataFrame | None:
    suffix = file.suffix.lower()
    try:
        if res.get("format") == "parquet" or suffix in (".parquet", ".pq"):
            _require_pyarrow()
            frame = pd.read_parquet(file)
        elif suffix in _EXTERNAL:
            from coevidence.data.readers import read_table

            # value labels become their text (e.g. SPSS 1 -> "push"), as the schemas expect
            labelled = suffix in (".dta", ".sav", ".zsav")
            frame = _labels_as_text(read_table(file, apply_value_labels=labelled))
        else:
            frame = pd.read_csv(file, dtype=_csv_dtypes(res), keep_default_na=True,
                                na_values=[""], compression="infer")
            if not frame.index.equals(pd.RangeIndex(len(frame))):
                # pandas took the extra leading fields of wider rows as the index
                fail(name, f"rows have more fields than the header ({frame.shape[1]} columns)",
                     "path", res.get("path"))
                return None
            _check_delimiter(name, frame, fail)
    except MissingExtraError:
        raise
    except pd.errors.EmptyDataError:
        fail(name, "file is empty (not even a header row)", "path", res.get("path"))
        return None
    except (ValueError, TypeError, OSError, UnicodeError, EOFError, ImportError, KeyError,
            IndexError, AttributeError, OverflowError, MemoryError) as exc:
        fail(name, f"cannot be read: {type(exc).__name__}: {snippet(_first_line(exc))}", "path",
             res.get("path"))
        return None
    except Exception as exc:  # noqa: BLE001 - a reader's own error classes (pyarrow, pyreadstat)
        fail(name, f"cannot be read: {type(exc).__name__}: {snippet(_first_line(exc))}", "path",
             res.get("path"))
        return None
    rows = (res.get("coevidence") or {}).get("rows") if isinstance(res.get("coevidence"), dict) \
        else None
    if isinstance(rows, int) and not isinstance(rows, bool) and rows != len(frame):
        fail(name, f"has {len(frame)} rows but the descriptor records {rows}", "path",
             res.get("path"))
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def _check_delimiter(name: str, frame: pd.DataFrame, fail: Any) -> None:
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        for sep in (";", "\t", "|"):
            if sep in header:
                fail(name, f"the file seems to be delimited by {sep!r}; study tables use ','",
                     None, header)
                return


def _labels_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    cats = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    return frame.astype({c: object for c in cats}) if cats else frame


def _csv_dtypes(resource: dict[str, Any]) -> dict[str, Any]:
    """Read string columns as strings (ids like "007" must keep their zeros)."""
    fields = resource.get("schema", {}).get("fields", [])
    return {f["name"]: "str" for f in fields if f.get("type") == "string"}
