"""Read one table from the file a researcher already has: CSV/TSV, Parquet, Excel, Stata, SPSS.

:func:`read_table` picks the reader from the file's extension and returns a plain
:class:`pandas.DataFrame`. Formats other than CSV/TSV need the ``io`` extra
(``pip install 'coevidence[io]'``); when its package is missing the error says so
(:class:`~coevidence.exceptions.MissingExtraError`).

Stata and SPSS files keep their metadata in ``DataFrame.attrs``:

``attrs["value_labels"]``
    ``{column: {code: label}}`` for every labelled column (SPSS codes are floats, Stata codes
    integers, exactly as stored in the file).
``attrs["column_labels"]``
    ``{column: label}`` for every column that has a variable label.

Identifier columns (named ``id`` or ending in ``_id``) of CSV, TSV and Excel files are read as
text by default, so ``"007"`` stays ``"007"`` instead of becoming the number 7 (which would no
longer match the id in another table); pass ``ids_as_text=False`` to let pandas guess, or
``dtype=`` to choose per column (your choice wins).

With ``apply_value_labels=True`` labelled columns become :class:`pandas.Categorical` columns
whose categories are the labels, in code order; a code without a label becomes the category
of its value written as text (``2.0`` → ``"2"``), as ``haven::as_factor()`` does in R.
"""

from __future__ import annotations

import importlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from coevidence.exceptions import CoevidenceError, MissingExtraError, TableReadError

__all__ = ["MAX_TABLE_BYTES", "SUFFIXES", "FileFormat", "read_table"]

#: Files larger than this are refused by :func:`read_table` unless ``max_bytes`` says otherwise
#: (the limit :func:`~coevidence.read_study` applies to each resource, too).
MAX_TABLE_BYTES = 2 * 1024**3

#: How much of a reader's error message a :class:`TableReadError` repeats.
_MESSAGE_CHARS = 200

FileFormat = Literal["csv", "tsv", "parquet", "excel", "xls", "stata", "spss"]

#: File extension (lower case) -> format read by :func:`read_table`.
SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "xls",
    ".dta": "stata",
    ".sav": "spss",
    ".zsav": "spss",
}

#: Compression suffixes pandas understands for delimited text (``data.csv.gz``).
_COMPRESSION = (".gz", ".bz2", ".xz", ".zip", ".zst")

#: format -> (package to import, what it is needed for)
_OPTIONAL: dict[str, tuple[str, str]] = {
    "parquet": ("pyarrow", "read Parquet files"),
    "excel": ("openpyxl", "read Excel .xlsx files"),
    "xls": ("xlrd", "read legacy Excel .xls files"),
    "stata": ("pyreadstat", "read Stata .dta files with their value labels"),
    "spss": ("pyreadstat", "read SPSS .sav files with their value labels"),
}


