"""Checksummed, resumable Parquet store for :func:`coevidence.simulate_power` (private).

Layout of ``out/``:

* ``manifest.json`` -- the run's identity (``plan``: sha256 of spec, analysis and seed; the seed;
  ``n_reps``), written atomically (temp file + ``os.replace``).
* ``replicates/part-<first rep>-<sha256>.parquet`` -- finished replicates. A part is committed by
  one ``os.replace`` of a fsynced temp file whose name carries the sha256 of its bytes, so a
  part is either absent or complete; the Parquet schema metadata (key ``coevidence``) holds the
  plan, the seed and the row count, so a part identifies the run it belongs to on its own.
* ``quarantine/`` -- parts that failed verification on resume (corrupt, truncated, foreign or
  unreadable), moved aside with a :class:`~coevidence.exceptions.ReplicateStoreWarning`; their
  replicates are run again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from coevidence.exceptions import ModelSpecificationError, ReplicateStoreWarning

_META_KEY = b"coevidence"
_PART_RE = re.compile(r"^part-(\d{7,})-([0-9a-f]{64})\.parquet$")
#: Manifest fields that must agree for a folder to be resumed.
_IDENTITY = ("plan", "spec", "analysis", "seed")


def plan_hash(identity: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``spec``, ``analysis`` and ``seed``."""
    blob = json.dumps({k: identity.get(k) for k in ("spec", "analysis", "seed")},
                      sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class Store:
    """Replicates written incrementally as checksummed Parquet parts, with a run manifest."""

    def __init__(self, out: Path, identity: dict[str, Any], columns: tuple[str, ...],
                 frame_of: Any) -> None:
        self.out = Path(out)
        self.folder = self.out / "replicates"
        self.columns = tuple(columns)
        self._frame_of = frame_of
        self.identity = dict(identity)
        self.plan = plan_hash(self.identity)
        self.identity["plan"] = self.plan
        self._seed = json.loads(json.dumps(self.identity.get("seed"), default=str))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.out / "manifest.json"
        self._check_manifest()
        _atomic_write(self.manifest_path,
                      json.dumps(self.identity, indent=1, default=str).encode())

    # ------------------------------------------------------------------ identity
    def _check_manifest(self) -> None:
        old: dict[str, Any] | None = None
        if self.manifest_path.exists():
            try:
                old = json.loads(self.manifest_path.read_text())
                if not isinstance(old, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, OSError) as exc:
                warnings.warn(f"{self.manifest_path} is unreadable ({exc}); checking the "
                              "parts' own metadata instead", ReplicateStoreWarning, stacklevel=4)
                old = None
        if old is not None:
            mine = json.loads(json.dumps(self.identity, default=str))
            if "plan" not in old:  # manifest of an older version: compare the fields
                old = {**old, "plan": plan_hash(old)}
            diff = [k for k in _IDENTITY if old.get(k) != mine.get(k)]
            if diff:
                raise ModelSpecificationError(
                    f"{self.out} holds replicates of a different run (differs in {diff}); "
                    "use another out= folder or delete it")
            return
        # No (usable) manifest: every part that says which run it belongs to must be ours.
        foreign = []
        for path in self._parts():
            meta = self._meta_of_file(path)
            if meta is not None and meta.get("plan") != self.plan:
                foreign.append(path.name)
            elif meta is None and path.stat().st_size > 0 and self._readable(path):
                foreign.append(path.name)  # a readable part without our metadata
        if foreign:
            raise ModelSpecificationError(
                f"{self.out} has no manifest and holds parts of a different run "
                f"({', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}); "
                "use another out= folder or delete it")

    def _parts(self) -> list[Path]:
        return sorted(p for p in self.folder.glob("part-*.parquet") if p.is_file())

    @staticmethod
    def _readable(path: Path) -> bool:
        import pyarrow.parquet as pq

        try:
            pq.read_metadata(path)
            return True
        except Exception:  # noqa: BLE001
            return False

    @staticmethod
    def _meta_of_file(path: Path) -> dict[str, Any] | None:
        import pyarrow.parquet as pq

        try:
            raw = (pq.read_schema(path).metadata or {}).get(_META_KEY)
            return json.loads(raw) if raw is not None else None
        except Exception:  # noqa: BLE001
            return None

    # ------------------------------------------------------------------ reading
    def _verify(self, path: Path) -> pd.DataFrame | str:
        """The part's rows, or why it is rejected."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        m = _PART_RE.match(path.name)
        if m is None:
            return "its name carries no checksum (not written by this store)"
        try:
            data = path.read_bytes()
        except OSError as exc:
            return f"unreadable ({exc})"
        if hashlib.sha256(data).hexdigest() != m.group(2):
            return "checksum mismatch (corrupt or truncated)"
        try:
            table = pq.read_table(pa.BufferReader(data))
        except Exception as exc:  # noqa: BLE001
            return f"unreadable Parquet ({type(exc).__name__}: {exc})"
        raw = (table.schema.metadata or {}).get(_META_KEY)
        try:
            meta = json.loads(raw) if raw is not None else None
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            return "no coevidence metadata (foreign file)"
        if meta.get("plan") != self.plan or meta.get("seed") != self._seed:
            return "belongs to a different run (seed, spec or analysis differ)"
        frame = table.to_pandas()
        if tuple(frame.columns) != self.columns:
            return f"unexpected columns {list(frame.columns)}"
        if meta.get("rows") != len(frame):
            return f"holds {len(frame)} rows, its metadata says {meta.get('rows')}"
        return self._frame_of(frame.to_dict("records"))

    def _quarantine(self, path: Path, why: str) -> None:
        dest_dir = self.out / "quarantine"
        dest_dir.mkdir(exist_ok=True)
        dest = dest_dir / f"{path.name}.{uuid.uuid4().hex[:8]}"
        try:
            os.replace(path, dest)
            where = f"moved to {dest}"
        except OSError:
            where = "ignored"
        warnings.warn(f"simulate_power: part {path} rejected: {why}; {where}, its replicates "
                      "will be run again", ReplicateStoreWarning, stacklevel=4)

    def done(self) -> pd.DataFrame:
        frames = []
        for path in self._parts():
            got = self._verify(path)
            if isinstance(got, str):
                self._quarantine(path, got)
            else:
                frames.append(got)
        if not frames:
            return self._frame_of([])
        frame = pd.concat(frames, ignore_index=True)
        return frame.drop_duplicates("rep", keep="first")

    # ------------------------------------------------------------------ writing
    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = self._frame_of(rows)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[_META_KEY] = json.dumps({"plan": self.plan, "seed": self.identity.get("seed"),
                                      "rows": len(frame)}, default=str).encode()
        table = table.replace_schema_metadata(meta)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        data = buf.getvalue()
        name = f"part-{int(frame['rep'].min()):07d}-{hashlib.sha256(data).hexdigest()}.parquet"
        _atomic_write(self.folder / name, data)
