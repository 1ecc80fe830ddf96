"""The notebooks in notebooks/ (jupytext percent scripts) are stored clean and parse.

They are *executed* once, by the documentation build (MyST-NB, ``nb_execution_mode="force"``,
``nb_execution_raise_on_error=True``, each in a fresh kernel and an empty working directory):
``tests/docs/test_docs_build.py`` fails when a cell raises, and checks that every notebook page
shows outputs and no traceback. Running them here as well doubled the slowest tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def test_notebooks_exist():
    """The notebooks folder is not empty (a glob over nothing would pass vacuously)."""
    assert any(p.name == "quickstart.py" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean_and_parses(path):
    """No stored outputs, a title, and every code cell is valid Python (magics aside)."""
    import jupytext
    import nbformat

    notebook = jupytext.read(path, fmt="py:percent")
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code, "no code cells"
    assert not any(c.get("outputs") for c in code)
    assert notebook.cells[0].cell_type == "markdown"
    assert notebook.cells[0].source.lstrip().startswith("# ")
    for cell in code:
        source = "\n".join(line for line in cell.source.splitlines()
                           if not line.lstrip().startswith(("%", "!")))
        ast.parse(source)


def test_docs_build_executes_the_notebooks():
    """The docs configuration runs the notebooks and fails on an error (see the docstring)."""
    tree = ast.parse((ROOT / "docs" / "conf.py").read_text(encoding="utf-8"))
    conf = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}
    mode = conf["nb_execution_mode"]  # os.environ.get("COEVIDENCE_NB_EXECUTION", default)
    assert isinstance(mode, ast.Call) and ast.literal_eval(mode.args[1]) == "force"
    assert ast.literal_eval(conf["nb_execution_raise_on_error"]) is True
    assert ast.literal_eval(conf["nb_execution_in_temp"]) is True
