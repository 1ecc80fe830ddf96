"""read_table reads back exactly what pandas / pyreadstat wrote, in every supported format."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from coevidence.data.readers import SUFFIXES, read_table
from coevidence.exceptions import MissingExtraError


@pytest.fixture
def scores() -> pd.DataFrame:
    """A small observation table with ints, floats (with a NaN), text and dates."""
    return pd.DataFrame(
        {
            "org_id": ["o01", "o02", "o03", "o04"],
            "wave": np.array([1, 1, 2, 2], dtype="int64"),
            "score": [3.25, np.nan, 4.0, 1.5],
            "arm": [1, 2, 1, 2],
            "date": pd.to_datetime(["2024-01-15", "2024-01-16", "2024-06-01", "2024-06-03"]),
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".csv.gz"])
def test_delimited_round_trip(tmp_path, scores, suffix):
    """CSV / TSV (also compressed) come back exactly; dates via parse_dates."""
    path = tmp_path / f"scores{suffix}"
    scores.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    got = read_table(path, parse_dates=["date"])
    assert_frame_equal(got, scores, check_dtype=False)
    assert got["wave"].dtype == "int64"
    assert got["date"].dtype.kind == "M"


def test_parquet_round_trip(tmp_path, scores):
    """Parquet keeps every value and dtype."""
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path, index=False)
    got = read_table(path)
    assert_frame_equal(got, scores)


def test_excel_round_trip_and_sheets(tmp_path, scores):
    """.xlsx: first sheet by default, others by name or position; a wrong name lists sheets."""
    path = tmp_path / "scores.xlsx"
    other = pd.DataFrame({"provider_id": ["p1", "p2"], "ta_model": ["push", "co_creation"]})
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        scores.to_excel(writer, sheet_name="scores", index=False)
        other.to_excel(writer, sheet_name="providers", index=False)
    assert_frame_equal(read_table(path), scores, check_dtype=False)
    assert_frame_equal(read_table(path, sheet="providers"), other)
    assert_frame_equal(read_table(path, sheet=1), other)
    with pytest.raises(ValueError, match=r"no sheet 'orgs'.*\['scores', 'providers'\]"):
        read_table(path, sheet="orgs")
    with pytest.raises(ValueError, match="out of range"):
        read_table(path, sheet=5)


def test_xls_uses_xlrd(tmp_path, monkeypatch):
    """Legacy .xls files go to pandas' xlrd engine (no writer exists to make a real one)."""
    path = tmp_path / "legacy.xls"
    path.write_bytes(b"not really excel")
    seen = {}

    class FakeBook:
        sheet_names = ["Sheet1"]

        def __init__(self, p, engine):
            seen["engine"] = engine

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_read_excel(book, sheet_name, **kwargs):
        assert isinstance(book, FakeBook)
        seen["sheet"] = sheet_name
        return pd.DataFrame({"a": [1]})

    monkeypatch.setattr(pd, "ExcelFile", FakeBook)
    monkeypatch.setattr(pd, "read_excel", fake_read_excel)
    read_table(path)
    assert seen == {"engine": "xlrd", "sheet": 0}


def test_stata_round_trip_with_labels(tmp_path, scores):
    """.dta: values exact; value and variable labels kept in attrs."""
    import pyreadstat
    path = tmp_path / "scores.dta"
    labels = {"arm": {1: "push", 2: "co-creation"}}
    pyreadstat.write_dta(
        scores, str(path), variable_value_labels=labels, column_labels={"score": "Mean score"}
    )
    got = read_table(path)
    assert_frame_equal(got, scores, check_dtype=False)
    assert got.attrs["value_labels"] == labels
    assert got.attrs["column_labels"] == {"score": "Mean score"}
    applied = read_table(path, apply_value_labels=True)
    assert list(applied["arm"]) == ["push", "co-creation", "push", "co-creation"]
    assert list(applied["arm"].cat.categories) == ["push", "co-creation"]
    assert applied.attrs["value_labels"] == labels
    assert_frame_equal(applied.drop(columns="arm"), scores.drop(columns="arm"), check_dtype=False)


def test_spss_round_trip_with_partial_labels(tmp_path, scores):
    """.sav: numbers come back as float64; unlabelled codes keep their value (haven-style)."""
    import pyreadstat
    path = tmp_path / "scores.sav"
    table = scores.assign(likert=[1, 3, 5, 5])
    labels = {"likert": {1.0: "Strongly disagree", 5.0: "Strongly agree"}}
    pyreadstat.write_sav(table, str(path), variable_value_labels=labels)
    got = read_table(path)
    expected = table.astype({"wave": "float64", "arm": "float64", "likert": "float64"})
    assert_frame_equal(got, expected, check_dtype=False)
    assert (got.dtypes[["wave", "arm", "likert"]] == "float64").all()
    assert got.attrs["value_labels"] == labels
    applied = read_table(path, apply_value_labels=True)
    assert list(applied["likert"].astype(str)) == [
        "Strongly disagree",
        "3",
        "Strongly agree",
        "Strongly agree",
    ]
    assert list(applied["likert"].cat.categories) == ["Strongly disagree", "3", "Strongly agree"]
    assert scores.columns.tolist() == ["org_id", "wave", "score", "arm", "date"]  # not mutated


def test_spss_missing_value_stays_missing(tmp_path):
    """A system-missing value is NaN and the row count is unchanged."""
    import pyreadstat
    path = tmp_path / "m.sav"
    pyreadstat.write_sav(pd.DataFrame({"x": [1.0, np.nan, 3.0]}), str(path))
    got = read_table(path)
    assert len(got) == 3
    assert got["x"].isna().tolist() == [False, True, False]


