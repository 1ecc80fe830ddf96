"""Every way into a study, for fuzzing: make a variant with a chooser, run it, judge the outcome.

Used by ``test_io_fuzz.py`` (hypothesis chooses) and ``benchmarks/fuzz_campaign.py`` (a seeded
numpy generator chooses). A variant is the small example study with one or two corruptions that
make it invalid, or a harmless change that keeps it valid. :func:`run` returns the findings:

``crash``             an exception that is not a :class:`~coevidence.CoevidenceError` (or a
                      documented ``FileNotFoundError``), or a CLI traceback / wrong exit code
``accepted_invalid``  a corrupted variant accepted
``rejected_valid``    a harmless change rejected
``drop``              a harmless change accepted with fewer (or more) rows in some table
``mutated``           an input (frame, record or file) changed by the call
``lost``              two corruptions in two tables, not both named in the one error

The ways: ``from_frames``, ``records`` (the record-based ``Study(...)``), ``read_study`` (a
written package), ``cli`` (``coevidence validate``) and ``read_table`` (one CSV file, then
``Study.from_frames`` with that table).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import datetime as dt
import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import test_io_hardening_support as h

import coevidence as cv
from coevidence.exceptions import CoevidenceError, StudyValidationError

WAYS = ("from_frames", "records", "read_study", "cli", "read_table")
KINDS = ("crash", "accepted_invalid", "rejected_valid", "drop", "mutated", "lost")


@dataclass
class Finding:
    kind: str
    desc: str
    detail: str = ""
    key: str = ""  # crashes: the exception class and where it was raised (distinct tracebacks)


@dataclass
class Variant:
    """One input and what it should do: ``expect`` lists, per corruption, the tables any of
    which the error must name (empty: a harmless change, to be accepted with ``counts``)."""

    desc: str
    call: Callable[[], Any]
    expect: list[set[str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    snapshot: Callable[[], Any] | None = None
    cleanup: Callable[[], None] | None = None


def _crash(desc: str, exc: BaseException) -> Finding:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
    return Finding("crash", desc, f"{type(exc).__name__}: {exc}"[:300],
                   f"{type(exc).__name__}{where}")


def run(variant: Variant, counter: Callable[[Any], dict[str, int]]) -> list[Finding]:
    """Run a variant and judge it; ``counter`` gives the rows per table of what it returned."""
    out: list[Finding] = []
    before = variant.snapshot() if variant.snapshot else None
    desc = variant.desc
    try:
        result = variant.call()
    except StudyValidationError as exc:
        if not variant.expect:
            out.append(Finding("rejected_valid", desc, str(exc)[:300]))
        elif len(variant.expect) > 1:
            named = set(exc.failures["table"].astype(str))
            if not all(named & want for want in variant.expect):
                out.append(Finding("lost", desc, f"named {sorted(named)}"))
    except (CoevidenceError, FileNotFoundError) as exc:
        if not variant.expect:
            out.append(Finding("rejected_valid", desc, f"{type(exc).__name__}: {exc}"[:300]))
    except Exception as exc:  # noqa: BLE001 - the point of fuzzing
        out.append(_crash(desc, exc))
    else:
        if variant.expect:
            out.append(Finding("accepted_invalid", desc))
        else:
            got = counter(result)
            diff = {k: (n, got.get(k)) for k, n in variant.counts.items() if got.get(k) != n}
            if diff:
                out.append(Finding("drop", desc, str(diff)))
    if variant.snapshot and variant.snapshot() != before:
        out.append(Finding("mutated", desc))
    if variant.cleanup:
        variant.cleanup()
    return out


# ---------------------------------------------------------------- frames in memory
def _frames_state(frames: dict[str, Any]) -> Any:
    """A cheap fingerprint of the inputs (values, dtypes, index, columns)."""
    out = []
    for k, v in frames.items():
        if isinstance(v, pd.DataFrame):
            out.append((k, tuple(map(str, v.columns)), tuple(map(str, v.dtypes)),
                        tuple(v.index), _values(v)))
        else:
            out.append((k, repr(v)))
    return out


def _values(frame: pd.DataFrame) -> tuple[Any, ...]:
    return tuple(repr(frame.iloc[:, i].tolist()) for i in range(frame.shape[1]))


def _study_counts(study: cv.Study) -> dict[str, int]:
    return {k: len(v) for k, v in study.to_frames().items()}


def frames_variant(c: Any, n_corruptions: int | None = None) -> Variant:
    """``Study.from_frames`` on the small study's tables, 0 (harmless), 1 or 2 corruptions."""
    frames = h.tables()
    n = c.pick([0, 1, 2]) if n_corruptions is None else n_corruptions
    expect: list[set[str]] = []
    if n == 0:
        desc = h.harmless(frames, c)
    else:
        what = []
        for _ in range(n):
            table, d = h.corrupt(frames, c, exclude=[t for t, _ in what])
            what.append((table, d))
            expect.append({table})
        desc = "; ".join(d for _, d in what)
    counts = {k: len(v) for k, v in frames.items() if isinstance(v, pd.DataFrame)}
    state = _frames_state(frames)
    return Variant(desc, lambda: h.build(frames), expect, counts,
                   snapshot=lambda: _frames_state(frames) == state or _frames_state(frames))


