"""The checksummed, resumable Parquet store of simulate_power and orphan-free worker pools."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("pyarrow")

from coevidence.design.simulate import OutcomeSpec, SimulationSpec  # noqa: E402
from coevidence.design.simulation_power import simulate_power  # noqa: E402
from coevidence.exceptions import (  # noqa: E402
    CoevidenceError,
    CoevidenceWarning,
    ReplicateStoreWarning,
    ModelSpecificationError,
)


def _small(**kw) -> SimulationSpec:
    base = dict(n_providers=2, orgs_per_provider=6, respondents_per_org=3, n_waves=2,
                assignment="organization", encounter_logs=False, responses="scores",
                attrition=0.0,
                outcomes=[OutcomeSpec(arm_effect=0.4, arm_slope=0.0, round_items=False)])
    base.update(kw)
    return SimulationSpec(**base)


N = 6


def _run(out, seed=5, spec=None, **kw):
    return simulate_power(spec or _small(), "cluster_means", n_reps=N, seed=seed, out=out, **kw)


def _parts(out) -> list[Path]:
    return sorted((Path(out) / "replicates").glob("part-*.parquet"))


@pytest.fixture(scope="module")
def reference():
    return simulate_power(_small(), "cluster_means", n_reps=N, seed=5).replicates


def test_manifest_holds_seed_plan_and_n_reps(tmp_path, reference):
    res = _run(tmp_path)
    pd.testing.assert_frame_equal(res.replicates, reference)
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["seed"] == 5 and man["n_reps"] == N and len(man["plan"]) == 64
    assert not list(tmp_path.glob(".*tmp")) and not list((tmp_path / "replicates").glob(".*"))
    import pyarrow.parquet as pq

    for p in _parts(tmp_path):
        meta = json.loads(pq.read_schema(p).metadata[b"coevidence"])
        assert meta["plan"] == man["plan"] and meta["seed"] == 5
        assert meta["rows"] == pq.read_metadata(p).num_rows
    # a clean resume recomputes nothing and warns about nothing
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CoevidenceWarning)
        again = _run(tmp_path)
    pd.testing.assert_frame_equal(again.replicates, reference)


def _corrupt_truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _corrupt_flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def _corrupt_garbage(p: Path) -> None:
    p.write_bytes(b"not parquet at all")


@pytest.mark.parametrize("damage", [_corrupt_truncate, _corrupt_flip, _corrupt_garbage])
def test_corrupt_part_is_reported_moved_aside_and_rerun(tmp_path, reference, damage):
    _run(tmp_path, chunk_size=1)
    parts = _parts(tmp_path)
    assert len(parts) >= 2
    victim = parts[0]
    damage(victim)
    with pytest.warns(ReplicateStoreWarning, match=victim.name):
        res = _run(tmp_path)
    pd.testing.assert_frame_equal(res.replicates, reference)  # bit-exact after the re-run
    # the re-run replicate is written again, byte-identical, under the same checksummed name
    import hashlib

    assert hashlib.sha256(victim.read_bytes()).hexdigest() in victim.name
    assert len(list((tmp_path / "quarantine").iterdir())) == 1
    saved = pd.read_parquet(tmp_path / "replicates")
    assert sorted(saved["rep"]) == list(range(N))


def test_foreign_part_with_other_seed_is_rejected_not_mixed(tmp_path, reference):
    other = tmp_path / "other"
    _run(other, seed=99)
    mine = tmp_path / "mine"
    _run(mine)
    # swap in a part of the seed-99 run under a valid checksummed name
    for p in _parts(mine):
        p.unlink()
    foreign = _parts(other)[0]
    (mine / "replicates" / foreign.name).write_bytes(foreign.read_bytes())
    with pytest.warns(ReplicateStoreWarning, match="different run"):
        res = _run(mine)
    pd.testing.assert_frame_equal(res.replicates, reference)


def test_part_without_checksummed_name_is_rejected(tmp_path, reference):
    _run(tmp_path)
    p = _parts(tmp_path)[0]
    p.rename(p.with_name("part-0000000-deadbeef.parquet"))
    with pytest.warns(ReplicateStoreWarning, match="part-0000000-deadbeef"):
        res = _run(tmp_path)
    pd.testing.assert_frame_equal(res.replicates, reference)


def test_manifest_mismatch_is_a_typed_error(tmp_path):
    _run(tmp_path)
    with pytest.raises(ModelSpecificationError, match=r"different run.*seed"):
        _run(tmp_path, seed=6)
    with pytest.raises(ModelSpecificationError, match=r"different run.*spec"):
        _run(tmp_path, spec=_small(respondents_per_org=4))
    with pytest.raises(CoevidenceError, match=r"different run.*analysis"):
        simulate_power(_small(), "growth_two_stage", n_reps=N, seed=5, out=tmp_path)


def test_deleted_manifest_refuses_parts_of_another_seed(tmp_path):
    _run(tmp_path, seed=99)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ModelSpecificationError, match="no manifest"):
        _run(tmp_path, seed=5)
    assert len(_parts(tmp_path)) > 0  # nothing was touched


def test_deleted_manifest_resumes_when_parts_match(tmp_path, reference):
    _run(tmp_path)
    n_parts = len(_parts(tmp_path))
    (tmp_path / "manifest.json").unlink()
    res = _run(tmp_path)
    pd.testing.assert_frame_equal(res.replicates, reference)
    assert len(_parts(tmp_path)) == n_parts  # nothing re-run
    assert (tmp_path / "manifest.json").exists()


def test_deleted_manifest_refuses_foreign_parquet(tmp_path):
    (tmp_path / "replicates").mkdir()
    pd.DataFrame({"rep": [0], "x": [1.0]}).to_parquet(
        tmp_path / "replicates" / "part-0000000-x.parquet")
    with pytest.raises(ModelSpecificationError, match="no manifest"):
        _run(tmp_path)


def test_unreadable_manifest_falls_back_to_parts(tmp_path, reference):
    _run(tmp_path)
    (tmp_path / "manifest.json").write_text("{truncated")
    with pytest.warns(ReplicateStoreWarning, match="manifest"):
        res = _run(tmp_path)
    pd.testing.assert_frame_equal(res.replicates, reference)
    (tmp_path / "manifest.json").write_text("{truncated")
    with pytest.warns(CoevidenceWarning), pytest.raises(ModelSpecificationError):
        _run(tmp_path, seed=6)


# --------------------------------------------------------------------------- orphaned workers
_SCRIPT = """
import os, sys, time
import coevidence as cv
from coevidence.design.simulate import OutcomeSpec

