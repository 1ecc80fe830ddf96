"""Write a pip constraints file pinning every declared dependency at its floor.

Reads ``pyproject.toml`` (build-system requires, core dependencies and every optional extra)
and prints one ``name==floor`` line per distribution, where the floor is the version of the
requirement's ``>=`` clause. CI installs ``-e ".[test]"`` with ``-c`` this file to check that
the declared minimum versions really work (``.ci/run``)::

    python3 tools/min_constraints.py > /tmp/min.txt
    pip install -e ".[test]" -c /tmp/min.txt

Standard library only (``tomllib``), so it runs before anything is installed. A requirement
without a ``>=`` floor is left out; extras are dropped (pip refuses them in constraints);
environment markers are kept; the package's own extras (``coevidence[...]``) are skipped.
A distribution declared in several places with different floors gets the highest one, which
is the floor that is in force when everything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_REQ = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*"
    r"(?:\[(?P<extras>[^\]]*)\])?\s*(?P<spec>[^;]*?)\s*(?:;\s*(?P<marker>.+))?$"
)
_FLOOR = re.compile(r"^>=\s*(?P<version>[0-9][0-9A-Za-z.!+-]*)$")


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name (``PyYAML`` -> ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.+-]", version))


def parse_requirement(text: str) -> tuple[str, str | None, str | None]:
    """``(normalised name, floor or None, marker or None)`` of one PEP 508 requirement."""
    match = _REQ.match(text)
    if match is None:
        raise ValueError(f"cannot parse requirement {text!r}")
    floor = None
    for clause in filter(None, (c.strip() for c in match["spec"].split(","))):
        found = _FLOOR.match(clause)
        if found:
            floor = found["version"]
    return normalize(match["name"]), floor, match["marker"]


def declared_requirements(pyproject: dict) -> list[str]:
    """Every requirement string of the build system, the core and all extras."""
    project = pyproject["project"]
    reqs = list(pyproject.get("build-system", {}).get("requires", []))
    reqs += project.get("dependencies", [])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return reqs


def floors(pyproject: dict) -> dict[str, tuple[str, str | None]]:
    """Normalised name -> (floor, marker), the highest floor when declared more than once."""
    own = normalize(pyproject["project"]["name"])
    out: dict[str, tuple[str, str | None]] = {}
    for req in declared_requirements(pyproject):
        name, floor, marker = parse_requirement(req)
        if name == own or floor is None:
            continue
        if name not in out or _version_key(floor) > _version_key(out[name][0]):
            out[name] = (floor, marker)
    return out


def constraints(pyproject: dict) -> str:
    """The constraints file's text: sorted ``name==floor`` lines."""
    lines = []
    for name, (floor, marker) in sorted(floors(pyproject).items()):
        lines.append(f"{name}=={floor}" + (f"; {marker}" if marker else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = constraints(tomllib.loads(args.pyproject.read_text(encoding="utf-8")))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