# ---------------------------------------------------------------- records
@functools.lru_cache(maxsize=1)
def _clean_records() -> dict[str, Any]:
    s = h.small_study()
    return {"providers": [r.model_dump() for r in s.providers],
            "organizations": [r.model_dump() for r in s.organizations],
            "respondents": [r.model_dump() for r in s.respondents],
            "engagements": [r.model_dump() for r in s.engagements],
            "design": s.design.model_dump()}


#: record-level corruptions: (table, field, bad values); every one makes the study invalid
RECORD_FIELDS: list[tuple[str, str, list[Any]]] = [
    ("providers", "kind", ["nope", 5, None]),
    ("providers", "id", [None, ["a"], 3.5]),
    ("organizations", "provider_id", ["ghost"]),
    ("organizations", "parent_id", ["ghost"]),
    ("organizations", "arm", ["ghost"]),
    ("organizations", "sector", ["nope"]),
    ("organizations", "level", ["nope", 7]),
    ("respondents", "org_id", ["ghost", None, ""]),
    ("respondents", "role", ["nope"]),
    ("engagements", "org_id", ["ghost"]),
    ("engagements", "provider_ids", [("ghost",), "ghost"]),
    ("engagements", "ta_model", ["nope"]),
    ("engagements", "start_date", ["not a date", dt.date(1600, 1, 1), "2024-13-45"]),
    ("engagements", "end_date", [dt.date(1999, 1, 1)]),
]
NESTED = [("encounters", "minutes", [-5.0, float("inf"), "abc"]),
          ("encounters", "date", [dt.date(1600, 1, 1), dt.date(2300, 1, 1), "not a date"]),
          ("encounters", "provider_id", ["ghost"]),
          ("components", "order", [2.5, "x"]),
          ("relationship_ratings", "value", [99.0, float("inf")]),
          ("agreements", "kind", ["nope"])]


def _corrupt_records(recs: dict[str, Any], obs: dict[str, Any], c: Any,
                     exclude: set[str]) -> tuple[set[str], str]:
    kinds = ["field", "nested", "missing", "notarecord", "duplicate", "design", "measure",
             "observation"]
    kind = c.pick(kinds)
    tables = [t for t in ("providers", "organizations", "respondents", "engagements")
              if t not in exclude]
    if kind == "field":
        options = [f for f in RECORD_FIELDS if f[0] not in exclude]
        table, name, bads = c.pick(options)
        i = c.index(len(recs[table]))
        bad = c.pick(bads)
        recs[table][i][name] = bad
        return {table}, f"{table}[{i}].{name} = {bad!r}"
    if kind == "nested" and "engagements" not in exclude and "encounters" not in exclude:
        part, name, bads = c.pick(NESTED)
        i = c.index(len(recs["engagements"]))
        items = recs["engagements"][i][part]
        if items:
            j = c.index(len(items))
            bad = c.pick(bads)
            items = list(items)
            items[j] = {**items[j], name: bad}
            recs["engagements"][i][part] = items
            return {"engagements", part}, f"engagements[{i}].{part}[{j}].{name} = {bad!r}"
        kind = "missing"
    if kind in ("missing", "nested"):
        table = c.pick(tables)
        i = c.index(len(recs[table]))
        name = c.pick(["id", "org_id"] if table in ("respondents", "engagements") else ["id"])
        recs[table][i].pop(name, None)
        return {table}, f"{table}[{i}] without {name}"
    if kind == "notarecord":
        table = c.pick(tables)
        i = c.index(len(recs[table]))
        recs[table][i] = c.pick([5, "text", None, ["a"]])
        return {table}, f"{table}[{i}] is not a record"
    if kind == "duplicate":
        table = c.pick(tables)
        i = c.index(len(recs[table]))
        recs[table].append(copy.deepcopy(recs[table][i]))
        return {table}, f"{table}[{i}] twice"
    if kind == "design" and "design" not in exclude:
        what = c.pick(["arms", "id", "waves"])
        if what == "id":
            recs["design"].pop("id")
        else:
            recs["design"][what] = "nope"
        return {"design"}, f"design.{what} broken"
    if kind == "measure" and "measures" not in exclude:
        obs["measures"].append(c.pick(["no_such_measure", {"id": 5}]))
        return {"measures"}, "a bad measure"
    names = [t for t in ("responses", "scores") if t not in exclude] or ["responses"]
    part = {t: obs[t] for t in names}
    table, d = h.corrupt(part, c, exclude=[t for t in ("responses", "scores")
                                           if t not in names] or ())
    obs.update(part)
    return {table}, d


