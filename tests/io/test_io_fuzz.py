"""Seeded fuzzing of every way in (Study.from_frames, read_study, ``coevidence validate``).

Each variant is the small example study with one or two corruptions that make it invalid, or a
harmless change that keeps it valid. Every outcome must be either a study with nothing dropped
(for harmless changes) or a StudyValidationError naming every corrupted table; inputs are never
changed. ``COEVIDENCE_FUZZ_N`` scales the number of variants (default keeps CI within a minute).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import test_io_hardening_support as h  # noqa: E402

import coevidence as cv  # noqa: E402
from coevidence.cli import main  # noqa: E402
from coevidence.exceptions import StudyValidationError  # noqa: E402

N = int(os.environ.get("COEVIDENCE_FUZZ_N", "120"))
pytestmark = pytest.mark.filterwarnings("ignore::coevidence.exceptions.CoevidenceWarning")


def _snapshot(frames: dict[str, object]) -> dict[str, object]:
    return {k: v.copy(deep=True) if isinstance(v, pd.DataFrame) else v for k, v in frames.items()}


def _same(a: object, b: object) -> bool:
    if isinstance(a, pd.DataFrame):
        try:
            pd.testing.assert_frame_equal(a, b)  # type: ignore[arg-type]
        except AssertionError:
            return False
        return True
    return a == b


def _tables_named(exc: StudyValidationError) -> set[str]:
    return set(exc.failures["table"].astype(str))


def test_from_frames_fuzz() -> None:
    rng = np.random.default_rng(20261201)
    outcomes = {"variants": 0, "crashes": [], "accepted_invalid": [], "drops": [], "mutated": [],
                "lost": []}
    for i in range(N):
        frames = h.tables()
        kind = i % 4  # 0 harmless, 1 one corruption, 2-3 two corruptions
        what: list[tuple[str, str]] = []
        if kind == 0:
            desc = h.harmless(frames, rng)
        else:
            for _ in range(1 if kind == 1 else 2):
                what.append(h.corrupt(frames, rng))
            desc = "; ".join(d for _, d in what)
        before = _snapshot(frames)
        outcomes["variants"] += 1
        try:
            study = h.build(frames)
        except StudyValidationError as exc:
            if not what:
                outcomes["crashes"].append((desc, f"harmless change rejected: {exc}"[:300]))
            elif len({t for t, _ in what}) == 2:
                # two problems in two tables: both reported (one may be a dependant's)
                named = _tables_named(exc)
                if not all(t in named for t, _ in what):
                    outcomes["lost"].append((desc, sorted(named)))
        except Exception as exc:  # noqa: BLE001 - the point of the test
            outcomes["crashes"].append((desc, f"{type(exc).__name__}: {exc}"[:300]))
        else:
            if what:
                outcomes["accepted_invalid"].append(desc)
            else:
                got = study.to_frames()
                lost = {k: (len(v), len(got[k])) for k, v in frames.items()
                        if isinstance(v, pd.DataFrame) and len(v) != len(got[k])}
                if lost:
                    outcomes["drops"].append((desc, lost))
        if not all(_same(before[k], frames[k]) for k in frames):
            outcomes["mutated"].append(desc)
    bad = {k: v for k, v in outcomes.items() if k != "variants" and v}
    assert not bad, json.dumps(bad, indent=1, default=str)[:4000]


def _corrupt_package(folder: Path, rng: np.random.Generator) -> str:
    """One corruption of a written package (its files or its descriptor); all make it invalid."""
    desc_path = folder / "datapackage.json"
    desc = json.loads(desc_path.read_text())
    res = desc["resources"]
    i = int(rng.integers(len(res)))
    kind = rng.choice(["truncate", "dropline", "delimiter", "header", "garbage", "rename",
                       "duplicate", "unnamed", "remove", "noresources", "abspath", "dotdot",
                       "devzero", "badjson", "scorer", "design", "cell"])
    file = folder / res[i]["path"]
    if kind == "truncate":
        data = file.read_bytes()
        cut = int(rng.integers(1, max(2, len(data) - 1)))
        if data[:cut].count(b"\n") == data.count(b"\n") - 0 and cut > len(data) - 2:
            cut = len(data) // 2
        file.write_bytes(data[:cut])
        return f"truncate {file.name} at {cut}"
    if kind == "dropline":
        lines = file.read_text().splitlines(keepends=True)
        if len(lines) < 2:
            lines.append("x,y\n")
            file.write_text("".join(lines))
            return f"add a bad line to {file.name}"
        del lines[int(rng.integers(1, len(lines)))]
        file.write_text("".join(lines))
        return f"drop a line of {file.name}"
    if kind == "delimiter":
        file.write_text(file.read_text().replace(",", ";"))
        return f"; delimiter in {file.name}"
    if kind == "header":
        lines = file.read_text().splitlines(keepends=True)
        lines[0] = lines[0].replace(lines[0].split(",")[0], "zz_unknown", 1)
        file.write_text("".join(lines))
        return f"rename first column of {file.name}"
    if kind == "garbage":
        file.write_bytes(bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
        return f"garbage bytes in {file.name}"
    if kind == "rename":
        res[i]["name"] = res[i]["name"] + "_old"
    elif kind == "duplicate":
        res.append(dict(res[i]))
    elif kind == "unnamed":
        del res[i]["name"]
    elif kind == "remove":
        i = int(rng.integers(4))  # a required table
        del res[i]
    elif kind == "noresources":
        del desc["resources"]
    elif kind == "abspath":
        res[i]["path"] = str(file.resolve())
    elif kind == "dotdot":
        res[i]["path"] = f"../{folder.name}/{res[i]['path']}"
    elif kind == "devzero":
        link = folder / "zero.csv"
        link.symlink_to("/dev/zero")
        res[i]["path"] = "zero.csv"
    elif kind == "badjson":
        desc_path.write_text(json.dumps(desc)[:-int(rng.integers(1, 40))])
        return "truncated descriptor"
    elif kind == "scorer":
        desc["coevidence"]["measures"][0]["scorer"] = "os:getcwd"
    elif kind == "design":
        desc["coevidence"]["design"]["arms"] = "nope"
    else:  # a bad cell
        frame = pd.read_csv(folder / "encounters.csv", dtype=str)
        frame.loc[0, "minutes"] = rng.choice(["inf", "-3", "abc", "nan"])
        frame.to_csv(folder / "encounters.csv", index=False)
        return "bad encounter minutes"
    desc_path.write_text(json.dumps(desc))
    return f"{kind} resource {i}"


def test_read_study_and_cli_fuzz(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    clean = tmp_path / "clean"
    h.small_study().write(clean)
    outcomes = {"crashes": [], "accepted_invalid": [], "cli": []}
    for i in range(max(10, N // 2)):
        folder = tmp_path / f"v{i}"
        shutil.copytree(clean, folder)
        desc = _corrupt_package(folder, rng)
        try:
            cv.read_study(folder)
        except StudyValidationError:
            pass
        except cv.CoevidenceError as exc:  # e.g. "not a package": owned, but must name it
            assert "datapackage" in str(exc) or "package" in str(exc), desc
        except Exception as exc:  # noqa: BLE001
            outcomes["crashes"].append((desc, f"{type(exc).__name__}: {exc}"[:300]))
        else:
            outcomes["accepted_invalid"].append(desc)
        if i % 5 == 0:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["validate", str(folder)])
            text = out.getvalue() + err.getvalue()
            if code != 1 or "Traceback" in text:
                outcomes["cli"].append((desc, code, text[-300:]))
        shutil.rmtree(folder)
    bad = {k: v for k, v in outcomes.items() if v}
    assert not bad, json.dumps(bad, indent=1, default=str)[:4000]
