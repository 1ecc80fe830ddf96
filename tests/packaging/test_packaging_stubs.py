"""`coevidence/__init__.pyi` gives type checkers the real type of every lazily exported name."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import coevidence

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "src" / "coevidence" / "__init__.pyi"


def _stub_exports() -> dict[str, str]:
    """Public name -> module of every ``from module import name as name`` in the stub."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    exports: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                # PEP 484: only ``import x as x`` re-exports from a stub
                assert alias.asname == alias.name, f"{alias.name} is not re-exported"
                assert alias.name not in exports, f"{alias.name} imported twice"
                exports[alias.name] = node.module
    return exports


def _stub_annotations() -> set[str]:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    return {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}


def test_stub_lists_exactly_the_public_names():
    """The stub re-exports every name of ``__all__`` (and declares ``__version__``), no more."""
    exported = set(_stub_exports())
    public = set(coevidence.__all__) - {"__version__"}
    assert not public - exported, f"exports without a stub line: {sorted(public - exported)}"
    assert not exported - public, f"stub lines for unknown names: {sorted(exported - public)}"
    assert "__version__" in _stub_annotations()


def test_stub_imports_each_name_from_its_module():
    """Each stub line names the module ``_LAZY`` loads the object from."""
    wrong = {n: m for n, m in _stub_exports().items() if coevidence._LAZY.get(n) != m}
    assert not wrong, wrong


def test_stub_ships_in_the_package():
    """The stub sits next to ``__init__.py`` with the PEP 561 marker (the wheel takes both)."""
    assert STUB.with_name("py.typed").is_file()
    assert STUB.with_name("__init__.py").is_file()


PROBE = """\
import coevidence
reveal_type(coevidence.fit_mixed)
reveal_type(coevidence.Study)
reveal_type(coevidence.__version__)
coevidence.fit_mixd
"""


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed")
def test_mypy_sees_real_types(tmp_path):
    """mypy types ``coevidence.fit_mixed`` as the function, not ``Any``; a typo is an error.

    Third-party packages are hidden (``--no-site-packages``) so the check reads only
    coevidence's own sources and stays fast; their types are ``Any`` here, ours are not.
    """
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-site-packages", "--ignore-missing-imports",
         "--follow-imports=silent", "--no-incremental", "--cache-dir", os.devnull,
         "--no-error-summary", "--hide-error-context", probe.name],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )
    # older mypy spells builtins out ("builtins.str"); compare without the prefix
    notes = {int(line.split(":")[1]): line.replace("builtins.", "")
             for line in proc.stdout.splitlines() if line.startswith("probe.py:")}
    assert 'Revealed type is "def (formula: str' in notes.get(2, ""), proc.stdout + proc.stderr
    returns = notes[2].split(") -> ")[-1]
    assert returns == 'coevidence.models.mixed.results.MixedResult"', notes[2]
    assert 'Revealed type is "def (design:' in notes.get(3, ""), proc.stdout
    assert notes[3].endswith('-> coevidence.data.study.Study"'), notes[3]
    assert notes.get(4, "").endswith('Revealed type is "str"'), proc.stdout
    assert 'has no attribute "fit_mixd"' in notes.get(5, ""), proc.stdout