def _records_state(recs: dict[str, Any], obs: dict[str, Any]) -> Any:
    return (repr(recs), _frames_state({k: v for k, v in obs.items() if k != "measures"}),
            repr(obs["measures"]))


def records_variant(c: Any, n_corruptions: int | None = None) -> Variant:
    """The record-based ``Study(...)`` with the small study's records (as dicts or objects)."""
    s = h.small_study()
    recs = copy.deepcopy(_clean_records())
    obs: dict[str, Any] = {"responses": s.responses, "scores": s.scores,
                           "measures": list(s.measures.values())}
    n = c.pick([0, 1, 2]) if n_corruptions is None else n_corruptions
    expect: list[set[str]] = []
    descs = []
    if n == 0:
        how = c.pick(["shuffle", "objects", "generator", "tuple", "rows"])
        table = c.pick(["providers", "organizations", "respondents", "engagements"])
        if how == "shuffle":
            rng = np.random.default_rng(c.index(1 << 30))
            recs[table] = [recs[table][i] for i in rng.permutation(len(recs[table]))]
        elif how == "objects":
            recs[table] = list(getattr(s, table))
        elif how == "rows":
            obs["responses"] = obs["responses"].sample(frac=1.0, random_state=c.index(1 << 30))
        descs.append(f"harmless: {how} {table}")
    else:
        used: set[str] = set()
        for _ in range(n):
            tables, d = _corrupt_records(recs, obs, c, used)
            used |= tables
            expect.append(tables)
            descs.append(d)
        if {"design"} in expect:  # the rules that need the design (arms, waves) cannot run
            expect = [e | {"design"} for e in expect]
    counts = {k: len(recs[k]) for k in ("providers", "organizations", "respondents",
                                         "engagements")}
    if not expect:  # (a corruption may have replaced a table by something without a length)
        counts.update(responses=len(obs["responses"]), scores=len(obs["scores"]))
    state = _records_state(recs, obs)
    gen = descs[0].startswith("harmless: generator")
    tup = descs[0].startswith("harmless: tuple")

    def call() -> cv.Study:
        def wrap(items: list[Any]) -> Any:
            return (x for x in items) if gen else tuple(items) if tup else items
        return cv.Study(recs["design"], providers=wrap(recs["providers"]),
                        organizations=wrap(recs["organizations"]),
                        respondents=wrap(recs["respondents"]),
                        engagements=wrap(recs["engagements"]), measures=obs["measures"],
                        responses=obs["responses"], scores=obs["scores"])

    return Variant("; ".join(descs), call, expect, counts,
                   snapshot=lambda: _records_state(recs, obs) == state or "changed")


def record_counts(study: cv.Study) -> dict[str, int]:
    return {"providers": len(study.providers), "organizations": len(study.organizations),
            "respondents": len(study.respondents), "engagements": len(study.engagements),
            "responses": len(study.responses), "scores": len(study.scores)}


# ---------------------------------------------------------------- packages
@functools.lru_cache(maxsize=1)
def _workdir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="coevidence-fuzz-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.lru_cache(maxsize=1)
def clean_package() -> Path:
    folder = _workdir() / "clean"
    h.small_study().write(folder)
    return folder


