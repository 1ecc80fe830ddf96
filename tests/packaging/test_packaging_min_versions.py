"""The minimum-versions CI step pins exactly the declared floors, and CI runs it.

``tools/min_constraints.py`` turns ``pyproject.toml`` into a pip constraints file; ``.ci/run``
installs ``-e ".[test]"`` with it in a second venv and runs a quick subset. These tests check
the generator against an independent parser (``packaging``), and that every dependency has a
floor for that step to test.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("min_constraints", ROOT / "tools" / "min_constraints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = [*PYPROJECT["build-system"]["requires"], *project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", line
        assert not req.extras, f"pip refuses extras in constraints: {line}"
        assert canonicalize_name(req.name) not in pins, f"pinned twice: {line}"
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_every_dependency_declares_a_floor():
    """Each requirement (core, extras, build) has a ``>=`` floor, so the CI step tests it."""
    own = canonicalize_name(PYPROJECT["project"]["name"])
    missing = [str(r) for r in _declared()
               if canonicalize_name(r.name) != own
               and not any(s.operator == ">=" for s in r.specifier)]
    assert not missing, missing


def test_generated_pins_equal_declared_floors(tool):
    """One ``name==floor`` per distribution, the floor being the declared ``>=`` version."""
    pins = _pins(tool.constraints(PYPROJECT))
    own = canonicalize_name(PYPROJECT["project"]["name"])
    floors: dict[str, set[str]] = {}
    for req in _declared():
        name = canonicalize_name(req.name)
        if name != own:
            floors.setdefault(name, set()).update(s.version for s in req.specifier
                                                  if s.operator == ">=")
    assert set(pins) == set(floors)
    for name, versions in floors.items():
        assert pins[name] in versions, (name, pins[name], versions)
        # the pin satisfies every declaration of the name (the highest floor is in force)
        for req in _declared():
            if canonicalize_name(req.name) == name:
                assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    assert pins["hatchling"] == "1.27"  # the build backend is pinned too


def test_generator_rules(tool):
    """Extras dropped, markers kept, own extras skipped, highest of repeated floors taken."""
    fake = {
        "build-system": {"requires": ["hatchling>=1.27"]},
        "project": {
            "name": "Pkg_Name",
            "dependencies": ["dask[distributed]>=2024.1", "numpy>=1.26,<3",
                             'tomli>=2.0; python_version < "3.11"', "unbounded"],
            "optional-dependencies": {
                "a": ["pkg-name[b]", "PyYAML>=6.0", "numpy>=1.26.4"],
                "b": ["numpy>=1.26.10"],
            },
        },
    }
    assert tool.constraints(fake).splitlines() == [
        "dask==2024.1",
        "hatchling==1.27",
        "numpy==1.26.10",
        "pyyaml==6.0",
        'tomli==2.0; python_version < "3.11"',
    ]


def test_cli_writes_the_file(tool, tmp_path):
    """``python tools/min_constraints.py -o FILE`` writes what ``constraints`` returns."""
    out = tmp_path / "min.txt"
    assert tool.main(["-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == tool.constraints(PYPROJECT)


def test_ci_installs_the_floors_before_the_full_run():
    """.ci/run builds the constraints, installs the test extra with them, and runs tests."""
    lines = [ln.strip() for ln in CI.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    text = "\n".join(lines)
    gen = text.index("tools/min_constraints.py -o")
    install = text.index('--no-build-isolation -c "$work/min-constraints.txt" -e ".[test]"')
    quick = text.index("python -m pytest -q -n 2", install)
    assert gen < install < quick < text.index(lines[-1], quick + 1)
    assert lines[-1] == "python -m pytest -n 2"


def test_jupyter_extra_and_tqdm_auto():
    """The ``jupyter`` extra brings ipywidgets; progress bars come from ``tqdm.auto`` only."""
    jupyter = {canonicalize_name(Requirement(r).name)
               for r in PYPROJECT["project"]["optional-dependencies"]["jupyter"]}
    assert {"ipywidgets", "tqdm"} <= jupyter
    plain = re.compile(r"^\s*(from tqdm(\.std)? import|import tqdm\b)", re.M)
    users, offenders = [], []
    for path in (ROOT / "src" / "coevidence").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "tqdm" in text:
            users.append(path.name)
        if plain.search(text):
            offenders.append(path.relative_to(ROOT).as_posix())
    assert "simulation_power.py" in users
    assert not offenders, offenders