def read_table(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    file_format: FileFormat | None = None,
    apply_value_labels: bool = False,
    ids_as_text: bool = True,
    max_bytes: int | None = MAX_TABLE_BYTES,
    **kwargs: Any,
) -> pd.DataFrame:
    """Read one table from a CSV/TSV, Parquet, Excel, Stata ``.dta`` or SPSS ``.sav`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Its extension chooses the reader: ``.csv``, ``.tsv``/``.tab`` (also
        compressed, e.g. ``.csv.gz``), ``.parquet``/``.pq``, ``.xlsx``/``.xlsm``, ``.xls``,
        ``.dta``, ``.sav``/``.zsav``.
    sheet : str or int, optional
        Excel only: the sheet name or 0-based position. Default: the first sheet.
    file_format : {"csv", "tsv", "parquet", "excel", "xls", "stata", "spss"}, optional
        Read the file as this format whatever its extension.
    apply_value_labels : bool, default False
        Stata/SPSS only: turn labelled columns into categoricals of their labels (see the
        module notes). The labels are kept in ``attrs["value_labels"]`` either way.
    ids_as_text : bool, default True
        CSV/TSV/Excel only: read columns named ``id`` or ``*_id`` as text (keeps leading
        zeros). A ``dtype`` you pass for a column takes precedence.
    max_bytes : int or None, default :data:`MAX_TABLE_BYTES` (2 GiB)
        Refuse larger files (``None``: no limit).
    **kwargs
        Passed to the underlying reader: :func:`pandas.read_csv`,
        :func:`pandas.read_parquet`, :func:`pandas.read_excel`, ``pyreadstat.read_dta`` or
        ``pyreadstat.read_sav`` (e.g. ``usecols``, ``dtype``, ``user_missing=True``).

    Returns
    -------
    pandas.DataFrame
        Every row of the file. SPSS numbers are always float64 (the format stores doubles);
        SPSS user-defined missing values become NaN unless ``user_missing=True`` is passed.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    coevidence.exceptions.TableReadError
        The path is not a regular file (a directory, a pipe, a device), the file is larger
        than ``max_bytes``, or it cannot be parsed as its format: empty, malformed rows, a bad
        text encoding, a corrupt or truncated (compressed) file, the sheet does not exist (the
        message lists the sheets). The message names the file and the problem and repeats at
        most a short snippet of the reader's message, never the file's contents. A subclass
        of :class:`ValueError`.
    ValueError
        The extension is not supported, or an option does not apply to the format (e.g.
        ``sheet`` for a non-Excel file).
    coevidence.exceptions.MissingExtraError
        The package for this format is missing; the message names the ``io`` extra.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> from coevidence.data.readers import read_table
    >>> tmp = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
    >>> pd.DataFrame({"org_id": ["o1", "o2"], "wave": [1, 1]}).to_csv(tmp, index=False)
    >>> read_table(tmp)
      org_id  wave
    0     o1     1
    1     o2     1
    """
    path = Path(path)
    fmt = file_format if file_format is not None else _format_of(path)
    if fmt not in _OPTIONAL and fmt not in ("csv", "tsv"):
        raise ValueError(
            f"file_format must be one of {sorted({*SUFFIXES.values()})}; got {fmt!r}"
        )
    _check_file(path, max_bytes)
    if sheet is not None and fmt not in ("excel", "xls"):
        raise ValueError(
            f"sheet={sheet!r} only applies to Excel files; {str(path)!r} is read as {fmt}"
        )
    if not ids_as_text and fmt not in ("csv", "tsv", "excel", "xls"):
        raise ValueError(
            f"ids_as_text=False only applies to CSV/TSV/Excel files; {str(path)!r} is read as "
            f"{fmt}, whose columns carry their own types"
        )
    if apply_value_labels and fmt not in ("stata", "spss"):
        raise ValueError(
            "apply_value_labels=True only applies to Stata .dta and SPSS .sav files; "
            f"{str(path)!r} is read as {fmt}"
        )
    module = _require(*_OPTIONAL[fmt]) if fmt in _OPTIONAL else None
    try:
        return _read(path, fmt, module, sheet=sheet,
                     apply_value_labels=apply_value_labels, ids_as_text=ids_as_text, **kwargs)
    except CoevidenceError:
        raise
    except TypeError as exc:
        if "keyword argument" in str(exc):
            raise  # a wrong option, not a bad file
        raise TableReadError(path, _problem(fmt, exc)) from exc
    except pd.errors.EmptyDataError as exc:
        raise TableReadError(path, "the file is empty (not even a header row)") from exc
    except Exception as exc:  # parsers raise many classes of their own
        raise TableReadError(path, _problem(fmt, exc)) from exc