def _tree_state(folder: Path) -> Any:
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out.append((p.name, "link", os.readlink(p)))
        elif p.is_file():
            out.append((p.name, hashlib.sha256(p.read_bytes()).hexdigest()))
        else:
            out.append((p.name, "other"))
    return out


_counter = iter(range(1 << 62))


def _fresh_copy() -> Path:
    folder = _workdir() / f"v{os.getpid()}-{next(_counter)}"
    shutil.copytree(clean_package(), folder, symlinks=True)
    return folder


PACKAGE_KINDS = ["truncate", "dropline", "delimiter", "header", "garbage", "rename", "duplicate",
                 "unnamed", "remove", "noresources", "abspath", "dotdot", "devzero", "fifo",
                 "badjson", "scorer", "design", "cell", "wider", "badbyte", "notjsonobject",
                 "rows", "emptyfile", "directory"]


def corrupt_package(folder: Path, c: Any) -> str:
    """One corruption of a written package (its files or its descriptor); all make it invalid."""
    desc_path = folder / "datapackage.json"
    desc = json.loads(desc_path.read_text())
    res = desc["resources"]
    i = c.index(len(res))
    kind = c.pick(PACKAGE_KINDS)
    file = folder / res[i]["path"]
    data = file.read_bytes()
    lines = data.splitlines(keepends=True)
    if kind == "truncate":
        # anywhere before the last field of the last row (a cut inside that field leaves a
        # well-formed shorter value, which only verify_hashes=True can tell)
        last = data.rstrip(b"\n").rfind(b",") if len(lines) > 1 else len(data) - 1
        cut = 1 + c.index(max(1, last))
        file.write_bytes(data[:cut])
        return f"truncate {file.name} at {cut} of {len(data)}"
    if kind == "dropline":
        if len(lines) < 2:
            file.write_bytes(data + b"x,y\n")
            return f"add a bad line to {file.name}"
        del lines[1 + c.index(len(lines) - 1)]
        file.write_bytes(b"".join(lines))
        return f"drop a line of {file.name}"
    if kind == "delimiter":
        file.write_bytes(data.replace(b",", b";"))
        return f"; delimiter in {file.name}"
    if kind == "header":
        first = lines[0].split(b",")[0]
        lines[0] = lines[0].replace(first, b"zz_unknown", 1)
        file.write_bytes(b"".join(lines))
        return f"rename first column of {file.name}"
    if kind == "garbage":
        n = 1 + c.index(400)
        file.write_bytes(bytes(c.index(256) for _ in range(min(n, 40))) * (1 + n // 40))
        return f"garbage bytes in {file.name}"
    if kind == "wider":
        if len(lines) < 2:
            lines.append(lines[0])
        j = 1 + c.index(len(lines) - 1)
        lines[j] = lines[j].rstrip(b"\n") + b",extra\n"
        file.write_bytes(b"".join(lines))
        return f"an extra field on line {j} of {file.name}"
    if kind == "badbyte":
        j = c.index(len(data))
        file.write_bytes(data[:j] + b"\xff\xfe" + data[j:])
        return f"invalid UTF-8 at byte {j} of {file.name}"
    if kind == "emptyfile":
        file.write_bytes(b"" if c.index(2) else lines[0])
        return f"{file.name} emptied"
    if kind == "directory":
        file.unlink()
        file.mkdir()
        return f"{file.name} is a folder"
    if kind == "rename":
        res[i]["name"] = res[i]["name"] + "_old"
    elif kind == "duplicate":
        res.append(dict(res[i]))
    elif kind == "unnamed":
        del res[i]["name"]
    elif kind == "remove":
        del res[c.index(4)]  # a required table
    elif kind == "noresources":
        del desc["resources"]
    elif kind == "abspath":
        res[i]["path"] = str(file.resolve())
    elif kind == "dotdot":
        res[i]["path"] = f"../{folder.name}/{res[i]['path']}"
    elif kind == "devzero":
        (folder / "zero.csv").symlink_to("/dev/zero")
        res[i]["path"] = "zero.csv"
    elif kind == "fifo":
        os.mkfifo(folder / "pipe.csv")
        res[i]["path"] = "pipe.csv"
    elif kind == "badjson":
        text = json.dumps(desc)
        desc_path.write_text(text[:-(1 + c.index(40))])
        return "truncated descriptor"
    elif kind == "notjsonobject":
        desc_path.write_text(c.pick(["[]", "5", '"text"', "null"]))
        return "descriptor is not an object"
    elif kind == "scorer":
        desc["coevidence"]["measures"][0]["scorer"] = "os:getcwd"
    elif kind == "design":
        desc["coevidence"]["design"]["arms"] = "nope"
    elif kind == "rows":
        res[i].setdefault("coevidence", {})["rows"] = res[i]["coevidence"]["rows"] + 1
    else:  # a bad cell
        frame = pd.read_csv(folder / "encounters.csv", dtype=str)
        frame.loc[c.index(len(frame)), "minutes"] = c.pick(["inf", "-3", "abc", "nan", "1e400"])
        frame.to_csv(folder / "encounters.csv", index=False)
        return "bad encounter minutes"
    desc_path.write_text(json.dumps(desc))
    return f"{kind} resource {i}"


def harmless_package(folder: Path, c: Any) -> str:
    """A change that keeps the package valid (descriptor layout, resource order, line ends)."""
    desc_path = folder / "datapackage.json"
    desc = json.loads(desc_path.read_text())
    kind = c.pick(["indent", "reorder", "crlf", "nothing"])
    if kind == "indent":
        desc_path.write_text(json.dumps(desc, indent=c.pick([1, 2, 4])))
    elif kind == "reorder":
        rng = np.random.default_rng(c.index(1 << 30))
        desc["resources"] = [desc["resources"][i] for i in rng.permutation(len(desc["resources"]))]
        desc_path.write_text(json.dumps(desc))
    elif kind == "crlf":
        res = c.pick(desc["resources"])
        file = folder / res["path"]
        file.write_bytes(file.read_bytes().replace(b"\n", b"\r\n"))
        return f"CRLF line ends in {file.name}"
    return kind


@functools.lru_cache(maxsize=1)
def _package_counts() -> dict[str, int]:
    return _study_counts(h.small_study())


def _package_variant(c: Any, run_it: Callable[[Path], Any], harmless_share: int) -> Variant:
    folder = _fresh_copy()
    valid = c.index(harmless_share) == 0
    desc = harmless_package(folder, c) if valid else corrupt_package(folder, c)
    state = _tree_state(folder)
    return Variant(desc, lambda: run_it(folder), [] if valid else [{"*"}],
                   dict(_package_counts()) if valid else {},
                   snapshot=lambda: _tree_state(folder) == state or "changed",
                   cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))


def read_study_variant(c: Any) -> Variant:
    """``read_study`` on a written package, corrupted (mostly) or harmlessly changed."""
    return _package_variant(c, cv.read_study, 5)


class CliResult:
    def __init__(self, code: int, text: str) -> None:
        self.code, self.text = code, text


def _validate(folder: Path) -> CliResult:
    from coevidence.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(folder)])
    return CliResult(code, out.getvalue() + err.getvalue())