PIDS = sys.argv[1]

def slow(study):
    open(os.path.join(PIDS, str(os.getpid())), "w").close()
    time.sleep(120)
    return {"estimate": 0.0, "p_value": 0.5}

if __name__ == "__main__":
    spec = cv.SimulationSpec(n_providers=2, orgs_per_provider=6, respondents_per_org=2,
        n_waves=2, assignment="organization", encounter_logs=False, responses="scores",
        outcomes=[OutcomeSpec(arm_effect=0.5)])
    cv.simulate_power(spec, slow, n_reps=8, backend=sys.argv[2], n_workers=2)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX process semantics")
@pytest.mark.parametrize(("backend", "sig"), [("processes", signal.SIGKILL),
                                              ("processes", signal.SIGTERM),
                                              ("dask", signal.SIGKILL)])
def test_pool_workers_die_with_the_parent(tmp_path, backend, sig):
    if backend == "dask":
        pytest.importorskip("distributed")
    script = tmp_path / "run_sim.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    pids = tmp_path / "pids"
    pids.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(pids), backend],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while len(list(pids.iterdir())) < 2:
            assert proc.poll() is None, "the simulation script exited early"
            assert time.monotonic() < deadline, "workers never started"
            time.sleep(0.2)
        workers = [int(p.name) for p in pids.iterdir()]
        assert all(_alive(w) for w in workers)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + (30 if backend == "dask" else 10)
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), f"{backend} workers outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in pids.iterdir():
            try:
                if _alive(int(p.name)):
                    os.kill(int(p.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX process semantics")
def test_worker_init_exits_when_the_parent_is_already_gone():
    code = ("import os\nfrom coevidence.design.simulation_power import _worker_init\n"
            "_worker_init(os.getppid() + 10**7)\nprint('survived')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "survived" not in done.stdout


def test_part_whose_row_count_disagrees_with_its_metadata_is_rejected(tmp_path, reference):
    import hashlib
    import io

    import pyarrow.parquet as pq

    _run(tmp_path)
    p = _parts(tmp_path)[0]
    table = pq.read_table(p)
    meta = dict(table.schema.metadata)
    info = json.loads(meta[b"coevidence"])
    info["rows"] = info["rows"] + 5  # claims more rows than it holds (a lost row group)
    meta[b"coevidence"] = json.dumps(info).encode()
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf)
    data = buf.getvalue()
    p.unlink()
    forged = p.with_name(f"part-0000000-{hashlib.sha256(data).hexdigest()}.parquet")
    forged.write_bytes(data)
    with pytest.warns(ReplicateStoreWarning, match=r"rows.*metadata says"):
        res = _run(tmp_path)
    pd.testing.assert_frame_equal(res.replicates, reference)
