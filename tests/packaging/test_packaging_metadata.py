"""The installed distribution matches the source: version, typing marker, CLI, public names."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.resources
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import coevidence

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: Heavy libraries that ``import coevidence`` must not pull in (the public API is lazy).
HEAVY = ("statsmodels", "matplotlib", "linearmodels", "scipy", "pyarrow", "dask")


def test_installed_version_matches_package():
    """importlib.metadata and coevidence.__version__ agree, and both match pyproject.toml."""
    assert md.version("coevidence") == coevidence.__version__ == PYPROJECT["project"]["version"]


def test_py_typed_marker_present():
    """The PEP 561 marker sits next to the package's __init__.py."""
    assert importlib.resources.files("coevidence").joinpath("py.typed").is_file()


def test_console_script_declared_and_runs():
    """`coevidence` is a console script pointing at coevidence.cli:main, and --version works."""
    scripts = {ep.name: ep for ep in md.entry_points(group="console_scripts")}
    assert "coevidence" in scripts
    assert scripts["coevidence"].value == "coevidence.cli:main"
    assert PYPROJECT["project"]["scripts"]["coevidence"] == "coevidence.cli:main"
    out = subprocess.run(
        [sys.executable, "-c", "from coevidence.cli import main; main(['--version'])"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"coevidence {coevidence.__version__}"


def test_extras_declared():
    """The extras promised in the README and issue 2 exist in the installed metadata."""
    extras = set(md.metadata("coevidence").get_all("Provides-Extra") or ())
    assert {"io", "dask", "testing", "docs", "test", "all"} <= extras


def _module_importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # only "this module is not written yet" counts; a broken import inside it is a failure
        if exc.name is not None and module.startswith(exc.name):
            return False
        raise
    return True


@pytest.mark.parametrize("name", sorted(coevidence._LAZY))
def test_public_name_resolves(name):
    """Every lazily exported name is defined in the module `_LAZY` says, with a docstring.

    ``COEVIDENCE_STRICT=0`` relaxes this to xfail while a module is being written (local
    development only; CI and the README's test command are strict).
    """
    module = coevidence._LAZY[name]
    strict = os.environ.get("COEVIDENCE_STRICT", "1") != "0"
    if not strict and not _module_importable(module):
        pytest.xfail(f"{module} not written yet")
    if not strict and not hasattr(importlib.import_module(module), name):
        pytest.xfail(f"{module}.{name} not written yet")
    obj = getattr(coevidence, name)
    assert obj is getattr(importlib.import_module(module), name)
    assert name in coevidence.__all__
    assert obj.__doc__, f"coevidence.{name} has no docstring"


def test_all_is_sorted_and_unique():
    """__all__ lists every lazy name plus __version__, once each, sorted."""
    assert coevidence.__all__ == sorted(set(coevidence.__all__))
    assert set(coevidence.__all__) == set(coevidence._LAZY) | {"__version__"}


def test_unknown_attribute_raises():
    """A misspelt public name is an AttributeError naming it, not a silent None."""
    with pytest.raises(AttributeError, match="fit_mixd"):
        coevidence.fit_mixd  # noqa: B018


def test_import_is_lazy():
    """`import coevidence` imports none of the heavy scientific libraries."""
    code = (
        "import json, sys; import coevidence; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from the source tree with hatchling (in the `test` extra)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("coevidence-*.whl")
    return built


def test_wheel_contents(wheel):
    """The wheel ships py.typed, the licence, every package file (data too) and no tests."""
    names = zipfile.ZipFile(wheel).namelist()
    assert "coevidence/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    package = ROOT / "src" / "coevidence"
    tracked = subprocess.run(
        ["git", "ls-files", "--", "src/coevidence"], cwd=ROOT, capture_output=True, text=True,
        check=False,
    )
    if tracked.returncode == 0 and tracked.stdout.strip():
        files = [ROOT / line for line in tracked.stdout.splitlines()]
    else:  # not a git checkout: every file on disk
        files = [f for f in package.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
    expected = {f.relative_to(ROOT / "src").as_posix() for f in files if f.exists()}
    missing = sorted(expected - set(names))
    assert not missing, f"not in the wheel: {missing[:10]}"
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    )
    assert b"coevidence = coevidence.cli:main" in entry_points


@pytest.mark.slow
def test_main_job_from_installed_wheel(wheel, tmp_path):
    """README's main job works from a regular (non-editable) install of the wheel."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import sys, coevidence; from coevidence.cli import main; "
        f"assert coevidence.__file__.startswith({str(target)!r}), coevidence.__file__; "
        "sys.exit(main(['demo', '--out', 'demo-out']))"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = tmp_path / "demo-out" / "report.html"
    assert report.is_file()
    assert "<html" in report.read_text(encoding="utf-8")[:500].lower()