def cli_variant(c: Any) -> Variant:
    """``coevidence validate`` on a package: exit 0 for a valid one, 1 (no traceback) else."""
    v = _package_variant(c, _validate, 5)
    validate = v.call

    def call() -> CliResult:
        got = validate()
        if "Traceback" in got.text or got.code not in (0, 1):
            raise RuntimeError(f"exit code {got.code}: {got.text[-300:]}")
        if got.code == 1:  # the CLI's way of rejecting
            raise StudyValidationError(pd.DataFrame({"table": ["*"], "rule": [got.text[-200:]]}))
        return got

    v.call = call
    return v


def cli_counts(_: Any) -> dict[str, int]:
    return dict(_package_counts())  # exit 0 after a full validation: nothing dropped


# ---------------------------------------------------------------- read_table
READ_TABLE_TABLES = ["providers", "organizations", "respondents", "engagements", "encounters",
                     "responses", "scores", "components"]
READ_TABLE_KINDS = ["garbage", "badbyte", "nul", "quote", "wider", "empty", "fifo", "devzero",
                    "directory", "cell", "header", "gztrunc", "binaryhead"]
_BAD_CELLS = {"encounters": ("minutes", "abc"), "responses": ("wave", "first"),
              "scores": ("value", "high"), "components": ("order", "x"),
              "providers": ("kind", "nope"), "organizations": ("arm", "ghost"),
              "respondents": ("org_id", "ghost"), "engagements": ("start_date", "soon")}