def test_kwargs_reach_the_reader(tmp_path, scores):
    """Reader keyword arguments are passed through (usecols here)."""
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path, index=False)
    assert read_table(path, columns=["org_id", "wave"]).columns.tolist() == ["org_id", "wave"]
    csv = tmp_path / "scores.csv"
    scores.to_csv(csv, index=False)
    assert read_table(csv, usecols=["score"]).columns.tolist() == ["score"]


def test_file_format_overrides_extension(tmp_path, scores):
    """A CSV saved as .txt reads with file_format='csv'; without it the error lists formats."""
    path = tmp_path / "scores.txt"
    scores.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"extension '\.txt'.*\.csv"):
        read_table(path)
    got = read_table(path, file_format="csv", parse_dates=["date"])
    assert_frame_equal(got, scores, check_dtype=False)
    with pytest.raises(ValueError, match="file_format must be one of"):
        read_table(path, file_format="json")


def test_bad_arguments(tmp_path, scores):
    """Options that do not apply to a format, and missing files, are clear errors."""
    path = tmp_path / "scores.csv"
    scores.to_csv(path, index=False)
    with pytest.raises(ValueError, match="only applies to Excel"):
        read_table(path, sheet="a")
    with pytest.raises(ValueError, match="apply_value_labels=True only applies"):
        read_table(path, apply_value_labels=True)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_table(tmp_path / "nope.csv")


def test_ids_keep_leading_zeros(tmp_path):
    """Id columns of CSV and Excel files are text: "007" stays "007" (other columns typed)."""
    table = pd.DataFrame({"org_id": ["007", "010"], "id": ["01", "2"], "wave": [1, 2]})
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    got = read_table(csv)
    assert got["org_id"].tolist() == ["007", "010"]
    assert got["id"].tolist() == ["01", "2"]
    assert got["wave"].dtype == "int64"
    guessed = read_table(csv, ids_as_text=False)
    assert guessed["org_id"].tolist() == [7, 10]
    assert read_table(csv, dtype={"org_id": "float64"})["org_id"].tolist() == [7.0, 10.0]
    assert read_table(csv, dtype={"wave": "float64"})["org_id"].tolist() == ["007", "010"]
    xlsx = tmp_path / "t.xlsx"
    pd.DataFrame({"org_id": [7, 10], "wave": [1, 2]}).to_excel(xlsx, index=False)
    assert read_table(xlsx)["org_id"].tolist() == ["7", "10"]  # numeric cells -> text ids
    assert read_table(xlsx, ids_as_text=False)["org_id"].tolist() == [7, 10]
    parquet = tmp_path / "t.parquet"
    table.to_parquet(parquet)
    with pytest.raises(ValueError, match="ids_as_text=False only applies"):
        read_table(parquet, ids_as_text=False)


@pytest.mark.parametrize(
    ("suffix", "package"),
    [(".parquet", "pyarrow"), (".xlsx", "openpyxl"), (".xls", "xlrd"),
     (".dta", "pyreadstat"), (".sav", "pyreadstat")],
)
def test_missing_extra_names_io(tmp_path, monkeypatch, suffix, package):
    """Without the optional package the error names it and the `io` extra."""
    path = tmp_path / f"data{suffix}"
    path.write_bytes(b"")
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` raise ImportError
    with pytest.raises(MissingExtraError) as info:
        read_table(path)
    message = str(info.value)
    assert f"'{package}'" in message
    assert "pip install 'coevidence[io]'" in message
    assert info.value.extra == "io"
    assert isinstance(info.value, ImportError)


def test_every_suffix_is_dispatched():
    """Each documented extension maps to a known format."""
    assert set(SUFFIXES.values()) == {"csv", "tsv", "parquet", "excel", "xls", "stata", "spss"}


# ----------------------------------------------------------------- property: exact round trip

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@st.composite
def _tables(draw):
    n = draw(st.integers(min_value=1, max_value=12))
    ints = draw(st.lists(st.integers(-(2**31) + 1, 2**31 - 1), min_size=n, max_size=n))
    floats = draw(st.lists(st.one_of(_finite, st.just(float("nan"))), min_size=n, max_size=n))
    ids = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12).filter(
        lambda t: t not in ("nan", "null")  # pandas' missing-value markers in delimited text
    )
    text = draw(st.lists(ids, min_size=n, max_size=n))
    return pd.DataFrame({"unit_id": text, "count": ints, "value": floats})


@pytest.mark.parametrize("suffix", [".parquet", ".dta", ".sav", ".csv"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(table=_tables())
def test_round_trip_property(tmp_path, suffix, table):
    """Any table of ids, integers and floats (with missing values) reads back value for value."""
    import pyreadstat

    path = tmp_path / f"t{suffix}"
    if suffix == ".parquet":
        table.to_parquet(path, index=False)
    elif suffix == ".dta":
        pyreadstat.write_dta(table, str(path))
    elif suffix == ".sav":
        pyreadstat.write_sav(table, str(path))
    else:
        table.to_csv(path, index=False, float_format="%.17g")
    got = read_table(path)
    assert len(got) == len(table)
    assert got["unit_id"].tolist() == table["unit_id"].tolist()
    assert got["count"].tolist() == table["count"].tolist()
    np.testing.assert_array_equal(got["value"].to_numpy(float), table["value"].to_numpy(float))