def _check_file(path: Path, max_bytes: int | None) -> None:
    """A missing path, or anything but a regular file of at most ``max_bytes``, is refused
    before it is opened (a pipe or a device would block or never end)."""
    try:
        info = os.stat(path)  # follows links: a link to /dev/zero is a device
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file: {str(path)!r}") from None
    except OSError as exc:
        raise TableReadError(path, f"{type(exc).__name__}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise TableReadError(path, "it is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise TableReadError(path, "not a regular file (a pipe, a socket or a device)")
    if max_bytes is not None and info.st_size > max_bytes:
        raise TableReadError(
            path, f"the file is {info.st_size:,} bytes, over the limit of {max_bytes:,} "
            "(pass max_bytes= to raise it)")


def _problem(fmt: str, exc: BaseException) -> str:
    """What went wrong, in one bounded line (the reader's message may quote the file)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > _MESSAGE_CHARS:
        text = text[: _MESSAGE_CHARS - 3] + "..."
    what = "a bad text encoding (save the file as UTF-8, or pass encoding=...)" if isinstance(
        exc, UnicodeError) else f"not readable as {fmt}"
    return f"{what}: {type(exc).__name__}: {text}" if text else f"{what}: {type(exc).__name__}"


def _read(path: Path, fmt: str, module: Any, *, sheet: str | int | None,
          apply_value_labels: bool, ids_as_text: bool, **kwargs: Any) -> pd.DataFrame:
    if fmt in ("csv", "tsv"):
        kwargs = {"sep": "," if fmt == "csv" else "\t", **kwargs}
        if ids_as_text:
            header = pd.read_csv(path, **{**_header_kwargs(kwargs), "nrows": 0})
            kwargs = _with_id_dtypes(header.columns, kwargs)
        frame = pd.read_csv(path, **kwargs)
        if "index_col" not in kwargs and isinstance(frame, pd.DataFrame) and not \
                frame.index.equals(pd.RangeIndex(len(frame))):
            # pandas takes the extra leading fields of such rows as the index: values shift
            raise TableReadError(path, "rows have more fields than the header "
                                 f"({frame.shape[1]} columns); check the delimiter and quotes")
        return frame
    if fmt == "parquet":
        return pd.read_parquet(path, engine="pyarrow", **kwargs)
    if fmt in ("excel", "xls"):
        engine = "openpyxl" if fmt == "excel" else "xlrd"
        return _read_excel(path, sheet=sheet, engine=engine, ids_as_text=ids_as_text, **kwargs)
    reader = module.read_dta if fmt == "stata" else module.read_sav
    frame, meta = reader(str(path), **kwargs)
    return _with_labels(frame, meta, apply=apply_value_labels)


def _format_of(path: Path) -> FileFormat:
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSION and suffixes[-2] in (".csv", ".tsv"):
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in SUFFIXES:
        known = ", ".join(sorted(SUFFIXES))
        raise ValueError(
            f"Cannot tell the format of {str(path)!r} from its extension {suffix!r}; "
            f"supported: {known} (or pass file_format=...)"
        )
    return SUFFIXES[suffix]


def _require(package: str, purpose: str) -> Any:
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise MissingExtraError(package, "io", purpose) from exc


def _is_id(column: object) -> bool:
    return isinstance(column, str) and (column == "id" or column.endswith("_id"))


#: read_csv/read_excel options that do not affect which columns a file has
_NOT_FOR_HEADER = ("dtype", "converters", "parse_dates", "date_format", "nrows", "chunksize",
                   "iterator", "na_values", "keep_default_na", "true_values", "false_values")


def _header_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in _NOT_FOR_HEADER}


def _with_id_dtypes(columns: pd.Index, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Add ``dtype=str`` for id columns unless the caller set dtypes themselves."""
    given = kwargs.get("dtype")
    if given is not None and not isinstance(given, Mapping):
        return kwargs  # one dtype for every column: the caller decided
    ids = {c: "str" for c in columns if _is_id(c)}
    if not ids:
        return kwargs
    return {**kwargs, "dtype": {**ids, **dict(given or {})}}


def _read_excel(
    path: Path, *, sheet: str | int | None, engine: str, ids_as_text: bool, **kwargs: Any
) -> pd.DataFrame:
    sheet_name = 0 if sheet is None else sheet
    with pd.ExcelFile(path, engine=engine) as book:
        names = list(book.sheet_names)
        if isinstance(sheet_name, str) and sheet_name not in names:
            raise TableReadError(path, f"it has no sheet {sheet_name!r}; its sheets are {names}")
        if isinstance(sheet_name, int) and not -len(names) <= sheet_name < len(names):
            raise TableReadError(
                path, f"it has {len(names)} sheet(s) {names}; "
                f"sheet={sheet_name} is out of range"
            )
        if ids_as_text:
            header = pd.read_excel(book, sheet_name=sheet_name, **_header_kwargs(kwargs), nrows=0)
            kwargs = _with_id_dtypes(header.columns, kwargs)
        return pd.read_excel(book, sheet_name=sheet_name, **kwargs)


def _with_labels(frame: pd.DataFrame, meta: Any, *, apply: bool) -> pd.DataFrame:
    value_labels = {
        col: dict(labels) for col, labels in (meta.variable_value_labels or {}).items()
    }
    column_labels = {
        col: label for col, label in (meta.column_names_to_labels or {}).items() if label
    }
    if apply:
        frame = frame.assign(
            **{
                col: _labelled_categorical(frame[col], labels)
                for col, labels in value_labels.items()
                if col in frame.columns
            }
        )
    frame.attrs["value_labels"] = value_labels
    frame.attrs["column_labels"] = column_labels
    return frame


def _labelled_categorical(values: pd.Series, labels: Mapping[Any, str]) -> pd.Series:
    """Codes -> categorical of labels in code order; unlabelled codes keep their value as text."""
    observed = pd.unique(values.dropna())
    codes = sorted({*labels, *observed.tolist()})
    names = {code: labels.get(code, _code_text(code)) for code in codes}
    categories = list(dict.fromkeys(names[c] for c in codes))
    mapped = values.map(names)
    return pd.Series(
        pd.Categorical(mapped, categories=categories), index=values.index, name=values.name
    )


def _code_text(code: Any) -> str:
    if isinstance(code, float) and code.is_integer():
        return str(int(code))
    return str(code)