def read_table_variant(c: Any) -> Variant:
    """One table written as CSV and corrupted (or harmlessly changed), read with ``read_table``
    and passed to ``Study.from_frames`` in place of that table."""
    table = c.pick(READ_TABLE_TABLES)
    folder = _workdir() / f"t{os.getpid()}-{next(_counter)}"
    folder.mkdir()
    src = clean_package() / f"{table}.csv"
    data = src.read_bytes()
    lines = data.splitlines(keepends=True)
    file = folder / f"{table}.csv"
    valid = c.index(4) == 0
    if valid:
        kind = c.pick(["as is", "crlf", "bom", "no final newline", "blank lines", "gzip",
                       "quoted", "tsv"])
        if kind == "crlf":
            data = data.replace(b"\n", b"\r\n")
        elif kind == "bom":
            data = b"\xef\xbb\xbf" + data
        elif kind == "no final newline":
            data = data.rstrip(b"\n")
        elif kind == "blank lines":
            data = data + b"\n\n"
        elif kind == "quoted":
            data = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False).to_csv(
                index=False, quoting=1).encode()
        elif kind == "tsv":
            file = folder / f"{table}.tsv"
            data = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False).to_csv(
                index=False, sep="\t").encode()
        if kind == "gzip":
            file = folder / f"{table}.csv.gz"
            file.write_bytes(gzip.compress(data, mtime=0))
        else:
            file.write_bytes(data)
    else:
        kind = c.pick(READ_TABLE_KINDS)
        if kind == "garbage":
            data = bytes(c.index(256) for _ in range(1 + c.index(64))) * (1 + c.index(20))
        elif kind == "badbyte":
            j = c.index(len(data))
            data = data[:j] + b"\xff" + data[j:]
        elif kind == "nul":
            data = b"\x00" * (1 + c.index(4096))
        elif kind == "binaryhead":
            data = c.pick([b"PK\x03\x04", b"\x1f\x8b\x08\x00", b"PAR1", b"\x89PNG\r\n"]) + data
        elif kind == "quote":
            j = 1 + c.index(len(lines) - 1) if len(lines) > 1 else 0
            lines[j] = b'"' + lines[j]
            data = b"".join(lines)
        elif kind == "wider":
            j = 1 + c.index(len(lines) - 1) if len(lines) > 1 else 0
            lines[j] = lines[j].rstrip(b"\n") + b",extra\n"
            data = b"".join(lines)
        elif kind == "empty":
            data = b""
        elif kind == "cell":
            col, bad = _BAD_CELLS[table]
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
            frame.loc[c.index(len(frame)), col] = bad
            data = frame.to_csv(index=False).encode()
        elif kind == "header":
            first = lines[0].split(b",")[0]
            lines[0] = lines[0].replace(first, b"zz_unknown", 1)
            data = b"".join(lines)
        if kind == "fifo":
            os.mkfifo(file)
        elif kind == "devzero":
            file.symlink_to("/dev/zero")
        elif kind == "directory":
            file.mkdir()
        elif kind == "gztrunc":
            file = folder / f"{table}.csv.gz"
            packed = gzip.compress(data, mtime=0)
            file.write_bytes(packed[: 1 + c.index(len(packed) - 8)])
        else:
            file.write_bytes(data)
    rows = len(h.tables()[table])
    counts = {table: rows}
    state = _tree_state(folder)

    def call() -> Any:
        frame = cv.read_table(file)
        frames = h.tables()
        frames[table] = frame
        return h.build(frames)

    return Variant(f"read_table {kind} {table}", call, [] if valid else [{table}], counts,
                   snapshot=lambda: _tree_state(folder) == state or "changed",
                   cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))


#: way -> (make a variant from a chooser, rows per table of the result)
MAKERS: dict[str, tuple[Callable[..., Variant], Callable[[Any], dict[str, int]]]] = {
    "from_frames": (frames_variant, _study_counts),
    "records": (records_variant, record_counts),
    "read_study": (read_study_variant, _study_counts),
    "cli": (cli_variant, cli_counts),
    "read_table": (read_table_variant, _study_counts),
}


def check(way: str, c: Any, **kwargs: Any) -> list[Finding]:
    """Make one variant of ``way`` with chooser ``c``, run and judge it."""
    make, counter = MAKERS[way]
    return run(make(c, **kwargs), counter)
